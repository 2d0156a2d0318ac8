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

from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm.auto import tqdm

from glom_plugin.config import SimilarityConfig
from glom_plugin.plugins import load_function

SIMILARITY_BACKENDS: dict[str, str] = {
    "memory": "glom_plugin.graph.similarity:pearson_similarity_memory",
    "spark": "glom_plugin.graph.similarity_spark:pearson_similarity_spark",
}

SIMILARITY_COLUMNS = ["user_a", "user_b", "similarity", "n_corated"]

SimilarityBackend = Callable[[pd.DataFrame, int, int, SimilarityConfig], pd.DataFrame]

# A sum of squared deviations this small relative to Σp² is rounding noise: the user's polarity is
# constant over CM and Pearson is undefined (scipy.stats.pearsonr returns NaN there too).
_RELATIVE_VARIANCE_FLOOR = 1e-10
# The streaming top_k prune waits until the candidate pool holds at least this many pairs (~160 MB).
PRUNE_MIN_ROWS = 5_000_000
# How many times the right operands of Eq. 1's block products are rebuilt (see pearson_similarity_memory).
RIGHT_OPERAND_CUTS = 8


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
    """A registered backend name or a ``module:function`` path (``glom_plugin.plugins``)."""
    return load_function(name, SIMILARITY_BACKENDS, "similarity backend")


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
    """The values of ``product`` in the order of ``pattern``'s stored entries.

    scipy's CSR product (SMMP) orders each output row by the operands' *structure* only, so products of
    operands with identical patterns come out in the same order and need no sorting (the expensive part);
    that is checked, and sorting is the fallback should a scipy version behave otherwise.
    """
    if np.array_equal(product.indptr, pattern.indptr) and np.array_equal(product.indices, pattern.indices):
        return product.data
    product.sort_indices()
    rows = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
    order = np.lexsort((pattern.indices, rows))  # pattern's entries in sorted (row, column) order
    if not (
        np.array_equal(product.indptr, pattern.indptr)
        and np.array_equal(product.indices, pattern.indices[order])
    ):
        raise AssertionError("similarity: co-rated sums lost their common sparsity pattern")
    aligned = np.empty_like(product.data)
    aligned[order] = product.data
    return aligned


def user_blocks(user_cost: np.ndarray, block_size: int, pairs_budget: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) user ranges of at most ``block_size`` users whose summed cost stays within
    ``pairs_budget`` (a single user over budget gets a block of its own)."""
    blocks: list[tuple[int, int]] = []
    n_users = len(user_cost)
    block_size = max(1, block_size)
    cumulative = np.concatenate([[0.0], np.cumsum(user_cost, dtype=np.float64)])
    start = 0
    while start < n_users:
        # Furthest stop with cumulative cost within budget, at least one user, at most block_size users.
        stop = int(np.searchsorted(cumulative, cumulative[start] + pairs_budget, side="right")) - 1
        stop = min(max(stop, start + 1), start + block_size, n_users)
        blocks.append((start, stop))
        start = stop
    return blocks


def pearson_similarity_memory(
    edges: pd.DataFrame, n_users: int, n_items: int, cfg: SimilarityConfig
) -> pd.DataFrame:
    """Eq. 1 for every user pair, with sparse matrix products over user blocks — no loop over pairs.

    With B the users×items indicator and P the polarity matrix, for a block of users (rows a) against the
    users after them (columns b > a), the sums over CM are: n = B·Bᵀ, Σp_a = P·Bᵀ, Σp_b = B·Pᵀ,
    Σp_a² = P²·Bᵀ, Σp_b² = B·(P²)ᵀ, Σp_a p_b = P·Pᵀ; then cov = Σp_a p_b − Σp_a Σp_b / n and var likewise
    — Pearson over CM. Polarity is shifted by +1 first (Pearson is shift-invariant) so no stored value is 0
    and every product has exactly the sparsity pattern of n. The work is Σ_items degree², like any exact
    all-pairs method (the Spark backend's self-join does the same sums).

    top_k is applied exactly while streaming: after each block the pool of candidate pairs is pruned to
    those in the current top_k of at least one endpoint; later blocks only add competitors, so a pruned
    pair could never come back.
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

    min_corated = max(2, cfg.min_corated)  # Pearson needs two co-rated items
    top_k = cfg.top_k if cfg.top_k > 0 else None
    # Upper bound on the pairs each user's row of B·Bᵀ can hold: Σ over its items of the item degree.
    item_degree = np.asarray(indicator.sum(axis=0)).ravel()
    user_cost = np.asarray(indicator @ item_degree).ravel()
    pool = empty_similarity()
    pending: list[pd.DataFrame] = []
    pending_rows = 0
    # Prune the candidate pool once it outgrows a few times its final size (and a few million rows).
    prune_at = max(4 * n_users * top_k, PRUNE_MIN_ROWS) if top_k is not None else None
    # Right operands: the users from a checkpoint on, transposed once per checkpoint (RIGHT_OPERAND_CUTS of
    # them). Transposing the users from each block's start on halves the products but costs O(nnz) per
    # block — quadratic in the data (10M reviews: ~4 s a block over ~600 blocks); one transpose of all
    # users doubles the products. Pairs with b before the block's start are discarded below. Each
    # co-rated sum adds the same terms in the same order either way, so the values are the same bits.
    cuts = np.linspace(0, n_users, RIGHT_OPERAND_CUTS + 1).astype(np.int64)[:-1]
    base = -1
    for start, stop in tqdm(
        user_blocks(user_cost, cfg.block_size, cfg.block_pairs_budget),
        desc="similarity (Eq. 1)",
        unit="block",
        leave=False,
    ):
        checkpoint = int(cuts[np.searchsorted(cuts, start, side="right") - 1])
        if checkpoint != base:
            base = checkpoint
            b_right, p_right, p2_right = (m[base:].T.tocsr() for m in (indicator, polarity, polarity_sq))
        b_block, p_block, p2_block = indicator[start:stop], polarity[start:stop], polarity_sq[start:stop]
        n = (b_block @ b_right).tocsr()
        hit = np.flatnonzero(n.data >= min_corated)
        rows = start + np.searchsorted(n.indptr, hit, side="right") - 1
        cols = base + n.indices[hit].astype(np.int64)
        upper = cols > rows
        hit, rows, cols = hit[upper], rows[upper], cols[upper]
        if len(hit) == 0:
            continue
        count = n.data[hit]
        sum_a = _aligned_data((p_block @ b_right).tocsr(), n)[hit]
        sum_b = _aligned_data((b_block @ p_right).tocsr(), n)[hit]
        sum_aa = _aligned_data((p2_block @ b_right).tocsr(), n)[hit]
        sum_bb = _aligned_data((b_block @ p2_right).tocsr(), n)[hit]
        sum_ab = _aligned_data((p_block @ p_right).tocsr(), n)[hit]
        del n

        cov = sum_ab - sum_a * sum_b / count
        var_a = sum_aa - sum_a * sum_a / count
        var_b = sum_bb - sum_b * sum_b / count
        defined = (var_a > _RELATIVE_VARIANCE_FLOOR * sum_aa) & (var_b > _RELATIVE_VARIANCE_FLOOR * sum_bb)
        with np.errstate(invalid="ignore", divide="ignore"):
            sim = np.clip(cov / np.sqrt(var_a * var_b), -1.0, 1.0)
        keep = defined & (sim >= cfg.t_sim)
        block_pairs = pd.DataFrame(
            {
                "user_a": rows[keep],
                "user_b": cols[keep],
                "similarity": sim[keep],
                "n_corated": count[keep].astype(np.int64),
            }
        )
        pending.append(block_pairs)
        pending_rows += len(block_pairs)
        if prune_at is not None and pending_rows > prune_at:
            pool = keep_top_k(pd.concat([pool, *pending], ignore_index=True), top_k)
            pending, pending_rows = [], 0
    pool = pd.concat([pool, *pending], ignore_index=True)
    if top_k is not None:
        pool = keep_top_k(pool, top_k)
    return pool.sort_values(["user_a", "user_b"], ignore_index=True)[SIMILARITY_COLUMNS]


def keep_top_k(pairs: pd.DataFrame, top_k: int) -> pd.DataFrame:
    """Pairs (user_a < user_b) in the top_k of at least one endpoint, ranked by similarity (ties: the
    partner with the lower index first)."""
    if len(pairs) == 0:
        return pairs
    a = pairs["user_a"].to_numpy()
    b = pairs["user_b"].to_numpy()
    sim = pairs["similarity"].to_numpy()
    user = np.r_[a, b]
    other = np.r_[b, a]
    order = np.lexsort((other, -np.r_[sim, sim], user))
    sorted_user = user[order]
    first = np.r_[0, np.flatnonzero(np.diff(sorted_user)) + 1]
    rank = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
    selected = np.zeros(len(order), dtype=bool)
    selected[order[rank < top_k]] = True
    keep = selected[: len(pairs)] | selected[len(pairs) :]
    return pairs.loc[keep].reset_index(drop=True)


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
