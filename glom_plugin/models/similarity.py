"""Yahoo §2.1: the simple similarity-based look-alike system, by vectorized brute force.

Each candidate u is compared with every seed s on binary user features (``user_features.py``):

- Jaccard (Eq. 2):  J(f_u, f_s) = |f_u ∧ f_s| / |f_u ∨ f_s| = inter / (|f_u| + |f_s| - inter)
- cosine  (Eq. 1):  cos(f_u, f_s) = f_u·f_s / (‖f_u‖‖f_s‖) = inter / sqrt(|f_u| |f_s|)   (binary f)

``inter`` for a block of candidates against all seeds is one sparse product ``F_block @ F_seedsᵀ``; the
set sizes are row sums. The per-seed similarities are then aggregated into sim(u, S):

- ``max``            Eq. 3: the most similar seed;
- ``probabilistic``  Eq. 4: 1 - Π_s (1 - sim(u, s)) (each pairwise similarity read as the probability
                     of a "look-alike" decision, hence only for measures in [0, 1] — both are);
- ``mean``           the average pairwise similarity (accepted because ``cfg.expand.aggregation`` allows it).

Cost is the paper's O(k M N) for N candidates and M seeds; memory is O(block x M).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.models.base import Campaign, LookalikeModel
from glom_plugin.models.user_features import UserFeatures, build_user_features_from_config

# (inter, |f_u| column, |f_s| row) -> pairwise similarity in [0, 1]
PairwiseFromCounts = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def jaccard_from_counts(inter: np.ndarray, cand_sizes: np.ndarray, seed_sizes: np.ndarray) -> np.ndarray:
    """Eq. 2 for binary features; two empty feature sets have similarity 0 (nothing in common)."""
    union = cand_sizes[:, None] + seed_sizes[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def cosine_from_counts(inter: np.ndarray, cand_sizes: np.ndarray, seed_sizes: np.ndarray) -> np.ndarray:
    """Eq. 1 for binary features (‖f‖ = sqrt(|f|)); a user without features has similarity 0."""
    denom = np.sqrt(cand_sizes[:, None] * seed_sizes[None, :])
    return np.divide(inter, denom, out=np.zeros_like(inter), where=denom > 0)


PAIRWISE_MEASURES: dict[str, PairwiseFromCounts] = {
    "jaccard": jaccard_from_counts,
    "cosine": cosine_from_counts,
}


def _aggregate_max(sims: np.ndarray) -> np.ndarray:  # Eq. 3
    return sims.max(axis=1)


def _aggregate_probabilistic(sims: np.ndarray) -> np.ndarray:
    """Eq. 4, in log space so thousands of seeds do not underflow."""
    clipped = np.clip(sims, 0.0, 1.0 - 1e-12)
    return -np.expm1(np.log1p(-clipped).sum(axis=1))


def _aggregate_mean(sims: np.ndarray) -> np.ndarray:
    return sims.mean(axis=1)


SEED_AGGREGATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "max": _aggregate_max,
    "probabilistic": _aggregate_probabilistic,
    "mean": _aggregate_mean,
}


def pairwise_similarity(
    candidates: sp.csr_matrix, seeds: sp.csr_matrix, measure: str = "jaccard"
) -> np.ndarray:
    """Dense (n_candidates, n_seeds) similarity matrix of binary feature rows (use for small inputs)."""
    inter = (candidates @ seeds.T).toarray().astype(np.float64)
    cand_sizes = np.asarray(candidates.sum(axis=1), dtype=np.float64).ravel()
    seed_sizes = np.asarray(seeds.sum(axis=1), dtype=np.float64).ravel()
    return PAIRWISE_MEASURES[measure](inter, cand_sizes, seed_sizes)


def similarity_to_seeds(
    candidates: sp.csr_matrix,
    seeds: sp.csr_matrix,
    measure: str = "jaccard",
    aggregation: str = "max",
    block_size: int = 4096,
) -> np.ndarray:
    """sim(f_u, S) for every candidate row, blockwise over candidates (Eq. 1/2 then Eq. 3/4)."""
    if measure not in PAIRWISE_MEASURES:
        raise ValueError(f"unknown similarity measure {measure!r}; choose one of {sorted(PAIRWISE_MEASURES)}")
    if aggregation not in SEED_AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; choose one of {sorted(SEED_AGGREGATIONS)}")
    if seeds.shape[0] == 0:
        raise ValueError("the seed list is empty")
    pairwise = PAIRWISE_MEASURES[measure]
    aggregate = SEED_AGGREGATIONS[aggregation]
    seeds_t = seeds.T.tocsc()
    seed_sizes = np.asarray(seeds.sum(axis=1), dtype=np.float64).ravel()
    cand_sizes_all = np.asarray(candidates.sum(axis=1), dtype=np.float64).ravel()
    out = np.empty(candidates.shape[0], dtype=np.float64)
    for start in range(0, candidates.shape[0], block_size):
        stop = min(start + block_size, candidates.shape[0])
        inter = (candidates[start:stop] @ seeds_t).toarray().astype(np.float64)
        out[start:stop] = aggregate(pairwise(inter, cand_sizes_all[start:stop], seed_sizes))
    return out


class SimpleSimilarityModel(LookalikeModel):
    """§2.1 with Jaccard (Eq. 2); the aggregation over seeds is ``cfg.expand.aggregation`` (Eq. 3 or 4).

    Fitting only builds the binary feature matrix; all the work is per campaign (that is the system's
    scalability problem the paper's §3 addresses).
    """

    name = "similarity-jaccard"
    measure: str = "jaccard"
    covers_outside = True  # a user outside the graph is its binary features too (their items, categories)

    features: UserFeatures | None = None

    @property
    def decision_threshold(self) -> float | None:  # type: ignore[override]
        return self.config.expand.threshold

    def _fit(self, data: LookalikeData) -> None:
        self.features = build_user_features_from_config(data, self.config.yahoo, with_outside=True)

    def score_campaign(self, campaign: Campaign) -> np.ndarray:
        if self.features is None:
            raise RuntimeError(f"{self.name}: fit() must run before scoring")
        matrix = self.features.matrix
        return similarity_to_seeds(
            matrix[np.asarray(campaign.candidates, dtype=np.int64)],
            matrix[np.asarray(campaign.seeds, dtype=np.int64)],
            measure=self.measure,
            aggregation=self.config.expand.aggregation,
            block_size=self.config.yahoo.similarity_block_size,
        )


class CosineSimilarityModel(SimpleSimilarityModel):
    """§2.1 with cosine similarity (Eq. 1) on the same binary features."""

    name = "similarity-cosine"
    measure = "cosine"
