"""The one protocol every lookalike model implements.

A model is first fitted, campaign-agnostically, on a ``LookalikeData`` built from training
interactions only; it then scores the candidates of each campaign given that campaign's seeds (and,
for models that train per campaign, sampled non-seeds at the paper's 1:10 ratio). The evaluator keeps
the labels; a model never sees which candidates are positives.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from glom_plugin.config import GlomConfig
from glom_plugin.expand.aggregation import aggregate_similarity, retrieval_vectors
from glom_plugin.graph.dataset import LookalikeData


@dataclass(frozen=True)
class Campaign:
    """One lookalike task (§4.1: tasks are items).

    seeds: user indices the advertiser uploaded (m of them).
    non_seeds: user indices sampled as negatives for per-campaign training (seed:non-seed = 1:10).
    candidates: user indices to score (the held-out purchasers mixed with sampled non-purchasers);
        never contains a seed.
    """

    name: str
    seeds: np.ndarray
    non_seeds: np.ndarray
    candidates: np.ndarray
    item_idx: int | None = None


class LookalikeModel(ABC):
    """fit once on the (leak-free) graph, then score each campaign's candidates (higher = more alike)."""

    name: ClassVar[str] = "model"
    # Score above which a candidate counts as expanded (for precision/recall at threshold); None = rank only.
    decision_threshold: float | None = None

    def __init__(self, config: GlomConfig, seed: int = 0) -> None:
        self.config = config
        self.seed = seed

    @abstractmethod
    def fit(self, data: LookalikeData) -> LookalikeModel:
        """Campaign-agnostic training on the whole (training) graph."""

    @abstractmethod
    def score_campaign(self, campaign: Campaign) -> np.ndarray:
        """One score per ``campaign.candidates`` entry."""

    def user_embeddings(self) -> np.ndarray | None:
        """Per-user vectors (n_users, d) when the model has them (used by the ANN index and serving)."""
        return None


class EmbeddingLookalikeModel(LookalikeModel):
    """Models whose output is one vector per user; campaigns are scored by sim(u, S) over seeds.

    Subclasses set ``self.embeddings`` in ``fit``. Retrieval compares ``user_embeddings()``: those
    vectors centred on the user mean when ``expand.center`` (``retrieval_vectors``), the same for every
    embedding model so the comparison stays fair. The aggregation (max / mean / probabilistic) and the
    similarity threshold T (§3.7) come from ``config.expand``.
    """

    embeddings: np.ndarray | None = None
    _retrieval: tuple[np.ndarray, np.ndarray] | None = None  # (the embeddings it was made from, vectors)

    @property
    def decision_threshold(self) -> float | None:  # type: ignore[override]
        return self.config.expand.threshold

    def score_campaign(self, campaign: Campaign) -> np.ndarray:
        vectors = self.user_embeddings()
        if vectors is None:
            raise RuntimeError(f"{self.name}: fit() must run before scoring")
        return aggregate_similarity(
            vectors[campaign.candidates], vectors[campaign.seeds], self.config.expand.aggregation
        )

    def user_embeddings(self) -> np.ndarray | None:
        if self.embeddings is None:
            return None
        # computed once per fitted embedding matrix, not once per campaign
        if self._retrieval is None or self._retrieval[0] is not self.embeddings:
            self._retrieval = (self.embeddings, retrieval_vectors(self.embeddings, self.config.expand.center))
        return self._retrieval[1]
