"""User–user similarity edges (§3.4, Eq. 1): Pearson correlation of polarity over co-rated items.

    sim(u_a, u_b) = Σ_{v∈CM} (p_av − p̄_a)(p_bv − p̄_b) / ( √Σ_{v∈CM}(p_av − p̄_a)² · √Σ_{v∈CM}(p_bv − p̄_b)² )

with CM the items both users rated and p̄_a, p̄_b the means **over CM** (not over each user's whole
history). A pair becomes an edge when |CM| ≥ ``min_corated`` and sim ≥ ``t_sim``; each user then keeps
its ``top_k`` most similar partners, and an unordered pair is an edge when either user kept the other
(the usual symmetrisation of a k-nearest-neighbour graph; a user's degree can therefore exceed top_k).

Backends are found by name through ``SIMILARITY_BACKENDS`` (short name -> "module:function"), so the
Spark backend for data that does not fit one machine plugs in without touching this file's callers.
Every backend has the signature ``fn(edges, n_users, n_items, cfg) -> DataFrame[user_a, user_b,
similarity, n_corated]`` with integer user indices, user_a < user_b.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm.auto import tqdm

from glom_plugin.config import SimilarityConfig

SIMILARITY_BACKENDS: dict[str, str] = {
    "memory": "glom_plugin.graph.similarity:pearson_similarity_memory",
    "spark": "glom_plugin.graph.similarity_spark:pearson_similarity_spark",
}

SIMILARITY_COLUMNS = ["user_a", "user_b", "similarity", "n_corated"]

SimilarityBackend = Callable[[pd.DataFrame, int, int, SimilarityConfig], pd.DataFrame]

# A sum of squared deviations this small relative to Σp² is rounding noise: the user's polarity is
# constant over CM and Pearson is undefined (scipy.stats.pearsonr returns NaN there too).
_RELATIVE_VARIANCE_FLOOR = 1e-10


def empty_similarity() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_a": np.empty(0, dtype=np.int64),
            "user_b": np.empty(0, dtype=np.int64),
            "similarity": np.empty(0, dtype=np.float64),
            "n_corated": np.empty(0, dtype=np.int64),
        }
    )


def resolve_similarity_backend(name: str) -> SimilarityBackend:
    try:
        dotted = SIMILARITY_BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown similarity backend {name!r}; known: {sorted(SIMILARITY_BACKENDS)}") from None
    module_name, function_name = dotted.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"similarity backend {name!r} lives in {module_name}, which could not be imported: {error}"
        ) from error
    return getattr(module, function_name)


def compute_similarity(
    edges: pd.DataFrame,
    n_users: int,
    cfg: SimilarityConfig,
    backend: str | None = None,
    n_items: int | None = None,
) -> pd.DataFrame:
    """Similarity edges from polarity edges (columns user_idx, item_idx, polarity), via the named backend
    (default ``cfg.backend``). Returns user_a < user_b int64 indices, similarity, n_corated."""
    if n_items is None:
        n_items = int(edges["item_idx"].max()) + 1 if len(edges) else 0
    fn = resolve_similarity_backend(backend or cfg.backend)
    return fn(edges, n_users, n_items, cfg)


def _aligned_data(product: sp.csr_matrix, pattern: sp.csr_matrix) -> np.ndarray:
    """The values of ``product`` in the order of ``pattern``'s stored entries (same sparsity, checked)."""
    product.sort_indices()
    if not (np.array_equal(product.indptr, pattern.indptr) and np.array_equal(product.indices, pattern.indices)):
        raise AssertionError("similarity: co-rated sums lost their common sparsity pattern")
    return product.data


def pearson_similarity_memory(
    edges: pd.DataFrame, n_users: int, n_items: int, cfg: SimilarityConfig
) -> pd.DataFrame:
    """Eq. 1 for every user pair, with sparse matrix products over user blocks — no loop over pairs.

    With B the users×items indicator and P the polarity matrix, for a block of users (rows a) against all
    users (columns b), the sums over CM are: n = B·Bᵀ, Σp_a = P·Bᵀ, Σp_b = B·Pᵀ, Σp_a² = P²·Bᵀ,
    Σp_b² = B·(P²)ᵀ, Σp_a p_b = P·Pᵀ; then cov = Σp_a p_b − Σp_a Σp_b / n and var likewise — Pearson
    over CM. Polarity is shifted by +1 first (Pearson is shift-invariant) so no stored value is 0 and
    every product has exactly the sparsity pattern of n.
    """
    if len(edges) == 0 or n_users == 0:
        return empty_similarity()
    users = edges["user_idx"].to_numpy(dtype=np.int64)
    items = edges["item_idx"].to_numpy(dtype=np.int64)
    shifted = edges["polarity"].to_numpy(dtype=np.float64) + 1.0
    shape = (n_users, n_items)
    indicator = sp.csr_matrix((np.ones_like(shifted), (users, items)), shape=shape)
    if indicator.max() > 1:
        raise ValueError("similarity: a (user, item) pair occurs more than once in the polarity edges")
    polarity = sp.csr_matrix((shifted, (users, items)), shape=shape)
    polarity_sq = sp.csr_matrix((shifted * shifted, (users, items)), shape=shape)
    indicator_t = indicator.T.tocsr()
    polarity_t = polarity.T.tocsr()
    polarity_sq_t = polarity_sq.T.tocsr()

    min_corated = max(2, cfg.min_corated)  # Pearson needs two co-rated items
    top_k = cfg.top_k if cfg.top_k > 0 else None
    block = max(1, cfg.block_size)
    kept: list[pd.DataFrame] = []
    for start in tqdm(range(0, n_users, block), desc="similarity (Eq. 1)", unit="block", leave=False):
        stop = min(start + block, n_users)
        b_block, p_block, p2_block = indicator[start:stop], polarity[start:stop], polarity_sq[start:stop]
        n = (b_block @ indicator_t).tocsr()
        n.sort_indices()
        rows = np.repeat(np.arange(start, stop, dtype=np.int64), np.diff(n.indptr))
        cols = n.indices.astype(np.int64)
        count = n.data
        keep = (cols != rows) & (count >= min_corated)
        if not keep.any():
            continue
        sum_a = _aligned_data((p_block @ indicator_t).tocsr(), n)[keep]
        sum_b = _aligned_data((b_block @ polarity_t).tocsr(), n)[keep]
        sum_aa = _aligned_data((p2_block @ indicator_t).tocsr(), n)[keep]
        sum_bb = _aligned_data((b_block @ polarity_sq_t).tocsr(), n)[keep]
        sum_ab = _aligned_data((p_block @ polarity_t).tocsr(), n)[keep]
        rows, cols, count = rows[keep], cols[keep], count[keep]

        cov = sum_ab - sum_a * sum_b / count
        var_a = sum_aa - sum_a * sum_a / count
        var_b = sum_bb - sum_b * sum_b / count
        defined = (var_a > _RELATIVE_VARIANCE_FLOOR * sum_aa) & (var_b > _RELATIVE_VARIANCE_FLOOR * sum_bb)
        with np.errstate(invalid="ignore", divide="ignore"):
            sim = np.clip(cov / np.sqrt(var_a * var_b), -1.0, 1.0)
        keep = defined & (sim >= cfg.t_sim)
        rows, cols, count, sim = rows[keep], cols[keep], count[keep], sim[keep]
        if top_k is not None and len(rows):
            # Rank each user's partners by similarity (ties: lower index first) and keep its top_k.
            order = np.lexsort((cols, -sim, rows))
            rows, cols, count, sim = rows[order], cols[order], count[order], sim[order]
            first = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]
            rank = np.arange(len(rows)) - np.repeat(first, np.diff(np.r_[first, len(rows)]))
            keep = rank < top_k
            rows, cols, count, sim = rows[keep], cols[keep], count[keep], sim[keep]
        kept.append(
            pd.DataFrame(
                {
                    "user_a": np.minimum(rows, cols),
                    "user_b": np.maximum(rows, cols),
                    "similarity": sim,
                    "n_corated": count.astype(np.int64),
                }
            )
        )
    if not kept:
        return empty_similarity()
    pairs = pd.concat(kept, ignore_index=True)
    pairs = pairs.drop_duplicates(["user_a", "user_b"]).sort_values(["user_a", "user_b"], ignore_index=True)
    return pairs[SIMILARITY_COLUMNS]


def similarity_with_ids(similarity: pd.DataFrame, user_ids: np.ndarray) -> pd.DataFrame:
    """The ``SIMILARITY_SCHEMA`` form: hashed user-id strings, user_a < user_b as strings."""
    a = np.asarray(user_ids, dtype=object)[similarity["user_a"].to_numpy(dtype=np.int64)]
    b = np.asarray(user_ids, dtype=object)[similarity["user_b"].to_numpy(dtype=np.int64)]
    swap = a > b
    return pd.DataFrame(
        {
            "user_a": np.where(swap, b, a),
            "user_b": np.where(swap, a, b),
            "similarity": similarity["similarity"].to_numpy(dtype=np.float64),
            "n_corated": similarity["n_corated"].to_numpy(dtype=np.int64),
        }
    )
