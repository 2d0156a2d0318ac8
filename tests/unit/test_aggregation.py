"""sim(u, S): Yahoo Eq. 3 (max), Eq. 4 (probabilistic) and the centroid mean, against direct formulas."""

import numpy as np
import pytest

from glom_plugin.expand.aggregation import aggregate_similarity, l2_normalize


def _cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_max_and_probabilistic_match_the_formulas():
    rng = np.random.default_rng(0)
    cands, seeds = rng.random((7, 5)), rng.random((3, 5))
    got_max = aggregate_similarity(cands, seeds, "max", block_size=2)
    got_prob = aggregate_similarity(cands, seeds, "probabilistic", block_size=3)
    for i, c in enumerate(cands):
        sims = [_cos(c, s) for s in seeds]
        assert got_max[i] == pytest.approx(max(sims), abs=1e-5)
        assert got_prob[i] == pytest.approx(1 - np.prod([1 - min(s, 1 - 1e-7) for s in sims]), abs=1e-5)


def test_mean_is_similarity_to_the_seed_centroid():
    rng = np.random.default_rng(1)
    cands, seeds = rng.normal(size=(4, 6)), rng.normal(size=(5, 6))
    centroid = l2_normalize(seeds).mean(axis=0)
    expected = [_cos(c, centroid) for c in cands]
    np.testing.assert_allclose(aggregate_similarity(cands, seeds, "mean"), expected, atol=1e-5)


def test_probabilistic_does_not_underflow_with_many_seeds():
    seeds = np.tile([[1.0, 0.0]], (5000, 1))
    out = aggregate_similarity(np.array([[0.6, 0.8], [0.0, 1.0]]), seeds, "probabilistic")
    assert out[0] == pytest.approx(1.0, abs=1e-6) and out[1] == pytest.approx(0.0, abs=1e-6)


def test_empty_seed_list_and_unknown_method_are_errors():
    with pytest.raises(ValueError, match="empty"):
        aggregate_similarity(np.ones((2, 2)), np.ones((0, 2)))
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate_similarity(np.ones((2, 2)), np.ones((1, 2)), "median")
