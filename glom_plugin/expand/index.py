"""Nearest-neighbour index over L2-normalised user embeddings (cosine = inner product).

The kind follows the number of users (``choose_kind``), so small runs stay exact and large ones fast:

- ``flat``  ``IndexFlatIP``, exact, for n <= ``FLAT_MAX_USERS``; its lists bound everyone else, which is
  what lets ``expand/candidates.py`` prove a ranking exact;
- ``ivf``   ``IndexIVFFlat`` above that: ~sqrt(n) lists (a power of two), the coarse quantiser trained by
  k-means on a sample of ``IVF_TRAIN_PER_LIST`` users per list, ``nprobe`` lists scanned per query;
- ``hnsw``  ``IndexHNSWFlat``, on request only.

Why IVF and these numbers (benchmarks/results/index.md: clustered users, d = 64, 20-seed campaigns,
k = 100, 2 shared cores): at 1M users, 1,024 lists trained on 64k sampled users build in ~11 s
(k-means on all 1M users for 4,000 lists took 275 s before), one centroid search scanning 16 lists takes
~0.4 ms against 19 ms for the flat index, and recall@100 is 1.0 on every campaign (nprobe 8: worst
campaign 0.94). 4,096 lists took 72 s to build and needed 32 probes for the same recall; 512 lists made
each list twice as long. At 100k users HNSW matched the recall but took 11.5 s to build against 0.8 s,
so it is not chosen automatically.

Scores are cosine similarities; ids are row numbers of the embedding matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from glom_plugin.expand.aggregation import l2_normalize, row_norms

IndexKind = Literal["auto", "flat", "hnsw", "ivf"]
FLAT_MAX_USERS = 50_000
HNSW_NEIGHBOURS = 32
IVF_NPROBE = 16
IVF_TRAIN_PER_LIST = 64  # faiss warns below 39 training points per list
ADD_CHUNK = 131_072  # rows normalised and added at a time: the build never holds a second full copy


@dataclass
class UserIndex:
    index: Any  # faiss.Index
    kind: str
    n_users: int
    dim: int
    # the indexed rows' ``row_norms`` (n, 1), kept from the build: a request then normalises its seeds with
    # one division (``SeedSet.of_rows``); None for an index built elsewhere
    norms: np.ndarray | None = None

    @property
    def exact(self) -> bool:
        """Whether a search returns the true nearest users (flat), so its lists bound everyone else."""
        return self.kind == "flat"


@dataclass(frozen=True)
class IvfParams:
    nlist: int
    nprobe: int
    train_size: int


def ivf_params(n_users: int, nprobe: int | None = None) -> IvfParams:
    """~sqrt(n) lists rounded to a power of two (1M users: 1,024), trained on 64 users per list."""
    nlist = int(2 ** round(np.log2(max(np.sqrt(n_users), 1.0))))
    nlist = max(1, min(nlist, n_users // IVF_TRAIN_PER_LIST or 1))
    return IvfParams(nlist=nlist, nprobe=min(nprobe or IVF_NPROBE, nlist), train_size=min(n_users, nlist * IVF_TRAIN_PER_LIST))


def choose_kind(n_users: int) -> str:
    return "flat" if n_users <= FLAT_MAX_USERS else "ivf"


def build_index(embeddings: np.ndarray, kind: IndexKind = "auto", seed: int = 0, nprobe: int | None = None) -> UserIndex:
    """Index the rows of ``embeddings`` (n, d) after L2 normalisation; ``nprobe`` for IVF (default 16)."""
    import faiss

    embeddings = np.asarray(embeddings, dtype=np.float32)
    n, dim = embeddings.shape
    if n == 0:
        raise ValueError("cannot index an empty embedding matrix")
    kind = choose_kind(n) if kind == "auto" else kind
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
    elif kind == "ivf":
        params = ivf_params(n, nprobe)
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, params.nlist, faiss.METRIC_INNER_PRODUCT)
        sample = np.sort(np.random.default_rng(seed).choice(n, size=params.train_size, replace=False))
        index.train(np.ascontiguousarray(l2_normalize(embeddings[sample])))
        index.nprobe = params.nprobe
    else:
        raise ValueError(f"unknown index kind {kind!r}; choose auto, flat, hnsw or ivf")
    norms = np.empty((n, 1), dtype=np.float32)
    for start in range(0, n, ADD_CHUNK):
        chunk = embeddings[start : start + ADD_CHUNK]
        norms[start : start + ADD_CHUNK] = row_norms(chunk)
        index.add(np.ascontiguousarray(chunk / norms[start : start + ADD_CHUNK]))  # = l2_normalize(chunk)
    return UserIndex(index=index, kind=kind, n_users=n, dim=dim, norms=norms)


def _queries(index: UserIndex, queries: np.ndarray, k: int, normalized: bool) -> tuple[np.ndarray, int]:
    ready = (normalized and isinstance(queries, np.ndarray) and queries.ndim == 2
             and queries.dtype == np.float32 and queries.flags.c_contiguous)
    if not ready:  # an online request's centroid is ready as it is: no conversions (~3 us)
        queries = np.atleast_2d(queries)
        queries = np.ascontiguousarray(queries if normalized else l2_normalize(queries), dtype=np.float32)
    if queries.shape[1] != index.dim:
        raise ValueError(f"query dimension {queries.shape[1]} != index dimension {index.dim}")
    k = int(min(max(k, 1), index.n_users))
    if index.kind == "hnsw":
        index.index.hnsw.efSearch = max(64, 2 * k)
    return queries, k


def search(index: UserIndex, queries: np.ndarray, k: int, normalized: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(cosine scores, row ids), each (n_queries, k); ids are -1 where fewer than k users were found.
    ``normalized``: the queries are unit vectors already (float32)."""
    queries, k = _queries(index, queries, k, normalized)
    scores, ids = index.index.search(queries, k)
    return scores, ids


def search_with_vectors(
    index: UserIndex, queries: np.ndarray, k: int, normalized: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``search`` plus each returned user's stored unit vector, (n_queries, k, dim): exactly
    ``l2_normalize(embeddings[row])``, bit for bit (every kind here stores the normalised floats as they were
    added). Why: faiss's ``search_and_reconstruct`` copies them from the lists the search has just scanned,
    still in cache, where gathering the same ~136 rows from a 1M-user matrix after the search cost ~60 us
    of cache misses, and normalising them again another ~60 us (benchmarks/results/serving.md)."""
    queries, k = _queries(index, queries, k, normalized)
    scores, ids, vectors = index.index.search_and_reconstruct(queries, k)
    return scores, ids, vectors
