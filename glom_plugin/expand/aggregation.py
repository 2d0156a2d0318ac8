"""sim(u, S): how alike a candidate u is to a seed list S, from per-user embeddings.

- ``max``            Yahoo Eq. 3: the best single seed match.
- ``mean``           similarity to the seed centroid (GLoM's retrieval by user embedding similarity).
- ``probabilistic``  Yahoo Eq. 4: 1 - prod_s (1 - sim(u, s)), similarities clipped to [0, 1].

Computed blockwise so memory is O(block x |S|), never O(|U| x |S|).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Aggregation = Literal["max", "mean", "probabilistic"]
AGGREGATIONS: tuple[str, ...] = ("max", "mean", "probabilistic")


def l2_normalize(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


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
        sims = cand[start : start + block_size] @ seed.T
        if method == "max":
            out[start : start + block_size] = sims.max(axis=1)
        else:
            # 1 - prod(1 - s) in log space so thousands of seeds do not underflow.
            clipped = np.clip(sims, 0.0, 1.0 - 1e-7)
            out[start : start + block_size] = -np.expm1(np.log1p(-clipped).sum(axis=1))
    return out
