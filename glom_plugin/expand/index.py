"""Approximate-nearest-neighbour index over L2-normalised user embeddings (cosine = inner product).

The index kind follows the number of users, so small runs stay exact and large ones stay fast:

- ``flat``  ``IndexFlatIP``, exact, for n <= ``FLAT_MAX_USERS``;
- ``hnsw``  ``IndexHNSWFlat`` (inner product), no training, for n <= ``HNSW_MAX_USERS``;
- ``ivf``   ``IndexIVFFlat`` with ~4·sqrt(n) lists, trained on a sample, for larger n.

Scores are cosine similarities; ids are row numbers of the embedding matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from glom_plugin.expand.aggregation import l2_normalize

IndexKind = Literal["auto", "flat", "hnsw", "ivf"]
FLAT_MAX_USERS = 50_000
HNSW_MAX_USERS = 2_000_000
HNSW_NEIGHBOURS = 32
IVF_NPROBE = 16
IVF_TRAIN_SAMPLE = 256


@dataclass
class UserIndex:
    index: Any  # faiss.Index
    kind: str
    n_users: int
    dim: int

    @property
    def exact(self) -> bool:
        """Whether a search returns the true nearest users (flat), so its lists bound everyone else."""
        return self.kind == "flat"


def choose_kind(n_users: int) -> str:
    if n_users <= FLAT_MAX_USERS:
        return "flat"
    if n_users <= HNSW_MAX_USERS:
        return "hnsw"
    return "ivf"


def build_index(embeddings: np.ndarray, kind: IndexKind = "auto", seed: int = 0) -> UserIndex:
    """Index the rows of ``embeddings`` (n, d) after L2 normalisation."""
    import faiss

    vectors = np.ascontiguousarray(l2_normalize(embeddings))
    n, dim = vectors.shape
    if n == 0:
        raise ValueError("cannot index an empty embedding matrix")
    kind = choose_kind(n) if kind == "auto" else kind
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
    elif kind == "ivf":
        nlist = max(1, min(int(4 * np.sqrt(n)), n // 39 or 1))  # faiss wants >= 39 training points per list
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = vectors[rng.choice(n, size=min(n, nlist * IVF_TRAIN_SAMPLE), replace=False)]
        index.train(sample)
        index.nprobe = min(IVF_NPROBE, nlist)
    else:
        raise ValueError(f"unknown index kind {kind!r}; choose auto, flat, hnsw or ivf")
    index.add(vectors)
    return UserIndex(index=index, kind=kind, n_users=n, dim=dim)


def search(index: UserIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(cosine scores, row ids), each (n_queries, k); ids are -1 where fewer than k users exist."""
    queries = np.ascontiguousarray(l2_normalize(np.atleast_2d(queries)))
    if queries.shape[1] != index.dim:
        raise ValueError(f"query dimension {queries.shape[1]} != index dimension {index.dim}")
    k = int(min(max(k, 1), index.n_users))
    if index.kind == "hnsw":
        index.index.hnsw.efSearch = max(64, 2 * k)
    scores, ids = index.index.search(queries, k)
    return scores, ids
