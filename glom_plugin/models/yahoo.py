"""Yahoo §3: the graph-constraint look-alike system (Ma, Wen, Xia, Chen — BIGMINE 2016).

Two phases, so that per-campaign work is sub-linear in the number of users:

- **Phase I — global graph construction** (``fit``, campaign-agnostic, once): a user–user graph over
  binary user features, built with MinHash LSH (``glom_plugin/graph/lsh.py``; Jaccard, Eq. 2, or the
  weighted cosine of Eq. 9 with a diagonal A). A campaign's look-alike candidates are restricted to
  the union of its seeds' graph neighbours N(S) — the "graph constraint".
- **Phase II — campaign-specific modeling**: features are weighted by how strongly they separate the
  seeds from their neighbourhood, with the information value (IV) of each binary feature j:

      p_j = (n_j(S) + ε) / (|S| + 2ε)        share of seeds having feature j (smoothed)
      q_j = (n_j(N) + ε) / (|N| + 2ε)        share of candidates N(S) having it
      IV_j = (p_j − q_j) · ln(p_j / q_j)     (≥ 0; the usual WoE-weighted information value)
      A_j  = IV_j if seeds over-index on j (p_j > q_j and the raw rates agree) else 0

  and a candidate is ranked by s(u) = Σ_j A_j f_uj (Eq. 9's A as a diagonal, campaign-specific weight).
  Because A is a short list of named features, the advertiser can see *why* users were chosen
  (``explain_campaign``; the paper's transparency concern).

Scoring the harness's candidates: users in N(S) rank above every user outside it (``s(u) + Σ_j A_j + 1``),
users outside keep s(u) so the harness's metrics still see an order among them. When the seeds have
no neighbour at all, q_j is taken over all non-seed users (documented fallback).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.graph.lsh import UserGraph, build_user_graph
from glom_plugin.models.base import Campaign, LookalikeModel
from glom_plugin.models.user_features import UserFeatures, build_user_features_from_config


@dataclass(frozen=True)
class FeatureWeights:
    """Phase II output for one campaign: A_j per feature, with the rates it came from (unsmoothed)."""

    weights: np.ndarray
    seed_rate: np.ndarray
    candidate_rate: np.ndarray
    information_value: np.ndarray


def information_value_weights(
    seed_features: sp.csr_matrix, candidate_features: sp.csr_matrix, smoothing: float = 0.5
) -> FeatureWeights:
    """IV_j between seeds and candidates; A_j = IV_j where seeds over-index (p_j > q_j), else 0."""
    n_seeds, n_cand = seed_features.shape[0], candidate_features.shape[0]
    if n_seeds == 0:
        raise ValueError("the seed list is empty")
    seed_counts = np.asarray((seed_features > 0).sum(axis=0), dtype=np.float64).ravel()
    cand_counts = np.asarray((candidate_features > 0).sum(axis=0), dtype=np.float64).ravel()
    p = (seed_counts + smoothing) / (n_seeds + 2 * smoothing)
    q = (cand_counts + smoothing) / (n_cand + 2 * smoothing)
    iv = (p - q) * np.log(p / q)
    seed_rate, candidate_rate = seed_counts / n_seeds, cand_counts / max(n_cand, 1)
    # Over-indexing is judged on the raw rates too: smoothing alone would give a feature that neither
    # seeds nor candidates have p > q whenever |S| < |N|.
    over_index = (p > q) & (seed_rate > candidate_rate)
    return FeatureWeights(
        weights=np.where(over_index, iv, 0.0),
        seed_rate=seed_rate,
        candidate_rate=candidate_rate,
        information_value=iv,
    )


@dataclass(frozen=True)
class LookalikeAudience:
    """Result of ``GraphConstraintModel.neighbourhood_audience``: ranked users with scores, and the features behind them."""

    users: np.ndarray
    scores: np.ndarray
    features: pd.DataFrame


class GraphConstraintModel(LookalikeModel):
    """§3: LSH user graph (Phase I) + information-value feature weights per campaign (Phase II)."""

    name = "graph-constraint"

    features: UserFeatures | None = None
    graph: UserGraph | None = None

    def _fit(self, data: LookalikeData) -> None:
        cfg = self.config.yahoo
        self.features = build_user_features_from_config(data, cfg)
        self.graph = build_user_graph(
            self.features.matrix,
            bands=cfg.lsh_bands,
            rows=cfg.lsh_rows,
            window=cfg.lsh_bucket_window,
            neighbors_per_user=cfg.neighbors_per_user,
            min_similarity=cfg.min_edge_similarity,
            measure=cfg.graph_similarity,
            seed=self.seed,
            backend=cfg.lsh_backend,
        )

    # -- Phase I: the graph constraint ------------------------------------------------------------
    def campaign_candidates(self, seeds: np.ndarray) -> np.ndarray:
        """N(S): the union of the seeds' neighbours in the global graph (seeds excluded)."""
        self._require_fit()
        return self.graph.neighbors(np.asarray(seeds, dtype=np.int64))

    # -- Phase II: campaign-specific feature weights ----------------------------------------------
    def campaign_weights(self, seeds: np.ndarray, neighbors: np.ndarray | None = None) -> FeatureWeights:
        self._require_fit()
        seeds = np.asarray(seeds, dtype=np.int64)
        if neighbors is None:
            neighbors = self.campaign_candidates(seeds)
        if len(neighbors) == 0:
            neighbors = np.setdiff1d(np.arange(self.graph.n_users), seeds)
        matrix = self.features.matrix
        return information_value_weights(matrix[seeds], matrix[neighbors], self.config.yahoo.iv_smoothing)

    def score_campaign(self, campaign: Campaign) -> np.ndarray:
        self._require_fit()
        neighbors = self.campaign_candidates(campaign.seeds)
        weights = self.campaign_weights(campaign.seeds, neighbors).weights
        candidates = np.asarray(campaign.candidates, dtype=np.int64)
        s = np.asarray(self.features.matrix[candidates] @ weights).ravel()  # s(u) = Σ_j A_j f_uj
        in_graph = np.isin(candidates, neighbors)
        return s + in_graph * (weights.sum() + 1.0)

    def explain_campaign(self, campaign: Campaign, top: int | None = 50) -> pd.DataFrame:
        """The features that define this campaign's look-alikes, strongest first (positive weights only)."""
        fw = self.campaign_weights(campaign.seeds)
        return self._feature_table(fw, top)

    def neighbourhood_audience(self, seeds: np.ndarray, k: int | None = None) -> LookalikeAudience:
        """The sub-linear look-alike audience (Yahoo §3): only N(S), ranked by s(u), top k, with its
        explaining features. ``expand`` (the one model face) ranks every user by ``score_campaign``: N(S)
        first, then everyone else by s(u)."""
        self._require_fit()
        seeds = np.asarray(seeds, dtype=np.int64)
        neighbors = self.campaign_candidates(seeds)
        fw = self.campaign_weights(seeds, neighbors)
        scores = np.asarray(self.features.matrix[neighbors] @ fw.weights).ravel()
        order = np.lexsort((neighbors, -scores))[:k]
        return LookalikeAudience(
            users=neighbors[order], scores=scores[order], features=self._feature_table(fw, 50)
        )

    def _feature_table(self, fw: FeatureWeights, top: int | None) -> pd.DataFrame:
        positive = np.flatnonzero(fw.weights > 0)
        order = positive[np.lexsort((positive, -fw.weights[positive]))][:top]
        return pd.DataFrame(
            {
                "feature": self.features.names[order],
                "weight": fw.weights[order],
                "seed_rate": fw.seed_rate[order],
                "candidate_rate": fw.candidate_rate[order],
            }
        )

    def _require_fit(self) -> None:
        if self.features is None or self.graph is None:
            raise RuntimeError(f"{self.name}: fit() must run before scoring")
