"""Fold-in: an embedding for a user outside the trained graph, from the items they interacted with, with
no retraining (the trained vectors stay as they are; an outside user never moves them).

Users outside the graph are those the minimum-interactions filter dropped (``data.min_user_interactions``)
or who arrived after training; what is known of them is a row of items (``LookalikeData.outside_edges``).
Two ways to place such a row in a model's user space:

- ``translation_fold_in`` (TransE, GLoM §3.5: h_u + r ≈ h_i for every purchase): the least-squares user
  of that identity over the user's items, h_u = mean_i h_i − r̂, with r̂ = mean over the training
  purchases of (h_i − h_u), the translation the trained embeddings realise. For a user *in* the graph it
  returns the trained vector up to the user's own deviation from r̂ (tested: ``tests/unit/test_fold_in.py``).
  Needs item vectors in the users' space: PM's.
- ``buyer_centroid_fold_in`` (any model with user vectors): the mean over the user's items of each item's
  buyer centroid (the mean trained embedding of the users who bought it) — one step of the user → item →
  user propagation that graph models already perform, so the vector lies in the span the retrieval
  compares. Items without a trained buyer are skipped; a user left with none gets the trained users'
  mean, i.e. a neutral 0 cosine after centring, rather than a made-up direction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

FOLD_IN_METHODS: tuple[str, ...] = ("translation", "buyers")


def _row_mean(rows: sp.csr_matrix, vectors: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mean of ``vectors`` over each row's items [restricted to ``valid`` items], items counted per row)."""
    binary = sp.csr_matrix(rows, dtype=np.float64, copy=True)
    binary.sum_duplicates()
    binary.data[:] = 1.0
    if valid is not None:
        binary = (binary @ sp.diags(valid.astype(np.float64))).tocsr()
        binary.eliminate_zeros()
    counts = np.asarray(binary.sum(axis=1)).ravel()
    sums = binary @ np.asarray(vectors, dtype=np.float64)
    return sums / np.maximum(counts, 1.0)[:, None], counts


def empirical_translation(user_embeddings: np.ndarray, item_embeddings: np.ndarray, edges: pd.DataFrame) -> np.ndarray:
    """r̂ = mean over the training purchases (u, i) of h_i − h_u: the translation the trained space realises."""
    if not len(edges):
        return np.zeros(np.asarray(user_embeddings).shape[1])
    users = edges["user_idx"].to_numpy(dtype=np.int64)
    items = edges["item_idx"].to_numpy(dtype=np.int64)
    return np.asarray(item_embeddings, dtype=np.float64)[items].mean(axis=0) - np.asarray(
        user_embeddings, dtype=np.float64
    )[users].mean(axis=0)


def translation_fold_in(
    rows: sp.csr_matrix, user_embeddings: np.ndarray, item_embeddings: np.ndarray, edges: pd.DataFrame
) -> np.ndarray:
    """h_u = mean_{i in row} h_i − r̂ (see the module docstring); float32 (n_rows, d)."""
    translation = empirical_translation(user_embeddings, item_embeddings, edges)
    mean_items, _ = _row_mean(rows, item_embeddings)
    return (mean_items - translation).astype(np.float32)


def buyer_centroids(user_embeddings: np.ndarray, user_items: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """(items x d mean trained embedding of each item's buyers, which items have a buyer)."""
    by_item, counts = _row_mean(sp.csr_matrix(user_items.T), user_embeddings)
    return by_item, counts > 0


def buyer_centroid_fold_in(rows: sp.csr_matrix, user_embeddings: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
    """h_u = mean over the row's items of their buyer centroid (see the module docstring); float32."""
    centroids, has_buyer = buyer_centroids(user_embeddings, user_items)
    folded, counts = _row_mean(rows, centroids, has_buyer)
    if (counts == 0).any():
        folded[counts == 0] = np.asarray(user_embeddings, dtype=np.float64).mean(axis=0)
    return folded.astype(np.float32)


def fold_in(
    method: str,
    rows: sp.csr_matrix,
    user_embeddings: np.ndarray,
    user_items: sp.csr_matrix,
    item_embeddings: np.ndarray | None = None,
    edges: pd.DataFrame | None = None,
) -> np.ndarray:
    """Embeddings of the users of ``rows`` (users x the graph's items) by ``method``; "translation" falls
    back to "buyers" when the model has no item vectors."""
    if method not in FOLD_IN_METHODS:
        raise ValueError(f"unknown fold-in method {method!r}; choose one of {FOLD_IN_METHODS}")
    if rows.shape[0] == 0:
        return np.empty((0, np.asarray(user_embeddings).shape[1]), dtype=np.float32)
    if method == "translation" and item_embeddings is not None and edges is not None:
        return translation_fold_in(rows, user_embeddings, item_embeddings, edges)
    return buyer_centroid_fold_in(rows, user_embeddings, user_items)


def retrieval_with_outside(
    embeddings: np.ndarray, center: bool, outside: np.ndarray | None
) -> np.ndarray:
    """Retrieval vectors (``expand.aggregation.retrieval_vectors``) of the graph's users, then of the
    folded-in ``outside`` users, all centred on the *graph* users' mean: folding users in never moves a
    trained user's vector (bit for bit the vectors without outside users)."""
    from glom_plugin.expand.aggregation import retrieval_vectors

    trained = retrieval_vectors(embeddings, center)
    if outside is None or not len(outside):
        return trained
    vectors = np.asarray(embeddings, dtype=np.float32)
    mean = vectors.mean(axis=0, keepdims=True) if center and len(vectors) else np.float32(0.0)
    return np.concatenate([trained, np.asarray(outside, dtype=np.float32) - mean])
