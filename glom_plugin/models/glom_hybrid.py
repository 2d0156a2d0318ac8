"""``glom-hybrid`` (beyond the paper): GLoM's user embeddings as features of a per-campaign classifier.

Why: on real data the per-campaign LR baseline (GLoM §4.2) beats retrieval by embedding similarity,
because it learns, from this campaign's seeds against sampled non-seeds, *which* parts of a user's
history matter for this audience, while sim(u, S) weighs every direction of the embedding alike. GLoM's
embeddings, for their part, carry what raw items cannot: profiles, polarity and user–user structure, and
a dense description of light users whose few items a sparse model barely sees. The hybrid keeps both:
one L2-regularised logistic regression per campaign on

    x_u = [ TF-IDF bag of u's items (+ categories), as the LR baseline ]  ⊕  w · ĥ_u  ⊕  v / (1 + n_u)

where ĥ_u is u's GLoM embedding h^L centred on the user mean and scaled to unit norm (the same vectors
retrieval compares, ``expand/aggregation.py``), w is ``hybrid.embedding_weight``, n_u the number of items
u bought and v ``hybrid.evidence_weight``: unit-norm rows make a one-item user look as sure as a heavy
one, and the last column lets the classifier learn how far to trust thin histories. The campaign's own
item is hidden from the bag, as in the LR baseline. With ``class_weight="balanced"`` the 1:10
seed:non-seed ratio is reweighted, so 0.5 reads "more likely a seed than a non-seed".

The GLoM part (PM + GLM) is fitted once, campaign-agnostically, with the variant's ``pm`` / ``glm``
config; only the small classifier runs per campaign.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from glom_plugin.config import GlomConfig, HybridConfig
from glom_plugin.expand.aggregation import l2_normalize
from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.models.base import Campaign, LookalikeModel
from glom_plugin.models.fold_in import GlmFoldIn, fold_in, retrieval_with_outside
from glom_plugin.models.glom import fit_glom
from glom_plugin.models.lr import RawUserFeatures


class GlomHybridModel(LookalikeModel):
    """Per-campaign logistic regression on [raw item bag, w · GLoM embedding]."""

    name = "glom-hybrid"
    decision_threshold = 0.5
    covers_outside = True  # item bag from the user's rows, GLoM embedding through GLM's layers (GlmFoldIn)

    def __init__(self, config: GlomConfig, seed: int = 0) -> None:
        super().__init__(config, seed)
        self.settings: HybridConfig = config.hybrid
        self.raw: RawUserFeatures | None = None
        self.embedding_features: np.ndarray | None = None
        self.glom_embeddings: np.ndarray | None = None
        self.glm_fold_state: dict[str, np.ndarray] | None = None
        self.user_items: sp.csr_matrix | None = None

    def _fit(self, data: LookalikeData) -> None:
        _, glm = fit_glom(data, self.config, seed=self.seed, progress=False)
        self.fit_embeddings(data, glm.node_embeddings[: data.n_users], GlmFoldIn.state_from(glm, data))

    def fit_embeddings(
        self, data: LookalikeData, user_embeddings: np.ndarray, glm_fold_state: dict[str, np.ndarray] | None = None
    ) -> GlomHybridModel:
        """The campaign-agnostic part given GLoM user embeddings (lets a caller reuse one GLoM fit) and, for
        users outside the graph, GLM's layers (``GlmFoldIn``; without them: buyer centroids)."""
        self._remember(data)
        self.glom_embeddings = np.asarray(user_embeddings, dtype=np.float32)
        self.glm_fold_state = glm_fold_state
        outside = None
        if data.n_outside and glm_fold_state is not None:  # users outside the graph: GLoM's fold-in
            outside = GlmFoldIn(glm_fold_state, self.config.glm.aggregator).embed_outside(data)
        elif data.n_outside:
            outside = fold_in("buyers", data.outside_item_matrix(), self.glom_embeddings, data.user_item_matrix())
        self.embedding_features = l2_normalize(
            retrieval_with_outside(self.glom_embeddings, self.config.expand.center, outside)
        )
        lr = self.config.baselines.lr
        self.raw = RawUserFeatures(data, lr.features, lr.use_categories) if self.settings.item_bag else None
        # who bought what (graph users, then outside ones), for the evidence column: the item bag's own
        # binary matrix when there is one, so the model does not hold it twice
        self.user_items = (
            self.raw.user_items if self.raw is not None
            else data.all_user_item_matrix().astype(bool).astype(np.float64).tocsr()
        )
        return self

    def evidence(self, users: np.ndarray, hide_item: int | None) -> np.ndarray:
        """1 / (1 + items bought) of ``users``, without ``hide_item``: every seed bought the campaign's item
        and no candidate's purchase of it is in the graph, so counting it would tell seeds apart."""
        if self.user_items is None:
            raise RuntimeError(f"{self.name}: fit() must run before scoring")
        counts = np.diff(self.user_items.indptr)[users].astype(np.float64)
        if hide_item is not None:
            counts -= np.asarray(self.user_items[users, hide_item].todense()).ravel()
        return 1.0 / (1.0 + counts)

    def learned_state(self) -> dict[str, object]:
        """GLoM's user embeddings h^L and GLM's fold-in arrays; the item bag is a function of the data."""
        if self.glom_embeddings is None:
            raise RuntimeError(f"{self.name}: fit() must run before saving")
        return {"glom_embeddings": self.glom_embeddings, **(self.glm_fold_state or {})}

    def restore(self, data: LookalikeData, state: dict[str, object]) -> GlomHybridModel:
        return self.fit_embeddings(data, np.asarray(state["glom_embeddings"]), GlmFoldIn.saved_state(state))

    def features(self, users: np.ndarray, hide_item: int | None) -> sp.csr_matrix:
        if self.embedding_features is None:
            raise RuntimeError(f"{self.name}: fit() must run before scoring")
        users = np.asarray(users, dtype=np.int64)
        columns = [self.settings.embedding_weight * self.embedding_features[users].astype(np.float64)]
        if self.settings.evidence_weight > 0:
            columns.append(self.settings.evidence_weight * self.evidence(users, hide_item)[:, None])
        dense = sp.csr_matrix(np.hstack(columns))
        if self.raw is None:
            return dense
        return sp.hstack([self.raw.rows(users, hide_item), dense], format="csr")

    def score_campaign(self, campaign: Campaign) -> np.ndarray:
        from sklearn.linear_model import LogisticRegression

        if len(campaign.seeds) == 0 or len(campaign.non_seeds) == 0:
            raise ValueError(
                f"campaign {campaign.name!r}: {self.name} trains per campaign and needs seeds and non_seeds "
                f"(got {len(campaign.seeds)} seeds, {len(campaign.non_seeds)} non-seeds)"
            )
        x = self.features(np.concatenate([campaign.seeds, campaign.non_seeds]), campaign.item_idx)
        y = np.concatenate([np.ones(len(campaign.seeds)), np.zeros(len(campaign.non_seeds))])
        classifier = LogisticRegression(
            C=self.settings.C,
            class_weight="balanced" if self.settings.class_weight == "balanced" else None,
            max_iter=self.settings.max_iter,
            random_state=self.seed,
        )
        classifier.fit(x, y)
        return classifier.predict_proba(self.features(campaign.candidates, campaign.item_idx))[:, 1]
