"""Pinterest's two-stage audience expansion (deWet & Ou, KDD'19, "Finding Users Who Act Alike") —
the GLoM paper's §4.2 Pinterest baseline [20].

Stage 1 (campaign-agnostic): a global user embedding learned once from site-wide activity. Here the
activity is the user–item purchase graph and the embedding is trained with BPR — plain matrix
factorization (a user tower and an item tower, ``embedding_layers = 0``, the default) or, with
``embedding_layers > 0``, LightGCN propagation of the same towers (``models/lightgcn.py``).

Stage 2 (per campaign), two scorers and their ensemble, as in the paper:
(a) affinity: the embedding space is cut into regions by random-hyperplane LSH; a user's affinity to
    the seed list is the ratio of the seeds' density to the background (all users') density in the
    user's region, smoothed and averaged over ``lsh_tables`` tables — seeds concentrated where few users
    live say more than seeds in a crowded region;
(b) classifier: logistic regression on the global embeddings, seeds vs non-seeds;
(c) ensemble: each score is turned into its rank percentile among the campaign's candidates and the two
    are averaged with ``ensemble_weight`` — the combination the paper reports best for all seed sizes.
Scores are ranks, so there is no decision threshold (rank-only).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import rankdata

from glom_plugin.config import GlomConfig, LinkPredictionConfig
from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.models.base import Campaign, LookalikeModel
from glom_plugin.models.lightgcn import fit_lightgcn_embeddings


class LshRegions:
    """``tables`` x ``bits`` random hyperplanes; each user falls in one of 2^bits regions per table."""

    def __init__(self, embeddings: np.ndarray, tables: int, bits: int, rng: np.random.Generator) -> None:
        centred = embeddings - embeddings.mean(axis=0, keepdims=True)
        planes = rng.normal(size=(tables, embeddings.shape[1], bits))
        powers = 1 << np.arange(bits)
        # regions[t, u] = the bit pattern of user u's side of table t's hyperplanes.
        self.regions = np.stack(
            [((centred @ planes[t]) > 0).astype(np.int64) @ powers for t in range(tables)]
        )
        self.n_regions = 1 << bits
        self.background = np.stack([np.bincount(r, minlength=self.n_regions) for r in self.regions])

    def affinity(self, seeds: np.ndarray, candidates: np.ndarray, smoothing: float) -> np.ndarray:
        """mean_t  [(s_r + a) / (m + a R)] / [(b_r + a) / (N + a R)]   for r = region of the candidate in table t."""
        n_users, m, r = self.regions.shape[1], len(seeds), self.n_regions
        scores = np.zeros(len(candidates))
        for t, regions in enumerate(self.regions):
            seed_counts = np.bincount(regions[seeds], minlength=r)
            seed_density = (seed_counts + smoothing) / (m + smoothing * r)
            background_density = (self.background[t] + smoothing) / (n_users + smoothing * r)
            scores += np.log(seed_density / background_density)[regions[candidates]]
        return scores / len(self.regions)


def rank_percentile(scores: np.ndarray) -> np.ndarray:
    """Average ranks scaled to [0, 1] (ties share a rank), so scorers on different scales can be blended."""
    if len(scores) <= 1:
        return np.ones(len(scores))
    return (rankdata(scores, method="average") - 1.0) / (len(scores) - 1.0)


class PinterestModel(LookalikeModel):
    """GLoM §4.2 Pinterest: global BPR user embedding; per campaign LSH affinity + LR, rank-averaged."""

    name = "pinterest"

    def __init__(self, config: GlomConfig, seed: int = 0) -> None:
        super().__init__(config, seed)
        self.settings = config.baselines.pinterest
        self.embeddings: np.ndarray | None = None
        self.regions: LshRegions | None = None
        self.loss_history: list[float] = []

    def _fit(self, data: LookalikeData) -> None:
        s = self.settings
        embedding_settings = LinkPredictionConfig(
            dim=s.dim, layers=s.embedding_layers, epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, reg=s.reg
        )
        device = torch.device(self.config.resolved_device())
        self.embeddings, self.loss_history = fit_lightgcn_embeddings(
            data, embedding_settings, device, self.seed, "pinterest global embedding"
        )
        self._index_regions()

    def _index_regions(self) -> None:
        s = self.settings
        self.regions = LshRegions(self.embeddings, s.lsh_tables, s.lsh_bits, np.random.default_rng(self.seed))

    def learned_state(self) -> dict[str, object]:
        """The global embedding; the LSH regions are a seeded function of it and are rebuilt on load."""
        self._require_fit()
        return {"embeddings": np.asarray(self.embeddings, dtype=np.float32)}

    def restore(self, data: LookalikeData, state: dict[str, object]) -> PinterestModel:
        self._remember(data)
        self.embeddings = np.asarray(state["embeddings"], dtype=np.float32)
        self._index_regions()
        return self

    def affinity_scores(self, campaign: Campaign) -> np.ndarray:
        """Stage 2(a): seed-list affinity from LSH region densities."""
        self._require_fit()
        return self.regions.affinity(campaign.seeds, campaign.candidates, self.settings.lsh_smoothing)

    def classifier_scores(self, campaign: Campaign) -> np.ndarray:
        """Stage 2(b): per-campaign logistic regression on the global embeddings."""
        from sklearn.linear_model import LogisticRegression

        self._require_fit()
        if len(campaign.non_seeds) == 0:
            raise ValueError(f"campaign {campaign.name!r}: the Pinterest classifier needs non_seeds")
        x = np.concatenate([self.embeddings[campaign.seeds], self.embeddings[campaign.non_seeds]])
        y = np.concatenate([np.ones(len(campaign.seeds)), np.zeros(len(campaign.non_seeds))])
        classifier = LogisticRegression(
            C=self.settings.classifier_C, class_weight="balanced", max_iter=500, random_state=self.seed
        )
        classifier.fit(x, y)
        return classifier.decision_function(self.embeddings[campaign.candidates])

    def score_campaign(self, campaign: Campaign) -> np.ndarray:
        """Stage 2(c): w * rank(affinity) + (1 - w) * rank(classifier)."""
        w = self.settings.ensemble_weight
        return w * rank_percentile(self.affinity_scores(campaign)) + (1.0 - w) * rank_percentile(
            self.classifier_scores(campaign)
        )

    def user_embeddings(self) -> np.ndarray | None:
        return self.embeddings

    def _require_fit(self) -> None:
        if self.embeddings is None or self.regions is None:
            raise RuntimeError(f"{self.name}: fit() must run before scoring")
