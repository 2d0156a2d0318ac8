"""Which users can be in the top k of sim(u, S): the index searches each aggregation needs, and a bound
on what any user the searches did not return could score.

- ``mean``: sim(u, S) = cos(u, c) with c the normalised mean of the normalised seeds
  (``aggregation.aggregate_similarity``), so the nearest users to c *are* the ranking: one search.
- ``max`` (Yahoo Eq. 3): a user's score is its cosine to its best seed s*, and every user ahead of it in
  s*'s neighbour list scores at least as high, so the top k sit within the seeds' k + m nearest
  neighbours: one search with the centroid and the m seeds as queries.
- ``probabilistic`` (Yahoo Eq. 4): no such containment (a user moderately like every seed can beat one
  close to a single seed); the same searches, and the bound below decides whether they sufficed.

The bound: a user missing from query q's list has cosine to q at most the list's last score r_q. So a
user missing from every list scores at most r_c (mean), max_s r_s (max) or 1 - prod_s (1 - r_s)
(probabilistic). On an exact index, when the k-th best candidate beats that bound, no other user can
enter the top k and the candidates are *complete*; the expander falls back to scoring every user when
they are not. On an approximate index (IVF, HNSW) the lists are not exact, so there is no bound: the
candidates' recall is measured instead (``benchmarks/bench_serving.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from glom_plugin.expand.index import UserIndex, search


@dataclass(frozen=True)
class Candidates:
    """Rows to rescore exactly (unique, ascending), their scores when the search already gave them (mean:
    the cosine to the centroid *is* sim(u, S)), and the most a row outside them could score (None: no
    bound, the index is approximate)."""

    rows: np.ndarray
    outside_bound: float | None
    scores: np.ndarray | None = None


def _unique(ids: np.ndarray) -> np.ndarray:
    found = ids.ravel()
    return np.unique(found[found >= 0])


def last_scores(scores: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Per query, the score of its last returned neighbour (-1 when it returned none)."""
    out = np.full(len(scores), -1.0, dtype=np.float64)
    for q in range(len(scores)):
        valid = ids[q] >= 0
        if valid.any():
            out[q] = float(scores[q][valid][-1])
    return out


def centroid_candidates(index: UserIndex, seed_units: np.ndarray, centroid: np.ndarray, budget: int) -> Candidates:
    scores, ids = search(index, centroid[None, :], budget, normalized=True)
    bound = float(last_scores(scores, ids)[0]) if index.exact else None
    found = ids[0] >= 0
    order = np.argsort(ids[0][found])  # one query: its ids are already distinct
    return Candidates(ids[0][found][order], bound, scores[0][found][order])


def _seed_searches(index: UserIndex, seed_units: np.ndarray, centroid: np.ndarray, budget: int):
    scores, ids = search(index, np.vstack([centroid[None, :], seed_units]), budget, normalized=True)
    return _unique(ids), last_scores(scores[1:], ids[1:]) if index.exact else None


def max_candidates(index: UserIndex, seed_units: np.ndarray, centroid: np.ndarray, budget: int) -> Candidates:
    rows, last = _seed_searches(index, seed_units, centroid, budget)
    return Candidates(rows, None if last is None else float(last.max()))


def probabilistic_candidates(index: UserIndex, seed_units: np.ndarray, centroid: np.ndarray, budget: int) -> Candidates:
    rows, last = _seed_searches(index, seed_units, centroid, budget)
    bound = None if last is None else float(-np.expm1(np.log1p(-np.clip(last, 0.0, 1.0 - 1e-7)).sum()))
    return Candidates(rows, bound)


CandidateSearch = Callable[[UserIndex, np.ndarray, np.ndarray, int], Candidates]
CANDIDATE_SEARCHES: dict[str, CandidateSearch] = {
    "mean": centroid_candidates,
    "max": max_candidates,
    "probabilistic": probabilistic_candidates,
}


def complete(
    outside_bound: float | None, ranked_scores: np.ndarray, k: int | None, threshold: float | None, slack: float = 0.0
) -> bool:
    """Whether ``ranked_scores`` (the kept candidates' scores, best first, already cut to k and T) is
    provably the exact answer: no user outside the candidates can reach the last place. ``slack`` covers
    the rounding between the index's scores and the re-scored ones."""
    if outside_bound is None:
        return False
    outside_bound += slack
    if k is not None and len(ranked_scores) >= k:
        return bool(ranked_scores[k - 1] > outside_bound)
    # fewer than k kept: an outsider must not clear T (or, with no T, there must be no outsider at all)
    return threshold is not None and outside_bound < threshold
