"""Yahoo §3.1 Phase I: the global user–user similarity graph, built with MinHash LSH (sub-quadratic).

Pipeline (one function, a backend argument for the candidate step):

1. **MinHash** (numpy backend): for k = 1..bands·rows, h_k(f) = (a_k·f + b_k) mod P over the indices f
   of a user's binary features, P = 2³¹ − 1; the signature is min over the user's features. Two users'
   signatures agree at one position with probability = their Jaccard similarity (Eq. 2).
2. **Banding**: signatures are cut into ``bands`` bands of ``rows`` values; users whose band agrees fall
   in one bucket and become a candidate pair. A pair with Jaccard J is found with probability
   1 − (1 − J^rows)^bands (24 × 3: 0.96 at J = 0.5). Inside a bucket (random order) each user is paired
   with its next ``window`` members, so one huge bucket costs O(size · window), not O(size²).
   The "spark" backend replaces 1–2 by ``pyspark.ml.feature.MinHashLSH.approxSimilarityJoin``
   (``glom_plugin/graph/lsh_spark.py``).
3. **Verification**: the exact edge weight of every candidate pair — Jaccard (Eq. 2) or the weighted
   cosine of Eq. 9 with a diagonal A — and each user keeps its ``neighbors_per_user`` strongest edges
   with weight ≥ ``min_similarity``; an edge stays when either end keeps it.

The graph is campaign-agnostic and built once; a campaign's candidates are then the union of its seeds'
neighbours (``UserGraph.neighbors``), O(|S| · k) instead of O(N).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm.auto import tqdm

from glom_plugin.plugins import load_function

MERSENNE_PRIME = (1 << 31) - 1

# backend name -> "module:function" returning candidate pairs (P, 2) int64 with a < b (Feast-style map).
CANDIDATE_BACKENDS: dict[str, str] = {
    "numpy": "glom_plugin.graph.lsh:minhash_candidate_pairs",
    "spark": "glom_plugin.graph.lsh_spark:spark_minhash_candidate_pairs",
}


@dataclass(frozen=True)
class UserGraph:
    """The Phase I graph: a symmetric users × users CSR whose values are edge similarities."""

    adjacency: sp.csr_matrix
    n_candidate_pairs: int

    @property
    def n_users(self) -> int:
        return self.adjacency.shape[0]

    @property
    def n_edges(self) -> int:
        return self.adjacency.nnz // 2

    def neighbors(self, users: np.ndarray) -> np.ndarray:
        """Union of the given users' neighbours, without the users themselves (sorted user indices)."""
        users = np.asarray(users, dtype=np.int64)
        rows = self.adjacency[users]
        return np.setdiff1d(np.unique(rows.indices), users, assume_unique=False)

    def edges(self) -> pd.DataFrame:
        """One row per undirected edge: user_a < user_b, similarity."""
        upper = sp.triu(self.adjacency, k=1).tocoo()
        return pd.DataFrame(
            {
                "user_a": upper.row.astype(np.int64),
                "user_b": upper.col.astype(np.int64),
                "similarity": upper.data,
            }
        )


def minhash_signatures(
    features: sp.csr_matrix, n_hashes: int, seed: int = 0, max_block_entries: int = 8_000_000
) -> np.ndarray:
    """(n_users, n_hashes) int64 MinHash signatures; users with no feature get P (never a real value).

    Vectorized: each block of users hashes all its nonzeros at once, then ``np.minimum.reduceat``
    takes the per-user minimum; blocks bound memory to ``max_block_entries`` int64 values.
    """
    features = sp.csr_matrix(features)
    rng = np.random.default_rng(seed)
    a = rng.integers(1, MERSENNE_PRIME, size=n_hashes, dtype=np.int64)
    b = rng.integers(0, MERSENNE_PRIME, size=n_hashes, dtype=np.int64)
    n_users = features.shape[0]
    signatures = np.full((n_users, n_hashes), MERSENNE_PRIME, dtype=np.int64)
    indptr, indices = features.indptr, features.indices.astype(np.int64)
    rows_per_block = max(
        1, int(max_block_entries // max(1, n_hashes * max(1.0, features.nnz / max(n_users, 1))))
    )
    for start in range(0, n_users, rows_per_block):
        stop = min(start + rows_per_block, n_users)
        lo, hi = indptr[start], indptr[stop]
        if hi == lo:
            continue
        hashed = (indices[lo:hi, None] * a[None, :] + b[None, :]) % MERSENNE_PRIME  # < 2^62: no overflow
        counts = np.diff(indptr[start : stop + 1])
        nonempty = np.flatnonzero(counts > 0)
        offsets = (indptr[start:stop] - lo)[nonempty]
        signatures[start + nonempty] = np.minimum.reduceat(hashed, offsets, axis=0)
    return signatures


def band_keys(signatures: np.ndarray, bands: int, rows: int, seed: int = 0) -> np.ndarray:
    """(n_users, bands) uint64 bucket keys: a random linear hash of each band's ``rows`` values.

    Two different bands hash equal with probability ~2⁻⁶⁴; such a false candidate is removed anyway by
    the exact verification step.
    """
    if signatures.shape[1] < bands * rows:
        raise ValueError(f"signatures have {signatures.shape[1]} hashes; bands*rows = {bands * rows}")
    rng = np.random.default_rng(seed + 1)
    multipliers = rng.integers(1, np.iinfo(np.int64).max, size=rows, dtype=np.int64).astype(
        np.uint64
    ) | np.uint64(1)
    sig = signatures[:, : bands * rows].astype(np.uint64).reshape(len(signatures), bands, rows)
    with np.errstate(over="ignore"):
        return (sig * multipliers[None, None, :]).sum(axis=2, dtype=np.uint64)


def minhash_candidate_pairs(
    features: sp.csr_matrix,
    bands: int,
    rows: int,
    window: int = 64,
    seed: int = 0,
    progress: bool = False,
    **_: object,
) -> np.ndarray:
    """Numpy backend of steps 1–2: unique candidate pairs (P, 2) int64 with a < b."""
    features = sp.csr_matrix(features)
    n_users = features.shape[0]
    has_features = np.diff(features.indptr) > 0
    keys = band_keys(minhash_signatures(features, bands * rows, seed=seed), bands, rows, seed=seed)
    rng = np.random.default_rng(seed + 2)
    users = np.flatnonzero(has_features)
    found: list[np.ndarray] = []
    for band in tqdm(range(bands), desc="LSH bands", disable=not progress):
        band_key = keys[users, band]
        order = np.lexsort((rng.random(len(users)), band_key))
        sorted_keys, sorted_users = band_key[order], users[order]
        for offset in range(1, window + 1):
            same = sorted_keys[offset:] == sorted_keys[:-offset]
            if not same.any():
                break
            a, b = sorted_users[:-offset][same], sorted_users[offset:][same]
            found.append(np.minimum(a, b) * n_users + np.maximum(a, b))
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    codes = np.unique(np.concatenate(found))
    return np.stack([codes // n_users, codes % n_users], axis=1).astype(np.int64)


def pair_similarity(
    features: sp.csr_matrix,
    pairs: np.ndarray,
    measure: str = "jaccard",
    feature_weights: np.ndarray | None = None,
    block: int = 500_000,
) -> np.ndarray:
    """Exact similarity of each pair: Jaccard (Eq. 2) or weighted cosine (Eq. 9, diagonal A).

    Weighted cosine: Σ_j A_j f_aj f_bj / sqrt(Σ_j A_j f_aj · Σ_j A_j f_bj), i.e. Eq. 9 with the norms
    taken in the A-weighted space so the weight stays in [0, 1]; A = I gives the cosine of Eq. 1.
    """
    features = sp.csr_matrix(features, dtype=np.float64)
    out = np.empty(len(pairs), dtype=np.float64)
    if measure == "jaccard":
        sizes = np.asarray(features.sum(axis=1)).ravel()
        weighted = features
    elif measure == "weighted-cosine":
        weights = (
            np.ones(features.shape[1]) if feature_weights is None else np.asarray(feature_weights, float)
        )
        weighted = (features @ sp.diags(weights)).tocsr()
        sizes = np.asarray(weighted.sum(axis=1)).ravel()
    else:
        raise ValueError(f"unknown graph similarity {measure!r}; choose 'jaccard' or 'weighted-cosine'")
    for start in range(0, len(pairs), block):
        a, b = pairs[start : start + block, 0], pairs[start : start + block, 1]
        inter = np.asarray(weighted[a].multiply(features[b]).sum(axis=1)).ravel()
        if measure == "jaccard":
            denom = sizes[a] + sizes[b] - inter
        else:
            denom = np.sqrt(sizes[a] * sizes[b])
        out[start : start + len(a)] = np.divide(inter, denom, out=np.zeros_like(inter), where=denom > 0)
    return out


def idf_weights(features: sp.csr_matrix) -> np.ndarray:
    """Diagonal A for the weighted cosine: log(N / df_j), so features everyone has count little."""
    df = np.diff(sp.csc_matrix(features).indptr).astype(np.float64)
    return np.log(features.shape[0] / np.maximum(df, 1.0)) + 1e-6


def top_k_graph(
    n_users: int, pairs: np.ndarray, weights: np.ndarray, k: int, min_similarity: float
) -> sp.csr_matrix:
    """Symmetric adjacency keeping, per user, its k strongest edges with weight ≥ min_similarity."""
    keep = weights >= min_similarity
    a, b, w = pairs[keep, 0], pairs[keep, 1], weights[keep]
    src = np.concatenate([a, b])
    dst = np.concatenate([b, a])
    ww = np.concatenate([w, w])
    order = np.lexsort((dst, -ww, src))  # by user, strongest first (ties broken by index: deterministic)
    src, dst, ww = src[order], dst[order], ww[order]
    group_start = np.searchsorted(src, src, side="left")
    rank = np.arange(len(src)) - group_start
    chosen = rank < k
    directed = sp.csr_matrix((ww[chosen], (src[chosen], dst[chosen])), shape=(n_users, n_users))
    # An edge survives when either end keeps it; maximum() avoids doubling weights kept by both.
    return directed.maximum(directed.T).tocsr()


def load_candidate_backend(name: str) -> Callable[..., np.ndarray]:
    """A registered LSH backend name or a ``module:function`` path (``glom_plugin.plugins``)."""
    return load_function(name, CANDIDATE_BACKENDS, "LSH backend")


def build_user_graph(
    features: sp.csr_matrix,
    bands: int = 24,
    rows: int = 3,
    window: int = 64,
    neighbors_per_user: int = 50,
    min_similarity: float = 0.1,
    measure: str = "jaccard",
    seed: int = 0,
    backend: str = "numpy",
    progress: bool = False,
) -> UserGraph:
    """Phase I: LSH candidates (``backend``), exact verification, per-user top-k (module docstring)."""
    features = sp.csr_matrix(features)
    candidate_pairs = load_candidate_backend(backend)(
        features,
        bands=bands,
        rows=rows,
        window=window,
        seed=seed,
        progress=progress,
        min_similarity=min_similarity,
    )
    weights = idf_weights(features) if measure == "weighted-cosine" else None
    similarity = pair_similarity(features, candidate_pairs, measure=measure, feature_weights=weights)
    adjacency = top_k_graph(
        features.shape[0], candidate_pairs, similarity, neighbors_per_user, min_similarity
    )
    return UserGraph(adjacency=adjacency, n_candidate_pairs=len(candidate_pairs))


def exact_jaccard_pairs(features: sp.csr_matrix, threshold: float, block: int = 2048) -> np.ndarray:
    """All pairs a < b with Jaccard ≥ threshold, by blocked brute force (the ground truth LSH is measured on)."""
    features = sp.csr_matrix(features, dtype=np.float64)
    sizes = np.asarray(features.sum(axis=1)).ravel()
    features_t = features.T.tocsc()
    found: list[np.ndarray] = []
    n = features.shape[0]
    for start in range(0, n, block):
        stop = min(start + block, n)
        inter = (features[start:stop] @ features_t).tocoo()
        a, b = inter.row + start, inter.col
        upper = a < b
        a, b, v = a[upper], b[upper], inter.data[upper]
        jac = v / (sizes[a] + sizes[b] - v)
        hit = jac >= threshold
        found.append(np.stack([a[hit], b[hit]], axis=1))
    return np.concatenate(found).astype(np.int64) if found else np.empty((0, 2), dtype=np.int64)


def pair_recall(found: np.ndarray, truth: np.ndarray, n_users: int) -> float:
    """Share of ``truth`` pairs (a < b) present in ``found`` — LSH candidate recall."""
    if len(truth) == 0:
        return 1.0
    found_codes = found[:, 0] * n_users + found[:, 1]
    truth_codes = truth[:, 0] * n_users + truth[:, 1]
    return float(np.isin(truth_codes, found_codes).mean())
