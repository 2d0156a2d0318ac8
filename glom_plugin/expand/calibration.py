"""The similarity threshold T of §3.7, calibrated on the campaign's own seed list.

GLoM expands "users whose similarity with the seed users exceeds a threshold T" but leaves T's value open,
and no single number could serve: a cosine of GLoM vectors, a Jaccard of raw features and a probabilistic
aggregate live on different scales, and a tight niche audience scores higher than a broad one. The seeds,
however, are a sample of the very audience the advertiser wants to reach. So part of them is held out and
scored against the rest exactly as candidates are scored, and T is set to the score that a fraction
``seed_recall`` of the held-out seeds reach. The users still to be found come from the same audience, so
about that fraction of them clear T too: ``seed_recall`` is the recall the advertiser asks for, and the
precision at T is what the model's ranking earns.

Folds rather than leave-one-out: a fold costs one scoring call of any model (even one that trains per
campaign). Held-out seeds are scored against (K−1)/K of the list, so with max or probabilistic aggregation
T comes out slightly low (recall slightly above target) — the cautious side for an audience that must
not come out empty.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np

# score(rest_of_seeds, held_out_seeds) -> one score per held-out seed, as a candidate would get.
SeedScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]

DEFAULT_FOLDS = 5


def heldout_seed_scores(
    seeds: np.ndarray, score: SeedScorer, folds: int = DEFAULT_FOLDS, seed: int = 0
) -> np.ndarray:
    """Each seed's score when it is held out and the other folds act as the seed list (needs ≥ 2 seeds)."""
    seeds = np.asarray(seeds)
    if len(seeds) < 2:
        raise ValueError("calibrating T needs at least 2 seeds (one to hold out, one to score it against)")
    n_folds = min(max(int(folds), 2), len(seeds))
    fold_of = np.random.default_rng(seed).permutation(len(seeds)) % n_folds
    out = np.empty(len(seeds), dtype=np.float64)
    for fold in range(n_folds):
        held = fold_of == fold
        scores = np.asarray(score(seeds[~held], seeds[held]), dtype=np.float64)
        if scores.shape != (int(held.sum()),):
            raise ValueError(f"the scorer returned {scores.shape} scores for {int(held.sum())} held-out seeds")
        out[held] = scores
    return out


def threshold_for_recall(heldout_scores: np.ndarray, seed_recall: float) -> float:
    """The score that a fraction ``seed_recall`` of the held-out seeds reach (score >= T)."""
    if not 0.0 < seed_recall <= 1.0:
        raise ValueError(f"seed_recall must be in (0, 1], got {seed_recall}")
    scores = np.sort(np.asarray(heldout_scores, dtype=np.float64))[::-1]
    if len(scores) == 0 or not np.isfinite(scores).all():
        raise ValueError("held-out seed scores must be a non-empty array of finite numbers")
    # the ceil(recall · m)-th highest score: at least that share of the seeds is >= T
    return float(scores[int(np.ceil(seed_recall * len(scores))) - 1])


def seed_calibrated_threshold(
    seeds: np.ndarray,
    score: SeedScorer,
    seed_recall: float,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> float | None:
    """T for this seed list, or None when it has fewer than 2 seeds (nothing to hold out)."""
    if len(seeds) < 2:
        return None
    return threshold_for_recall(heldout_seed_scores(seeds, score, folds, seed), seed_recall)


def campaign_seed(run_seed: int, campaign_name: str) -> int:
    """A fold assignment seed that differs per campaign and per run but is stable across processes."""
    return (int(run_seed) * 1_000_003 + zlib.crc32(campaign_name.encode())) % (2**32)
