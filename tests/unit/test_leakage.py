"""No held-out purchase reaches any model: not as an edge, not inside a similarity, not in a profile.

Runs the real training-data path (polarity_from_sentiment -> build_lookalike_data -> Pearson similarity
-> attach_profile_embeddings) through ``run_evaluation`` and recomputes each run's held-out pairs from the
same seeds to check what every model was given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glom_plugin.text.profiles as profiles_module
from glom_plugin.config import GlomConfig
from glom_plugin.evaluate.campaigns import held_out_pairs, purchasers_by_item, select_tasks, split_tasks
from glom_plugin.evaluate.runner import run_evaluation
from glom_plugin.evaluate.training_data import EvaluationTables, build_training_data, drop_pairs
from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.layout import RunLayout
from tests.unit.evaluate_fixtures import small_config, write_run


def _pairs(frame: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(frame["user_id"].astype(str), frame["item_id"].astype(str), strict=True))


def _edge_pairs(data: LookalikeData) -> set[tuple[str, str]]:
    users = data.user_ids[data.edges["user_idx"].to_numpy()]
    items = data.item_ids[data.edges["item_idx"].to_numpy()]
    return set(zip(map(str, users), map(str, items), strict=True))


def test_no_held_out_edge_reaches_edges_similarity_or_profiles(tmp_path: Path, monkeypatch) -> None:
    layout = write_run(tmp_path / "run")
    cfg = small_config(tmp_path / "run")
    built: list[tuple[EvaluationTables, LookalikeData]] = []
    profile_inputs: list[pd.DataFrame] = []
    real_attach = profiles_module.attach_profile_embeddings

    def spy_attach(data, interactions, items, cfg_, layout_):  # records, then runs the real function
        profile_inputs.append(interactions.copy())
        return real_attach(data, interactions, items, cfg_, layout_)

    monkeypatch.setattr(profiles_module, "attach_profile_embeddings", spy_attach)

    def recording_builder(train: EvaluationTables, cfg_: GlomConfig, layout_: RunLayout) -> LookalikeData:
        data = build_training_data(train, cfg_, layout_)
        built.append((train, data))
        return data

    run_evaluation(cfg, layout, ["random"], runs=2, data_builder=recording_builder)
    assert len(built) == 2 and len(profile_inputs) == 2

    full = EvaluationTables.load(layout)
    purchasers = purchasers_by_item(full.polarity)
    tasks = select_tasks(purchasers, cfg.evaluate.min_purchasers, cfg.evaluate.max_tasks, cfg.seed)
    for run, ((train, data), interactions) in enumerate(zip(built, profile_inputs, strict=True)):
        splits = split_tasks(tasks, purchasers, cfg.evaluate.seed_fraction, cfg.seed, run)
        held = _pairs(held_out_pairs(splits))
        seeds = {(u, s.task.item_id) for s in splits for u in s.seed_pool}
        assert held and len(held) == sum(len(s.positives) for s in splits)

        edges = _edge_pairs(data)
        assert not edges & held  # no held-out (user, item) edge in data.edges
        assert seeds <= edges  # the advertiser's seeds keep their purchase edges
        assert edges == _pairs(full.polarity) - held  # and nothing else was removed
        assert not _pairs(interactions) & held  # profiles are built without held-out purchases
        assert _pairs(interactions) == _pairs(full.interactions) - held
        assert not _pairs(train.polarity) & held

        # every similarity edge is Eq. 1 over *training* co-rated items only
        matrix = data.user_item_matrix()
        corated = (matrix @ matrix.T).tocsr()
        for a, b, n in data.similarity[["user_a", "user_b", "n_corated"]].itertuples(index=False):
            assert corated[a, b] == n
        # and the users of the data are the full index: stable across runs
        assert list(data.user_ids) == sorted(full.polarity["user_id"].unique())


def test_users_linked_only_through_a_held_out_item_get_no_similarity(tmp_path: Path) -> None:
    """a and b co-rated the task item T and X, with the same polarity pattern (Pearson = 1 over {T, X}).
    Holding out b's purchase of T leaves one co-rated item: Eq. 1 is undefined and the edge must go."""
    rows = [
        ("a", "T", 1.00),
        ("a", "X", 0.25),
        ("b", "T", 0.75),
        ("b", "X", 0.00),
        ("c", "X", 0.50),
        ("c", "Y", 1.00),
    ]
    polarity = pd.DataFrame(rows, columns=["user_id", "item_id", "rating_norm"])
    polarity["sentiment"] = np.nan
    interactions = polarity[["user_id", "item_id", "rating_norm"]].assign(
        rating=1.0, text=None, review_title=None
    )
    items = pd.DataFrame({"item_id": ["T", "X", "Y"], "title": ["t", "x", "y"], "categories": [[], [], []]})
    tables = EvaluationTables(polarity=polarity, interactions=interactions, items=items)
    cfg = GlomConfig().with_overrides(**{"pm.use_profiles": False, "similarity.min_corated": 2})
    layout = RunLayout.at(tmp_path)

    full = build_training_data(tables, cfg, layout)
    pair = (list(full.user_ids).index("a"), list(full.user_ids).index("b"))
    assert [tuple(r) for r in full.similarity[["user_a", "user_b"]].to_numpy()] == [pair]
    assert full.similarity["similarity"].iloc[0] == pytest.approx(1.0)

    held = pd.DataFrame({"user_id": ["b"], "item_id": ["T"]})
    train = build_training_data(tables.without(held), cfg, layout)
    assert train.similarity.empty
    assert ("b", "T") not in _edge_pairs(train) and ("a", "T") in _edge_pairs(train)
    assert list(train.user_ids) == ["a", "b", "c"]  # b keeps its index and its other edge


def test_drop_pairs_is_an_exact_anti_join() -> None:
    frame = pd.DataFrame(
        {"user_id": ["a", "a", "b", "c"], "item_id": ["x", "y", "x", "x"], "v": [1, 2, 3, 4]}
    )
    out = drop_pairs(frame, pd.DataFrame({"user_id": ["a", "c", "z"], "item_id": ["x", "x", "x"]}))
    assert out.to_dict("list") == {"user_id": ["a", "b"], "item_id": ["y", "x"], "v": [2, 3]}
    assert drop_pairs(frame, pd.DataFrame({"user_id": [], "item_id": []})).equals(frame)


def test_seedset_episodes_never_use_a_held_out_purchase(tmp_path: Path, monkeypatch) -> None:
    """glm.objective=seedset builds its campaigns from the training graph's item audiences: no pseudo-seed
    or pseudo-audience pair may be a purchase the evaluation holds out."""
    from glom_plugin.models import seedset

    layout = write_run(tmp_path / "run")
    cfg = small_config(
        tmp_path / "run", **{"pm.dim": 8, "pm.epochs": 2, "glm.epochs": 2, "glm.seedset_episodes": 64}
    )
    built: list[LookalikeData] = []
    episodes_per_run: list[list] = []
    real_episodes = seedset.SeedSetObjective.episodes

    def recording_builder(train: EvaluationTables, cfg_: GlomConfig, layout_: RunLayout) -> LookalikeData:
        built.append(build_training_data(train, cfg_, layout_))
        episodes_per_run.append([])
        return built[-1]

    def spy_episodes(self):
        drawn = real_episodes(self)
        episodes_per_run[-1].extend(drawn)
        return drawn

    monkeypatch.setattr(seedset.SeedSetObjective, "episodes", spy_episodes)
    run_evaluation(cfg, layout, ["glom-seedset"], runs=2, data_builder=recording_builder)
    full = EvaluationTables.load(layout)
    purchasers = purchasers_by_item(full.polarity)
    tasks = select_tasks(purchasers, cfg.evaluate.min_purchasers, cfg.evaluate.max_tasks, cfg.seed)
    for run, (data, episodes) in enumerate(zip(built, episodes_per_run, strict=True)):
        assert episodes, "the seed-set objective drew no episode"
        held = _pairs(held_out_pairs(split_tasks(tasks, purchasers, cfg.evaluate.seed_fraction, cfg.seed, run)))
        used = {
            (str(data.user_ids[u]), str(data.item_ids[item - data.n_users]))
            for item, seeds, audience in episodes
            for u in np.concatenate([seeds, audience])
        }
        assert used and not used & held
        assert used <= _edge_pairs(data)  # only purchases the training graph holds
