"""Yahoo §2.3: segment-approximation look-alikes (Shen et al. 2015, as summarised by Ma et al. 2016).

Users are bags of pre-built **segments**. Here a segment is an item category: user u belongs to segment
c when u bought at least one item of category c (``user_category_matrix() > 0``). Ratings-only data has
no categories, so segments fall back to **item clusters**: k-means (``cfg.yahoo.segment_clusters``) on a
truncated SVD of the item × user co-purchase matrix (items bought by the same users cluster together),
and u belongs to cluster c when u bought an item in it.

Per campaign with seed users S (we take the seed audience aud(C) to be S itself: the union of every
segment seen on some seed covers almost all users once there are a few dozen seeds, which would make
Eq. 5 vacuous), each segment c with audience A_c = aud(c) gets the Eq. 8 score

    sim(A_c, S)  = |A_c ∩ S| / |S|                      Eq. 5: user overlap — share of seeds in c
    perf(A_c)    = (|A_c ∩ S| / |A_c|) / (|S| / N)      Eq. 6: seed (converter) rate of c, as a lift over
                                                         the base rate — seeds are the advertiser's
                                                         converters; no ad logs exist to give a CTR
    nov(A_c | S) = |A_c \\ S| / |A_c|                    Eq. 7: share of c's users that are not seeds
    score(c)     = sim · perf · nov                      Eq. 8

The top-k segments (``cfg.yahoo.segments_top_k``) are recommended; the audience is their users, and a
user's score is the sum (or max, ``segment_user_score``) of its recommended segments' scores, 0 outside
them, so the harness can rank.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.models.base import Campaign, LookalikeModel


def category_segments(data: LookalikeData) -> tuple[sp.csr_matrix, np.ndarray] | None:
    """items × categories (the segments an item puts its buyers in), or None when the data has none."""
    if data.item_categories.shape[1] == 0 or data.item_categories.nnz == 0:
        return None
    n = data.item_categories.shape[1]
    names = (
        np.asarray(data.category_names, dtype=str)
        if len(data.category_names) == n
        else np.arange(n).astype(str)
    )
    return data.item_categories.astype(np.float64).tocsr(), np.char.add("category:", names)


def segment_membership(user_items: sp.csr_matrix, item_segments: sp.csr_matrix) -> sp.csr_matrix:
    """users × segments: u belongs to c when u bought at least one item of c."""
    return ((user_items @ item_segments) > 0).astype(np.float32).tocsr()


def item_cluster_segments(
    data: LookalikeData, n_clusters: int, seed: int = 0
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Fallback segments, items × clusters: k-means on the SVD of the item × user co-purchase matrix."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD

    user_item = data.user_item_matrix()
    user_item.data[:] = 1.0
    item_user = user_item.T.tocsr()
    n_items = item_user.shape[0]
    k = int(min(n_clusters, n_items))
    n_components = int(max(1, min(32, n_items - 1, item_user.shape[1] - 1)))
    embedding = TruncatedSVD(n_components=n_components, random_state=seed).fit_transform(item_user)
    norms = np.linalg.norm(embedding, axis=1, keepdims=True)
    embedding = embedding / np.maximum(norms, 1e-12)
    labels = KMeans(n_clusters=k, random_state=seed, n_init=4).fit_predict(embedding)
    item_cluster = sp.csr_matrix((np.ones(n_items), (np.arange(n_items), labels)), shape=(n_items, k))
    return item_cluster, np.array([f"item-cluster:{c}" for c in range(k)])


def segment_scores(membership: sp.csr_matrix, seeds: np.ndarray) -> pd.DataFrame:
    """The Eq. 5–8 terms of every segment for one seed list (module docstring gives each formula)."""
    seeds = np.unique(np.asarray(seeds, dtype=np.int64))
    if len(seeds) == 0:
        raise ValueError("the seed list is empty")
    n_users = membership.shape[0]
    size = np.asarray(membership.sum(axis=0), dtype=np.float64).ravel()
    overlap = np.asarray(membership[seeds].sum(axis=0), dtype=np.float64).ravel()
    base_rate = len(seeds) / n_users
    similarity = overlap / len(seeds)
    seed_rate = np.divide(overlap, size, out=np.zeros_like(size), where=size > 0)
    performance = seed_rate / base_rate
    novelty = np.divide(size - overlap, size, out=np.zeros_like(size), where=size > 0)
    return pd.DataFrame(
        {
            "size": size.astype(np.int64),
            "seed_overlap": overlap.astype(np.int64),
            "similarity": similarity,
            "performance": performance,
            "novelty": novelty,
            "score": similarity * performance * novelty,
        }
    )


def top_segments(scores: pd.DataFrame, k: int) -> np.ndarray:
    """Indices of the k best segments with a positive score (ties: lower index first)."""
    values = scores["score"].to_numpy()
    positive = np.flatnonzero(values > 0)
    return positive[np.lexsort((positive, -values[positive]))][:k]


class SegmentApproximationModel(LookalikeModel):
    """§2.3: recommend the top-k segments by Eq. 8; users are scored by their recommended segments."""

    name = "segments"
    # a user outside the graph belongs to the segments of the items it bought, like any other; segments
    # are scored (Eq. 5-8) over the graph's users only, so outside users change no graph user's score
    covers_outside = True

    membership: sp.csr_matrix | None = None  # the graph's users
    scoring_membership: sp.csr_matrix | None = None  # the graph's users, then the outside users
    segment_names: np.ndarray | None = None

    def _fit(self, data: LookalikeData) -> None:
        built = category_segments(data)
        if built is None:
            built = item_cluster_segments(data, self.config.yahoo.segment_clusters, seed=self.seed)
        item_segments, self.segment_names = built
        self.membership = segment_membership(data.user_item_matrix(), item_segments)
        self.scoring_membership = (
            segment_membership(data.all_user_item_matrix(), item_segments) if data.n_outside else self.membership
        )

    def explain_campaign(self, campaign: Campaign) -> pd.DataFrame:
        """Every segment's Eq. 5–8 terms, recommended ones flagged, best first."""
        self._require_fit()
        table = segment_scores(self.membership, campaign.seeds)
        table.insert(0, "segment", self.segment_names)
        table["recommended"] = False
        chosen = top_segments(table, self.config.yahoo.segments_top_k)
        table.loc[chosen, "recommended"] = True
        return table.sort_values(["score", "segment"], ascending=[False, True]).reset_index(drop=True)

    def score_campaign(self, campaign: Campaign) -> np.ndarray:
        self._require_fit()
        scores = segment_scores(self.membership, campaign.seeds)
        chosen = top_segments(scores, self.config.yahoo.segments_top_k)
        segment_score = np.zeros(len(scores))
        segment_score[chosen] = scores["score"].to_numpy()[chosen]
        rows = self.membership if self.scoring_membership is None else self.scoring_membership
        member = rows[np.asarray(campaign.candidates, dtype=np.int64)]
        if self.config.yahoo.segment_user_score == "sum":
            return np.asarray(member @ segment_score).ravel()
        return np.asarray(member.multiply(segment_score[None, :]).max(axis=1).toarray()).ravel()

    def _require_fit(self) -> None:
        if self.membership is None:
            raise RuntimeError(f"{self.name}: fit() must run before scoring")
