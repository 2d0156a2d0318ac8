"""Eq. 1 (§3.4): Pearson over the co-rated items' polarity, checked against scipy on random matrices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr

from glom_plugin.config import SimilarityConfig
from glom_plugin.graph.similarity import (
    SIMILARITY_BACKENDS,
    compute_similarity,
    resolve_similarity_backend,
    similarity_with_ids,
)


def random_polarity(seed: int, n_users: int = 25, n_items: int = 12, density: float = 0.5):
    rng = np.random.default_rng(seed)
    rated = rng.random((n_users, n_items)) < density
    polarity = rng.random((n_users, n_items))
    users, items = np.nonzero(rated)
    edges = pd.DataFrame({"user_idx": users, "item_idx": items, "polarity": polarity[users, items]})
    return rated, polarity, edges


def reference_pairs(
    rated: np.ndarray, polarity: np.ndarray, min_corated: int
) -> dict[tuple[int, int], tuple[float, int]]:
    """Brute force: scipy.stats.pearsonr on each pair's co-rated items (CM)."""
    pairs = {}
    for a in range(len(rated)):
        for b in range(a + 1, len(rated)):
            cm = rated[a] & rated[b]
            if cm.sum() >= max(2, min_corated):
                pairs[(a, b)] = (pearsonr(polarity[a, cm], polarity[b, cm])[0], int(cm.sum()))
    return pairs


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("block_size", [1, 7, 4096])
def test_pearson_over_corated_matches_scipy(seed: int, block_size: int) -> None:
    rated, polarity, edges = random_polarity(seed)
    cfg = SimilarityConfig(min_corated=3, t_sim=-1.0, top_k=0, block_size=block_size)
    result = compute_similarity(edges, len(rated), cfg, n_items=rated.shape[1])
    expected = reference_pairs(rated, polarity, 3)
    got = {(a, b): (s, n) for a, b, s, n in result.itertuples(index=False)}
    assert set(got) == set(expected)
    for pair, (sim, n) in expected.items():
        assert got[pair][0] == pytest.approx(sim, abs=1e-9)
        assert got[pair][1] == n
    assert (result["user_a"] < result["user_b"]).all()


def test_means_are_over_corated_items_not_the_users_whole_history() -> None:
    # User 0 rated items 0-2 with polarity 0.1, 0.2, 0.3 and item 3 with 1.0 (outside CM with user 1).
    # Over CM = {0, 1, 2} both users rise together -> Pearson 1. With user 0's overall mean (0.4)
    # the sum would differ; Eq. 1 uses the CM mean.
    edges = pd.DataFrame(
        {
            "user_idx": [0, 0, 0, 0, 1, 1, 1],
            "item_idx": [0, 1, 2, 3, 0, 1, 2],
            "polarity": [0.1, 0.2, 0.3, 1.0, 0.5, 0.6, 0.7],
        }
    )
    result = compute_similarity(edges, 2, SimilarityConfig(min_corated=2, t_sim=0.0, top_k=0))
    assert result[["user_a", "user_b"]].values.tolist() == [[0, 1]]
    assert result["similarity"].iloc[0] == pytest.approx(1.0)
    assert result["n_corated"].iloc[0] == 3


def test_min_corated_and_t_sim_filter() -> None:
    rated, polarity, edges = random_polarity(3, n_users=30, n_items=10, density=0.6)
    reference = reference_pairs(rated, polarity, 4)
    result = compute_similarity(edges, len(rated), SimilarityConfig(min_corated=4, t_sim=0.3, top_k=0))
    expected = {pair for pair, (sim, _) in reference.items() if sim >= 0.3}
    assert set(zip(result["user_a"], result["user_b"], strict=False)) == expected
    assert (result["n_corated"] >= 4).all() and (result["similarity"] >= 0.3).all()


def test_constant_polarity_over_cm_is_undefined_and_dropped() -> None:
    edges = pd.DataFrame(
        {"user_idx": [0, 0, 1, 1], "item_idx": [0, 1, 0, 1], "polarity": [0.8, 0.8, 0.2, 0.9]}
    )
    result = compute_similarity(edges, 2, SimilarityConfig(min_corated=2, t_sim=-1.0, top_k=0))
    assert result.empty


def test_top_k_keeps_each_users_best_partners() -> None:
    rated, polarity, edges = random_polarity(4, n_users=30, n_items=10, density=0.7)
    full = compute_similarity(edges, len(rated), SimilarityConfig(min_corated=2, t_sim=-1.0, top_k=0))
    capped = compute_similarity(edges, len(rated), SimilarityConfig(min_corated=2, t_sim=-1.0, top_k=3))
    # Expected: union over users of each user's 3 best partners (ties by lower index).
    directed = pd.concat(
        [
            full.rename(columns={"user_a": "u", "user_b": "v"}),
            full.rename(columns={"user_a": "v", "user_b": "u"}),
        ]
    ).sort_values(["u", "similarity", "v"], ascending=[True, False, True])
    best = directed.groupby("u").head(3)
    expected = {(min(u, v), max(u, v)) for u, v in zip(best["u"], best["v"], strict=False)}
    assert set(zip(capped["user_a"], capped["user_b"], strict=False)) == expected
    assert len(capped) < len(full)


def test_backend_registry_is_open_and_checked() -> None:
    assert SIMILARITY_BACKENDS["memory"].endswith(":pearson_similarity_memory")
    assert "spark" in SIMILARITY_BACKENDS
    with pytest.raises(ValueError, match="unknown similarity backend"):
        resolve_similarity_backend("nope")


def test_id_version_orders_string_ids() -> None:
    sim = pd.DataFrame({"user_a": [0], "user_b": [1], "similarity": [0.9], "n_corated": [3]})
    out = similarity_with_ids(sim, np.array(["zz", "aa"], dtype=object))
    assert out.iloc[0].tolist() == ["aa", "zz", 0.9, 3]


def test_pairs_budget_blocks_give_the_same_edges() -> None:
    rated, polarity, edges = random_polarity(5, n_users=40, n_items=10, density=0.6)
    base = SimilarityConfig(min_corated=2, t_sim=0.0, top_k=5)
    wide = compute_similarity(edges, len(rated), base)
    narrow = compute_similarity(edges, len(rated), base.model_copy(update={"block_pairs_budget": 30}))
    pd.testing.assert_frame_equal(wide, narrow)


def test_user_blocks_respect_size_and_budget() -> None:
    from glom_plugin.graph.similarity import user_blocks

    cost = np.array([5, 5, 5, 100, 1, 1, 1, 1], dtype=float)
    blocks = user_blocks(cost, block_size=3, pairs_budget=12)
    assert blocks == [(0, 2), (2, 3), (3, 4), (4, 7), (7, 8)]


def test_alignment_fallback_handles_a_differently_ordered_product() -> None:
    import scipy.sparse as sp

    from glom_plugin.graph.similarity import _aligned_data

    pattern = sp.csr_matrix(
        (np.array([1.0, 2.0, 3.0]), np.array([2, 0, 1]), np.array([0, 2, 3])), shape=(2, 3)
    )
    product = sp.csr_matrix(
        (np.array([20.0, 10.0, 30.0]), np.array([0, 2, 1]), np.array([0, 2, 3])), shape=(2, 3)
    )
    # pattern order: (0,2), (0,0), (1,1) -> product values there: 10, 20, 30
    assert _aligned_data(product, pattern).tolist() == [10.0, 20.0, 30.0]


def test_streaming_top_k_prune_is_exact(monkeypatch) -> None:
    import glom_plugin.graph.similarity as similarity

    rated, polarity, edges = random_polarity(6, n_users=40, n_items=10, density=0.6)
    cfg = SimilarityConfig(min_corated=2, t_sim=-1.0, top_k=2, block_size=3)
    once = compute_similarity(edges, len(rated), cfg)
    monkeypatch.setattr(similarity, "PRUNE_MIN_ROWS", 0)  # prune after every block
    streamed = compute_similarity(edges, len(rated), cfg)
    pd.testing.assert_frame_equal(once, streamed)
