"""sim(u, S): how alike a candidate u is to a seed list S, from per-user embeddings.

- ``max``            Yahoo Eq. 3: the best single seed match.
- ``mean``           similarity to the seed centroid (GLoM's retrieval by user embedding similarity).
- ``probabilistic``  Yahoo Eq. 4: 1 - prod_s (1 - sim(u, s)), similarities clipped to [0, 1].

Computed blockwise so memory is O(block x |S|), never O(|U| x |S|).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Aggregation = Literal["max", "mean", "probabilistic"]
AGGREGATIONS: tuple[str, ...] = ("max", "mean", "probabilistic")


def row_norms(matrix: np.ndarray) -> np.ndarray:
    """Each row's length as ``l2_normalize`` divides by, (n, 1) float32 (at least 1e-12). A row's value
    depends on that row alone, so norms kept from a build divide any later gather of the same rows to the
    same bits."""
    matrix = np.asarray(matrix, dtype=np.float32)
    # what np.linalg.norm(axis=1) computes, bit for bit, without its per-call overhead (online requests
    # normalise a handful of small arrays each)
    return np.maximum(np.sqrt(np.add.reduce(matrix * matrix, axis=1, keepdims=True)), 1e-12)


def l2_normalize(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    return matrix / row_norms(matrix)


@dataclass(frozen=True)
class SeedSet:
    """A campaign's seeds as expansion compares them, computed once: unit vectors and the normalised mean
    of those (the centroid of ``mean`` aggregation)."""

    units: np.ndarray
    centroid: np.ndarray

    @classmethod
    def of(cls, seeds: np.ndarray) -> SeedSet:
        if len(seeds) == 0:
            raise ValueError("the seed list is empty")
        return cls.of_units(l2_normalize(seeds))

    @classmethod
    def of_rows(cls, embeddings: np.ndarray, rows: np.ndarray, norms: np.ndarray) -> SeedSet:
        """``of(embeddings[rows])`` with the rows' ``row_norms`` computed once per model (``norms``), not
        per request: the same bits, four numpy calls fewer (~11 us of an online request)."""
        if len(rows) == 0:
            raise ValueError("the seed list is empty")
        return cls.of_units(np.asarray(embeddings.take(rows, axis=0), dtype=np.float32) / norms.take(rows, axis=0))

    @classmethod
    def of_units(cls, units: np.ndarray) -> SeedSet:
        # the sum, not the mean: the same direction in fewer steps. Its length in Python floats (sqrt in
        # float64 then rounded is float32's correctly rounded sqrt): each numpy call on a 64-vector costs
        # ~5 us in an online request, between searches that flush the caches
        total = np.add.reduce(units, axis=0)
        return cls(units, total / max(math.sqrt(float(np.add.reduce(total * total))), 1e-12))


def retrieval_vectors(embeddings: np.ndarray, center: bool = True) -> np.ndarray:
    """The vectors expansion compares: user embeddings centred on the population mean (``expand.center``).

    Why: an offset every user shares says nothing about who is alike, yet it dominates cosine. Graph
    propagation makes one: a user's mean over ~150 neighbours' knowledge queries is nearly the same
    vector for every active user. On MovieLens, two untrained GLM-Attn1 layers over PM's embeddings cut
    lookalike PR-AUC from 0.549 to 0.442 with raw cosine; centred, it was 0.533
    (benchmarks/results/glm_selection_movielens.md). Cosine around the mean is invariant to any shared
    offset and leaves a centred space unchanged.
    """
    vectors = np.asarray(embeddings, dtype=np.float32)
    if not center or len(vectors) == 0:
        return vectors
    return vectors - vectors.mean(axis=0, keepdims=True)


def aggregate_similarity(
    candidates: np.ndarray,
    seeds: np.ndarray,
    method: Aggregation = "mean",
    block_size: int = 8192,
) -> np.ndarray:
    """Cosine-based sim(u, S) for each row of ``candidates`` (n, d) against ``seeds`` (m, d)."""
    if method not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {method!r}; choose one of {AGGREGATIONS}")
    if len(seeds) == 0:
        raise ValueError("the seed list is empty")
    cand = l2_normalize(candidates)
    seed = l2_normalize(seeds)
    if method == "mean":
        centroid = l2_normalize(seed.mean(axis=0, keepdims=True))[0]
        return cand @ centroid
    out = np.empty(len(cand), dtype=np.float32)
    for start in range(0, len(cand), block_size):
        out[start : start + block_size] = _over_seeds(cand[start : start + block_size] @ seed.T, method)
    return out


def _over_seeds(sims: np.ndarray, method: Aggregation) -> np.ndarray:
    """Per-seed similarities (rows x seeds) -> sim(u, S) by "max" (Yahoo Eq. 3) or "probabilistic"
    (Eq. 4: 1 - prod(1 - s), in log space so thousands of seeds do not underflow)."""
    if method == "max":
        return sims.max(axis=1)
    clipped = np.clip(sims, 0.0, 1.0 - 1e-7)
    return -np.expm1(np.log1p(-clipped).sum(axis=1))


def mean_similarity_of_units(units: np.ndarray, centroid: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """sim(u, S) for ``mean`` from unit vectors: u . centroid, summed per row by numpy's pairwise reduction
    (its result for a row depends on that row alone). The one formula every path ranks ``mean`` with.
    ``overwrite``: the products go into ``units`` itself (a caller's own scratch copy, such as the vectors a
    search hands back), sparing an online request one allocation: the same bits."""
    products = np.multiply(units, centroid, out=units) if overwrite else units * centroid
    return np.add.reduce(products, axis=1)


def exact_similarity(candidates: np.ndarray, seeds: np.ndarray | SeedSet, method: Aggregation = "mean") -> np.ndarray:
    """sim(u, S) with arithmetic that depends only on u's row and the seeds, never on which other rows are
    scored with it. BLAS (``aggregate_similarity``) picks kernels by matrix shape, so the same user can
    differ in the last bit between a 136-row rescoring and a 8,000 x 1,000 block; two users that close
    would then swap places. Expansion ranks its short list with this function on every path (online,
    exact fallback, batch), so they return the same users in the same order with the same scores."""
    if method not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {method!r}; choose one of {AGGREGATIONS}")
    seed_set = seeds if isinstance(seeds, SeedSet) else SeedSet.of(seeds)
    seed, centroid = seed_set.units, seed_set.centroid
    rows = max(1, (1 << 22) // (seed.size if method != "mean" else seed.shape[1]))  # ~16 MB of products
    if method == "mean" and len(candidates) <= rows:  # an online short list: one block, no copy loop
        return mean_similarity_of_units(l2_normalize(candidates), centroid)
    out = np.empty(len(candidates), dtype=np.float32)
    for start in range(0, len(candidates), rows):
        cand = l2_normalize(candidates[start : start + rows])
        if method == "mean":
            out[start : start + rows] = mean_similarity_of_units(cand, centroid)
            continue
        out[start : start + rows] = _over_seeds((cand[:, None, :] * seed[None, :, :]).sum(axis=2), method)
    return out

