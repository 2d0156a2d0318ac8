"""Logistic-regression lookalike model — the GLoM paper's §4.2 LR baseline [19] (one-stage, per campaign).

Raw user features are the bag of items a user bought and the bag of those items' categories
(``LookalikeData.user_item_matrix`` / ``user_category_matrix``), weighted as 0/1, counts or TF-IDF and
kept sparse. For each campaign a fresh classifier separates the seeds (label 1) from the sampled
non-seeds (label 0, the paper's 1:10 ratio); candidates are scored by P(y = 1 | x). This is the
"train from scratch for each campaign" approach the paper contrasts with two-stage models (§2): it sees
only m seeds per campaign, which is why it tends to over-fit small seed lists.

The campaign's own item (``Campaign.item_idx``) is hidden from the features, together with its
contribution to the category counts: every seed bought it and no candidate's purchase of it is in the
training graph, so it would separate seeds from non-seeds perfectly and say nothing about candidates
(an L1 model then keeps that one feature and scores every candidate alike).

With ``class_weight="balanced"`` the 1:10 imbalance is reweighted, so ``decision_threshold = 0.5``
reads as "more likely a seed than a non-seed". L1 (``penalty="l1"``) keeps only a few items/categories.
Profile embeddings are not raw features and are not used.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from glom_plugin.config import GlomConfig, LRBaselineConfig
from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.models.base import Campaign, LookalikeModel


class RawUserFeatures:
    """users x (items [+ categories]) counts, weighted on demand for any rows, with one item optionally hidden.

    TF-IDF (``sublinear tf = 1 + ln(count)``, ``idf = ln((1 + n) / (1 + df)) + 1``, rows L2-normalized, as
    scikit-learn's TfidfTransformer) uses document frequencies over all users — no labels are involved.
    """

    def __init__(self, data: LookalikeData, weighting: str, use_categories: bool) -> None:
        if weighting not in ("binary", "counts", "tfidf"):
            raise ValueError(f"unknown LR feature weighting {weighting!r}; choose binary, counts or tfidf")
        self.weighting = weighting
        # rows: the graph's users, then the users outside it (their item rows); the document
        # frequencies below are the graph's users' only, so outside users never change a graph user's row
        self.user_items = data.all_user_item_matrix().astype(bool).astype(np.float64).tocsr()
        self.n_items = data.n_items
        self.item_categories = (
            data.item_categories.astype(np.float64).tocsr()
            if use_categories and data.item_categories.shape[1] > 0
            else None
        )
        counts = self._counts(np.arange(data.n_users), None)
        document_frequency = np.bincount(counts.indices, minlength=counts.shape[1])
        self.idf = np.log((1.0 + data.n_users) / (1.0 + document_frequency)) + 1.0

    @property
    def n_features(self) -> int:
        return self.n_items + (0 if self.item_categories is None else self.item_categories.shape[1])

    def _counts(self, users: np.ndarray, hide_item: int | None) -> sp.csr_matrix:
        items = self.user_items[users]
        if hide_item is not None:
            keep = np.ones(self.n_items)
            keep[hide_item] = 0.0
            items = items @ sp.diags(keep)
        blocks = [items]
        if self.item_categories is not None:
            blocks.append(items @ self.item_categories)
        counts = sp.hstack(blocks, format="csr")
        counts.eliminate_zeros()
        return counts

    def rows(self, users: np.ndarray, hide_item: int | None = None) -> sp.csr_matrix:
        counts = self._counts(users, hide_item)
        if self.weighting == "counts":
            return counts
        weighted = counts.copy()
        if self.weighting == "binary":
            weighted.data = np.ones_like(weighted.data)
            return weighted
        weighted.data = (1.0 + np.log(weighted.data)) * self.idf[weighted.indices]
        norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
        return (sp.diags(1.0 / np.maximum(norms, 1e-12)) @ weighted).tocsr()


class LogisticRegressionModel(LookalikeModel):
    """GLoM §4.2 LR: one logistic regression per campaign, seeds vs non-seeds, on raw sparse features."""

    name = "lr"
    decision_threshold = 0.5
    covers_outside = True

    def __init__(self, config: GlomConfig, seed: int = 0) -> None:
        super().__init__(config, seed)
        self.settings: LRBaselineConfig = config.baselines.lr
        self.features: RawUserFeatures | None = None
        # Coefficients of the latest campaign's classifier, for inspection (L1 sparsity).
        self.last_coefficients: np.ndarray | None = None

    def _fit(self, data: LookalikeData) -> None:
        self.features = RawUserFeatures(data, self.settings.features, self.settings.use_categories)

    def score_campaign(self, campaign: Campaign) -> np.ndarray:
        from sklearn.linear_model import LogisticRegression

        if self.features is None:
            raise RuntimeError(f"{self.name}: fit() must run before scoring")
        if len(campaign.seeds) == 0 or len(campaign.non_seeds) == 0:
            raise ValueError(
                f"campaign {campaign.name!r}: LR trains per campaign and needs seeds and non_seeds "
                f"(got {len(campaign.seeds)} seeds, {len(campaign.non_seeds)} non-seeds)"
            )
        settings = self.settings
        x = self.features.rows(np.concatenate([campaign.seeds, campaign.non_seeds]), campaign.item_idx)
        y = np.concatenate([np.ones(len(campaign.seeds)), np.zeros(len(campaign.non_seeds))])
        l1 = settings.penalty == "l1"
        classifier = LogisticRegression(
            C=settings.C,
            l1_ratio=1.0 if l1 else 0.0,
            solver="liblinear" if l1 else "lbfgs",
            class_weight="balanced" if settings.class_weight == "balanced" else None,
            max_iter=settings.max_iter,
            random_state=self.seed,
        )
        classifier.fit(x, y)
        self.last_coefficients = classifier.coef_[0].copy()
        return classifier.predict_proba(self.features.rows(campaign.candidates, campaign.item_idx))[:, 1]
