"""Users outside the trained graph (issue 11 §2): kept at ingest, folded in by embedding models, scored
from their item rows by per-campaign models, returned by expand and the index, counted by coverage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glom_plugin.config import GlomConfig
from glom_plugin.evaluate.campaigns import EvalCampaign
from glom_plugin.evaluate.results import ModelRun, TaskResult
from glom_plugin.evaluate.runner import ProtocolTasks, scorable_campaign, unscored_last
from glom_plugin.evaluate.training_data import EvaluationTables
from glom_plugin.expand.index import build_index
from glom_plugin.graph.build import build_lookalike_data, read_outside_rows, with_outside_users
from glom_plugin.graph.polarity import polarity_from_sentiment
from glom_plugin.layout import RunLayout
from glom_plugin.models.base import Campaign
from glom_plugin.models.fold_in import empirical_translation, fold_in
from glom_plugin.models.registry import create_model
from glom_plugin.models.saved import load_model, save_model
from tests.unit.evaluate_fixtures import make_tables, small_config

NEW_USER = "u-new"  # one purchase only: the filter (min_user_interactions = 2) keeps it out of the graph


def _graph_only(data):
    from dataclasses import replace

    from glom_plugin.graph.dataset import empty_outside_edges

    return replace(data, outside_user_ids=np.empty(0, dtype=object), outside_edges=empty_outside_edges())


def _config(**overrides: object) -> GlomConfig:
    base = {"pm.use_profiles": False, "pm.dim": 16, "pm.epochs": 40, "similarity.min_corated": 2,
            "expand.min_seeds": 1, "evaluate.negative_ratio": 2}
    base.update(overrides)
    return GlomConfig().with_overrides(**base)


@pytest.fixture(scope="module")
def community_data():
    """90 graph users in 3 taste communities, plus NEW_USER outside the graph with one item of community 0."""
    interactions, items, polarity = make_tables()
    data = build_lookalike_data(polarity, items, _config())
    new_row = pd.DataFrame({"user_id": [NEW_USER], "item_id": ["i000"], "rating_norm": [1.0]})
    return with_outside_users(data, pd.concat([interactions[["user_id", "item_id", "rating_norm"]], new_row])), items


@pytest.fixture(scope="module")
def fitted_pm(community_data):
    data, _ = community_data
    return create_model("pm", _config(), seed=0).fit(data)


def test_only_users_outside_the_graph_with_items_it_knows_become_outside_users(community_data) -> None:
    data, _ = community_data
    # graph users' rows (the interactions themselves) are not outside users; an unknown item is dropped
    assert data.outside_user_ids.tolist() == [NEW_USER]
    assert data.outside_edges[["user_idx", "item_idx"]].to_numpy().tolist() == [[0, 0]]
    assert data.all_user_ids[-1] == NEW_USER and len(data.all_user_ids) == data.n_users + 1
    other = with_outside_users(_graph_only(data), pd.DataFrame(
        {"user_id": ["x", "x"], "item_id": ["i001", "no-such-item"], "rating_norm": [0.5, 0.5]}))
    assert other.outside_user_ids.tolist() == ["x"] and other.outside_edges["item_idx"].tolist() == [1]


def test_pm_fold_in_of_a_graph_user_points_where_its_trained_vector_does(fitted_pm, community_data) -> None:
    # TransE (§3.5): h_u + r ≈ h_i for each of u's items, so mean_i h_i - r̂ recovers h_u up to u's own
    # deviation from the mean translation r̂. Measured here (dim 16, 40 epochs): centred cosine mean 0.90,
    # 10th percentile 0.85; it grows with training (15 epochs: 0.56; Digital Music, 15 epochs: 0.88), since
    # the translation identity is what PM's energy (Eq. 2) drives down. Random directions: ~0 ± 0.25.
    data, _ = community_data
    model = fitted_pm
    folded = model.fold_in(data.user_item_matrix())
    mean = model.embeddings.mean(axis=0)
    a, b = folded - mean, model.embeddings - mean
    cosine = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cosine.mean() > 0.8 and np.percentile(cosine, 10) > 0.7
    # r̂ is the translation the trained space realises: the users' mean plus r̂ is the purchases' item mean
    r = empirical_translation(model.embeddings, model.item_embeddings, data.edges)
    items = data.edges["item_idx"].to_numpy()
    users = data.edges["user_idx"].to_numpy()
    np.testing.assert_allclose(model.embeddings[users].mean(0) + r, model.item_embeddings[items].mean(0), atol=1e-5)


def test_buyer_centroid_fold_in_without_item_vectors(community_data) -> None:
    data, _ = community_data
    user_vectors = np.eye(data.n_users, dtype=np.float32)[:, :5]  # users 0..4 have a unit axis each
    rows = data.user_item_matrix()[:1]
    folded = fold_in("buyers", rows, user_vectors, data.user_item_matrix())
    # by hand: mean over user 0's items of the mean vector of each item's buyers
    x = data.user_item_matrix().toarray() > 0
    by_hand = np.mean([user_vectors[x[:, i]].mean(0) for i in np.flatnonzero(x[0])], axis=0)
    np.testing.assert_allclose(folded[0], by_hand, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "ranks_high"),
    # Jaccard divides by the union: one item against the seeds' six ranks low, as for any light graph user
    [("pm", True), ("cosine-centroid", True), ("lr", True), ("similarity-jaccard-max", False), ("segments", False)],
)
def test_a_one_interaction_user_outside_the_graph_is_scored_and_expanded(name, ranks_high, community_data, fitted_pm) -> None:
    data, _ = community_data
    model = fitted_pm if name == "pm" else create_model(name, _config(), seed=0).fit(data)
    assert model.covers_outside and model.n_users == data.n_users + 1
    assert model.user_ids[-1] == NEW_USER
    # the seeds: community 0's buyers of NEW_USER's one item; NEW_USER is among their lookalikes
    buyers = data.edges.loc[data.edges["item_idx"] == 0, "user_idx"].to_numpy()
    seeds = data.user_ids[buyers].tolist()
    result = model.expand(seeds, k=model.n_users)
    assert NEW_USER in result.user_ids.tolist()
    if ranks_high:  # it bought a community-0 item: the upper half of the population
        assert result.user_ids.tolist().index(NEW_USER) < (model.n_users - len(seeds)) / 2
    new_row = data.n_users
    campaign = Campaign("c", np.sort(buyers), np.array([1, 2], dtype=np.int64), np.array([new_row, 5]))
    assert np.isfinite(model.score_campaign(campaign)).all()


def test_folded_in_users_are_in_the_index_and_trained_vectors_do_not_move(fitted_pm, community_data) -> None:
    data, _ = community_data
    model = fitted_pm
    vectors = model.user_embeddings()
    assert vectors.shape[0] == data.n_users + 1
    # graph users' retrieval vectors are exactly those of the model without outside users
    alone = create_model("pm", _config(), seed=0)
    alone.restore(_graph_only(data), model.learned_state())
    np.testing.assert_array_equal(vectors[: data.n_users], alone.user_embeddings())
    assert alone.n_users == data.n_users and NEW_USER not in alone.user_ids
    index = build_index(vectors, kind="flat")
    buyers = data.edges.loc[data.edges["item_idx"] == 0, "user_idx"].to_numpy()
    served = model.expand(data.user_ids[buyers].tolist(), k=model.n_users, index=index)
    assert NEW_USER in served.user_ids.tolist()


def test_saved_models_keep_their_outside_users(tmp_path: Path, fitted_pm, community_data) -> None:
    data, _ = community_data
    loaded = load_model(save_model(fitted_pm, tmp_path / "pm"))
    assert loaded.user_ids.tolist() == fitted_pm.user_ids.tolist()
    np.testing.assert_array_equal(loaded.user_embeddings(), fitted_pm.user_embeddings())
    assert loaded.as_trained().user_ids[-1] == NEW_USER


def test_a_model_that_cannot_score_outside_users_says_so(community_data) -> None:
    data, _ = community_data
    model = create_model("graph-constraint", _config(), seed=0).fit(data)
    assert not model.covers_outside
    assert model.n_users == data.n_users and NEW_USER not in model.user_ids.tolist()


def test_unscorable_candidates_rank_last_and_coverage_counts_what_was_scored() -> None:
    campaign = Campaign("c", np.array([0]), np.array([1, 7, 8]), np.array([2, 3, 6, 9]))
    restricted, scored = scorable_campaign(campaign, n_scorable=5)
    assert restricted.candidates.tolist() == [2, 3] and restricted.non_seeds.tolist() == [1]
    assert scored.tolist() == [True, True, False, False]
    scores = unscored_last(np.array([0.2, 0.9]), scored, threshold=0.5)
    assert scores[:2].tolist() == [0.2, 0.9] and (scores[2:] < 0.2).all() and (scores[2:] < 0.5).all()
    # coverage: scored positives over the task's whole audience (with those no model can score)
    run = ModelRun("m", 0, tasks=[
        TaskResult("a", {"n_positives": 3, "n_audience": 4, "n_positives_scored": 2}, {}),
        TaskResult("b", {"n_positives": 2, "n_audience": 2, "n_positives_scored": 2}, {}),
    ])
    assert run.coverage_shares() == [0.5, 1.0]
    labels = np.array([True, False, True, False])
    item = EvalCampaign(campaign, labels, "i", n_audience=3)
    assert item.counts()["n_audience"] == 3 and item.counts()["n_positives"] == 2


def _tables_with_outside(cfg: GlomConfig) -> tuple[EvaluationTables, str]:
    """The fixture tables plus outside users: 'o-keep' bought a task item and another one (a hidden
    positive with a row left), 'o-only' bought only the task item (no row left: nobody can score them),
    'o-neg' bought only the other item (a candidate negative)."""
    interactions, items, polarity = make_tables()
    tasks = ProtocolTasks.of(cfg, EvaluationTables(polarity=polarity, interactions=interactions, items=items)).tasks
    popular = tasks[0].item_id
    other = sorted(set(polarity["item_id"]) - {t.item_id for t in tasks})[0]
    outside = pd.DataFrame({
        "user_id": ["o-keep", "o-keep", "o-only", "o-neg"],
        "item_id": [popular, other, popular, other],
        "rating_norm": [1.0, 0.5, 1.0, 0.5],
    })
    return EvaluationTables(polarity=polarity, interactions=interactions, items=items, outside=outside), popular


def test_realistic_protocol_ranks_outside_users_and_no_held_out_purchase_reaches_them(tmp_path: Path) -> None:
    cfg = small_config(tmp_path, **{"evaluate.candidates": "all", "pm.use_profiles": False})
    tables, popular = _tables_with_outside(cfg)
    protocol = ProtocolTasks.of(cfg, tables)
    assert popular in {t.item_id for t in protocol.tasks}
    assert sorted(protocol.outside_purchasers[popular].tolist()) == ["o-keep", "o-only"]
    layout = RunLayout.at(tmp_path)
    inputs = protocol.run_inputs(cfg, layout, run=0)
    data = inputs.data
    # leakage: the outside users' purchase of the task item is not among the rows they are folded in from
    rows = data.outside_edges.assign(user_id=data.outside_user_ids[data.outside_edges["user_idx"]],
                                     item_id=data.item_ids[data.outside_edges["item_idx"]])
    task_items = {t.item_id for t in protocol.tasks}
    assert not rows["item_id"].isin(task_items).any()
    assert sorted(data.outside_user_ids.tolist()) == ["o-keep", "o-neg"]  # o-only has no row left
    sample = next(s for s in inputs.samples if s.split.task.item_id == popular)
    keep_row = data.n_users + data.outside_user_ids.tolist().index("o-keep")
    assert keep_row in sample.candidates[sample.labels].tolist()
    assert sample.notes["outside_positives"] == 1
    item = sample.campaign()
    assert item.counts()["n_audience"] == item.n_positives + sample.notes["positives_without_training_edges"]
    # the sampled protocol keeps its definition: graph users only
    sampled, _ = protocol.samples_for(inputs, cfg, 0, "sampled")
    assert all((s.candidates < data.n_users).all() and (s.non_seed_order < data.n_users).all() for s in sampled)


def test_evaluation_coverage_column_per_model(tmp_path: Path) -> None:
    from glom_plugin.evaluate.report import markdown_table
    from glom_plugin.evaluate.runner import run_evaluation
    from glom_plugin.storage import write_parquet

    cfg = small_config(tmp_path, **{"evaluate.candidates": "all", "evaluate.runs": 1})
    tables, popular = _tables_with_outside(cfg)
    layout = RunLayout.at(tmp_path)
    write_parquet(tables.interactions, layout.interactions)
    write_parquet(tables.items, layout.items)
    write_parquet(tables.polarity, layout.polarity_edges)
    write_parquet(tables.outside.assign(rating=1.0), layout.outside_interactions)
    result = run_evaluation(cfg, layout, ["cosine-centroid", "graph-constraint"])
    summary = result.summary()
    covering, blind = summary["cosine-centroid"]["coverage"], summary["graph-constraint"]["coverage"]
    assert blind < covering <= 1.0
    # the covering model misses only the audience nobody can score (o-only: no row left)
    audience = [t.counts for t in result.runs[0].models["cosine-centroid"].tasks]
    expected = np.mean([(c["n_positives"]) / c["n_audience"] for c in audience])
    assert covering == pytest.approx(expected)
    assert "coverage" in markdown_table(result)
    assert result.runs[0].data["n_outside_users"] == 2  # o-keep and o-neg; o-only has no row left
    assert json.loads(json.dumps(result.to_json(), default=str))["summary"]["graph-constraint"]["coverage"] == pytest.approx(blind)


def test_ingest_keeps_the_rows_of_users_the_filter_drops(tmp_path: Path, monkeypatch) -> None:
    from glom_plugin.data.hashing import hash_user_id
    from glom_plugin.stages.ingest import run_ingest
    from tests.unit.test_ingest import config, good_reviews, records_to_lines, review, write_lines

    monkeypatch.setenv("GLOM_ID_SALT", "unit-test-salt")
    # ONCE has one review of a kept item; LONER's ITEMX is dropped with them, their ITEM0 row is kept
    records = good_reviews(4, 4) + [review("ONCE", "ITEM1"), review("LONER", "ITEM0"), review("LONER", "ITEMX")]
    source = write_lines(tmp_path / "reviews.jsonl", records_to_lines(records))
    layout = RunLayout.at(tmp_path / "run")
    report = run_ingest(config(source, **{"data.min_user_interactions": 2, "data.min_item_interactions": 2}),
                        layout, echo=lambda _: None)
    outside = pd.read_parquet(layout.outside_interactions)
    once, loner = hash_user_id("ONCE", "unit-test-salt"), hash_user_id("LONER", "unit-test-salt")
    assert sorted(zip(outside["user_id"], outside["item_id"], strict=True)) == sorted([(once, "ITEM1"), (loner, "ITEM0")])
    assert (report.outside_users, report.outside_interactions) == (2, 2)
    # what training reads: the graph's users, and these two outside it
    interactions = pd.read_parquet(layout.interactions)
    polarity = polarity_from_sentiment(interactions.assign(sentiment=np.nan)[["user_id", "item_id", "rating_norm", "sentiment"]], GlomConfig())
    data = with_outside_users(build_lookalike_data(polarity, None, _config()), read_outside_rows(layout))
    assert sorted(data.outside_user_ids.tolist()) == sorted([once, loner])
    model = create_model("cosine-centroid", _config(), seed=0).fit(data)
    assert {once, loner} <= set(model.expand(data.user_ids[:2].tolist(), k=10).user_ids.tolist())


def test_glom_expand_returns_the_outside_user(tmp_path: Path, fitted_pm, community_data) -> None:
    from glom_plugin.models.saved import model_dir
    from glom_plugin.stages.expand import run_expand_stage

    data, _ = community_data
    layout = RunLayout.at(tmp_path / "run")
    save_model(fitted_pm, model_dir(layout, "pm"))
    buyers = data.edges.loc[data.edges["item_idx"] == 0, "user_idx"].to_numpy()
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("\n".join(data.user_ids[buyers].tolist()) + "\n")
    cfg = _config(**{"expand.top_k": data.n_users})
    run_expand_stage(cfg, layout, seeds, tmp_path / "out.csv", model_name="pm")
    assert NEW_USER in pd.read_csv(tmp_path / "out.csv")["user_id"].tolist()


def test_the_sampled_protocol_and_graph_users_scores_do_not_change_with_outside_users(tmp_path: Path) -> None:
    from glom_plugin.evaluate.runner import run_evaluation
    from glom_plugin.storage import write_parquet

    per_task = {}
    for variant in ("with", "without"):
        root = tmp_path / variant
        cfg = small_config(root, **{"evaluate.candidates": "sampled", "evaluate.runs": 1})
        tables, _ = _tables_with_outside(cfg)
        layout = RunLayout.at(root)
        write_parquet(tables.interactions, layout.interactions)
        write_parquet(tables.items, layout.items)
        write_parquet(tables.polarity, layout.polarity_edges)
        if variant == "with":
            write_parquet(tables.outside.assign(rating=1.0), layout.outside_interactions)
        result = run_evaluation(cfg, layout, ["cosine-centroid", "lr", "segments", "similarity-jaccard-prob"])
        per_task[variant] = {m: [t.metrics for t in result.runs[0].models[m].tasks] for m in result.model_names}
    assert per_task["with"] == per_task["without"]


@pytest.fixture(scope="module")
def fitted_glom(community_data):
    data, _ = community_data
    return create_model("glom-seedset", _config(**{"glm.epochs": 3}), seed=0).fit(data)


def test_glm_fold_in_goes_through_the_trained_layers(tmp_path: Path, fitted_glom, community_data) -> None:
    from glom_plugin.models.fold_in import GlmFoldIn

    data, _ = community_data
    model = fitted_glom
    # a graph user folded in through the layers from its items points where its h^L does (measured: mean
    # centred cosine 0.965, 10th percentile 0.94; it misses only its similar-user queries and its own h^0)
    fold = GlmFoldIn(model.glm_fold_state, model.config.glm.aggregator)
    folded = fold.embed(data.edges[["user_idx", "item_idx", "rating_norm"]], data.n_users)
    mean = model.embeddings.mean(axis=0)
    a, b = folded - mean, model.embeddings - mean
    cosine = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cosine.mean() > 0.9
    # the outside user is served through the same arrays after saving and loading
    assert model.user_ids[-1] == NEW_USER
    loaded = load_model(save_model(model, tmp_path / "glom"))
    assert loaded.glm_fold_state is not None
    np.testing.assert_allclose(loaded.user_embeddings(), model.user_embeddings(), atol=1e-6)
    buyers = data.edges.loc[data.edges["item_idx"] == 0, "user_idx"].to_numpy()
    assert NEW_USER in loaded.expand(data.user_ids[buyers].tolist(), k=loaded.n_users).user_ids.tolist()


def test_the_fold_in_state_is_the_same_whichever_backend_propagates_it(fitted_glom, community_data) -> None:
    """``state_from`` propagates with the backend GLM trained with (DGL's fused sums on the CPU, which never
    gather an edges x d tensor); the torch scatter backend gives the same arrays."""
    from dataclasses import replace

    from glom_plugin.models.fold_in import GLM_FOLD_KEYS, GlmFoldIn

    data, _ = community_data
    glm = fitted_glom.glm_result
    assert glm.history.backend == "dgl"
    by_backend = {
        backend: GlmFoldIn.state_from(replace(glm, fold_state=None, history=replace(glm.history, backend=backend)), data)
        for backend in ("dgl", "torch")
    }
    for key in GLM_FOLD_KEYS:
        np.testing.assert_allclose(by_backend["dgl"][key], by_backend["torch"][key], atol=1e-5, err_msg=key)


def test_fit_glm_records_the_fold_in_state_in_its_final_pass(fitted_glom, community_data) -> None:
    """``fit_glm``'s last forward also keeps each layer's fold-in inputs (``GlmFoldIn.propagate``): the same
    arrays, bit for bit, as a propagation of its own afterwards, and h^L as ``model(graph)`` gives it."""
    from dataclasses import replace

    import torch

    from glom_plugin.models.fold_in import GLM_FOLD_KEYS, GlmFoldIn
    from glom_plugin.models.glm import build_message_graph

    data, _ = community_data
    glm = fitted_glom.glm_result
    assert glm.fold_state is not None and GlmFoldIn.state_from(glm, data) is glm.fold_state
    fresh = GlmFoldIn.state_from(replace(glm, fold_state=None), data)
    for key in GLM_FOLD_KEYS:
        np.testing.assert_array_equal(glm.fold_state[key], fresh[key], err_msg=key)
    with torch.no_grad():
        h, r = glm.model(build_message_graph(glm.triples, glm.history.backend, glm.model.node.device))
    np.testing.assert_array_equal(glm.node_embeddings, h.numpy().astype(np.float32))
    np.testing.assert_array_equal(glm.relation_table, r.numpy().astype(np.float32))


def test_glm_fold_in_aggregates_like_eq3_on_a_hand_made_layer() -> None:
    from glom_plugin.models.fold_in import GlmFoldIn

    d = 2
    state = {
        "glm_fold_items": np.array([[[1.0, 0.0], [0.0, 1.0]]]),  # h_i^0 of items 0 and 1
        "glm_fold_relations": np.array([[[0.0, 0.0], [0.5, 0.5], [1.0, 1.0], [-1.0, -1.0]]]),
        "glm_fold_weights": np.eye(d)[None],
        "glm_fold_biases": np.zeros((1, d)),
        "glm_fold_attention": np.zeros((1, 2 * d)),
        "glm_fold_translation": np.array([0.0, 0.0]),
        "glm_fold_relation_ids": np.array([1, 2, 3]),  # interacted_by, liked_by, disliked_by
        "glm_fold_initial_items": np.array([[1.0, 0.0], [0.0, 1.0]]),
    }
    edges = pd.DataFrame({"user_idx": [0, 0], "item_idx": [0, 1], "rating_norm": [1.0, 0.0]})
    h = GlmFoldIn(state, "mean").embed(edges, 1)[0]
    # h^0 = mean of the items = (0.5, 0.5); queries: item 0 + interacted_by, item 1 + interacted_by,
    # item 0 + liked_by (rating 1 >= 0.5 and >= the user's mean 0.5), item 1 + disliked_by
    queries = np.array([[1.5, 0.5], [0.5, 1.5], [2.0, 1.0], [-1.0, 0.0]])
    np.testing.assert_allclose(h, np.array([0.5, 0.5]) + queries.mean(axis=0), atol=1e-6)
