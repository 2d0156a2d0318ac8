"""Index-backed expansion returns brute force's ranking: the same users in the same order with the same
scores, for every aggregation, with and without T, whether the candidates sufficed or not."""

from __future__ import annotations

import numpy as np
import pytest

from glom_plugin.config import ExpandConfig, GlomConfig
from glom_plugin.expand.aggregation import aggregate_similarity, exact_similarity
from glom_plugin.expand.candidates import complete
from glom_plugin.expand.expander import expand_audience, rank_with_index
from glom_plugin.expand.index import build_index
from glom_plugin.expand.topk import top_k_order
from glom_plugin.models.artifact import TrainedModel
from glom_plugin.serving.engine import ExpansionEngine
from glom_plugin.serving.schemas import ExpandRequest


def clustered(n: int = 4000, dim: int = 16, clusters: int = 12, seed: int = 0) -> tuple[TrainedModel, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    labels = rng.integers(0, clusters, n)
    emb = (centres[labels] + 0.7 * rng.normal(size=(n, dim))).astype(np.float32)
    return TrainedModel("m", np.array([f"u{i}" for i in range(n)]), emb), labels


def brute_force(model: TrainedModel, seed_rows: np.ndarray, aggregation: str, k: int | None, threshold: float | None):
    """Every non-seed user scored, stable descending sort — the definition of the exact ranking."""
    scores = exact_similarity(model.user_embeddings, model.user_embeddings[seed_rows], aggregation)
    rows = np.setdiff1d(np.arange(model.n_users), seed_rows)
    rows, scores = rows, scores[rows]
    if threshold is not None:
        rows, scores = rows[scores >= threshold], scores[scores >= threshold]
    order = np.argsort(-scores, kind="stable")[:k]
    return rows[order], scores[order]


MODEL, LABELS = clustered()
FLAT = build_index(MODEL.user_embeddings, kind="flat")


def campaigns(rng: np.random.Generator) -> list[np.ndarray]:
    one_cluster = [rng.choice(np.flatnonzero(LABELS == c), size=m, replace=False) for c, m in ((0, 20), (3, 5), (7, 1))]
    scattered = [rng.choice(MODEL.n_users, size=m, replace=False) for m in (2, 20, 60)]
    return one_cluster + scattered


@pytest.mark.parametrize("aggregation", ["mean", "max", "probabilistic"])
@pytest.mark.parametrize("k,threshold", [(100, None), (7, None), (50, 0.55), (300, 0.9)])
def test_flat_index_ranking_is_brute_force(aggregation, k, threshold):
    for seeds in campaigns(np.random.default_rng(k)):
        rows, scores, _ = rank_with_index(MODEL.user_embeddings, FLAT, seeds, aggregation, k, threshold)
        want_rows, want_scores = brute_force(MODEL, seeds, aggregation, k, threshold)
        np.testing.assert_array_equal(rows, want_rows)
        np.testing.assert_array_equal(scores, want_scores)  # bit for bit: one scoring formula on every path


@pytest.mark.parametrize("aggregation", ["mean", "max"])
def test_mean_and_max_need_only_their_searches(aggregation):
    """The proof holds on one cluster's campaign: the answer comes from the searches, not a full scan."""
    seeds = np.flatnonzero(LABELS == 2)[:20]
    _, _, source = rank_with_index(MODEL.user_embeddings, FLAT, seeds, aggregation, 100, None)
    assert source == "flat"


def test_expand_audience_and_the_engine_agree_with_brute_force():
    engine = ExpansionEngine(MODEL, GlomConfig().with_overrides(**{"serving.index_kind": "flat"}), uri="t")
    seeds = np.flatnonzero(LABELS == 5)[:20]
    ids = MODEL.user_ids[seeds].tolist()
    for aggregation in ("mean", "max", "probabilistic"):
        want_rows, want_scores = brute_force(MODEL, seeds, aggregation, 100, None)
        result = expand_audience(MODEL, ids, ExpandConfig(aggregation=aggregation), k=100, index=FLAT)
        assert result.lookalikes["user_id"].tolist() == MODEL.user_ids[want_rows].tolist()
        answer = engine.expand(ExpandRequest(seed_ids=ids, k=100, aggregation=aggregation))
        assert [r.user_id for r in answer.lookalikes] == MODEL.user_ids[want_rows].tolist()
        np.testing.assert_allclose([r.score for r in answer.lookalikes], want_scores, atol=2e-6)
        assert [r.rank for r in answer.lookalikes] == list(range(1, 101))


def test_top_k_order_is_a_stable_descending_sort():
    rng = np.random.default_rng(3)
    for n in (500, 5000):  # one sort below SORT_BELOW, partition + sort above
        scores = rng.integers(0, 6, n).astype(np.float32)  # many ties
        for k in (1, 5, 37, 499, 500, 900, 4999, None):
            np.testing.assert_array_equal(top_k_order(scores, k), np.argsort(-scores, kind="stable")[:k])
        assert len(top_k_order(scores, 0)) == 0


def test_completeness_proof():
    ranked = np.array([0.9, 0.8, 0.7])
    assert complete(0.65, ranked, k=3, threshold=None)
    assert not complete(0.7, ranked, k=3, threshold=None)  # an outsider could tie the last place
    assert not complete(0.5, ranked, k=4, threshold=None)  # fewer than k kept and no T: outsiders may fill it
    assert complete(0.5, ranked, k=4, threshold=0.6) and not complete(0.6, ranked, k=4, threshold=0.6)
    assert not complete(None, ranked, k=3, threshold=None)  # approximate index: no proof


def test_exact_similarity_agrees_with_blas_and_does_not_depend_on_the_other_rows():
    rng = np.random.default_rng(8)
    users, seeds = rng.normal(size=(3000, 16)).astype(np.float32), rng.normal(size=(7, 16)).astype(np.float32)
    for aggregation in ("mean", "max", "probabilistic"):
        full = exact_similarity(users, seeds, aggregation)
        np.testing.assert_allclose(full, aggregate_similarity(users, seeds, aggregation), atol=1e-6)
        picked = rng.choice(3000, 137, replace=False)
        np.testing.assert_array_equal(exact_similarity(users[picked], seeds, aggregation), full[picked])


@pytest.mark.parametrize("k,threshold", [(100, None), (7, None), (50, 0.55), (400, None)])  # 400: faiss pads with -1
def test_mean_on_an_approximate_index_ranks_its_candidates_as_the_general_path_does(k, threshold):
    """mean's one-search path (``_rank_mean``) against the steps every aggregation shares, on the same IVF
    candidates: the centroid's neighbours minus the seeds, short-listed and re-scored exactly."""
    from glom_plugin.expand.aggregation import SeedSet
    from glom_plugin.expand.candidates import centroid_candidates
    from glom_plugin.expand.expander import SEARCH_MARGIN, _without, shortlist_ranking

    ivf = build_index(MODEL.user_embeddings, kind="ivf", nprobe=4, seed=0)
    for seeds in campaigns(np.random.default_rng(k)):
        rows, scores, source = rank_with_index(MODEL.user_embeddings, ivf, seeds, "mean", k, threshold)
        seed_set = SeedSet.of(MODEL.user_embeddings[seeds])
        found = centroid_candidates(ivf, seed_set.units, seed_set.centroid, k + len(seeds) + SEARCH_MARGIN)
        others = _without(found.rows, seeds)
        want_rows, want_scores = shortlist_ranking(
            MODEL.user_embeddings, found.rows[others], found.scores[others], seed_set, "mean", k, threshold
        )
        assert source == "ivf"
        np.testing.assert_array_equal(rows, want_rows)
        np.testing.assert_array_equal(scores, want_scores)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_search_hands_back_the_very_unit_vectors_exact_scoring_would_compute(kind):
    """``search_with_vectors``' copies are ``l2_normalize(embeddings[row])`` bit for bit (mean re-scores them
    instead of gathering the rows), and its scores and ids are ``search``'s; padding rows are -1."""
    from glom_plugin.expand.aggregation import l2_normalize
    from glom_plugin.expand.index import search, search_with_vectors

    index = FLAT if kind == "flat" else build_index(MODEL.user_embeddings, kind=kind, nprobe=4, seed=0)
    queries = MODEL.user_embeddings[[3, 70, 900]]
    scores, ids, vectors = search_with_vectors(index, queries, 150)
    want_scores, want_ids = search(index, queries, 150)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(scores, want_scores)
    found = ids >= 0
    assert found.sum() > 300
    np.testing.assert_array_equal(vectors[found], l2_normalize(MODEL.user_embeddings[ids[found]]))


def test_norms_kept_from_the_build_normalise_seeds_to_the_same_bits():
    """``build_index`` keeps each row's ``row_norms``; ``SeedSet.of_rows`` divides a gather by them and must
    give ``SeedSet.of``'s units and centroid bit for bit, so the ranking is the same with or without them
    (also for float64 embeddings, which every path first rounds to float32)."""
    from dataclasses import replace

    from glom_plugin.expand.aggregation import SeedSet, row_norms

    ivf = build_index(MODEL.user_embeddings, kind="ivf", nprobe=4, seed=0)
    np.testing.assert_array_equal(ivf.norms, row_norms(MODEL.user_embeddings))
    rng = np.random.default_rng(5)
    wide = MODEL.user_embeddings.astype(np.float64) * 1.0001
    for _ in range(50):
        rows = rng.choice(len(MODEL.user_embeddings), size=int(rng.integers(1, 40)), replace=False)
        for emb, norms in ((MODEL.user_embeddings, ivf.norms), (wide, row_norms(wide))):
            got, want = SeedSet.of_rows(emb, rows, norms), SeedSet.of(emb[rows])
            np.testing.assert_array_equal(got.units, want.units)
            np.testing.assert_array_equal(got.centroid, want.centroid)
    without = replace(ivf, norms=None)
    for seeds in (rng.choice(len(MODEL.user_embeddings), 20, replace=False) for _ in range(10)):
        for aggregation in ("mean", "max"):
            a = rank_with_index(MODEL.user_embeddings, ivf, seeds, aggregation, 60, None)
            b = rank_with_index(MODEL.user_embeddings, without, seeds, aggregation, 60, None)
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
