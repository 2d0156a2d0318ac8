"""GLoM (§3): PM (§3.5) then GLM (§3.6), user embeddings for lookalike retrieval (§3.7).

``GlomModel`` is the registry's class for glom-mean / glom-attn1 / glom-attn2, glom-seedset and the
ablations (glom-no-profiles / -no-polarity / -no-similarity / -no-pm); the variant is its config. The
run-directory stages that train it with checkpoints and PM reuse are ``glom_plugin/stages/train.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from glom_plugin.config import GlomConfig
from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.models.base import EmbeddingLookalikeModel
from glom_plugin.models.fold_in import GlmFoldIn
from glom_plugin.models.training import GLMResult, PMResult, fit_glm, fit_pm


def fit_glom(
    data: LookalikeData, cfg: GlomConfig, seed: int = 0, progress: bool = True
) -> tuple[PMResult | None, GLMResult]:
    """PM then GLM; PM is skipped for the ablation "w/o PM" (``glm.use_pm=False``), whose h^0 is random."""
    pm = fit_pm(data, cfg, seed=seed, progress=progress) if cfg.glm.use_pm else None
    glm = fit_glm(data, cfg, seed=seed, pm=pm, progress=progress)
    return pm, glm


class GlomModel(EmbeddingLookalikeModel):
    """``self.embeddings`` = GLM's final user embeddings h^L (§3.7); campaigns are scored by cosine
    similarity to the seeds around the user mean, aggregated as ``expand.aggregation`` says (base class).
    GLM keeps its training only while held-out lookalike retrieval improves (``glm.select_on``)."""

    name = "glom"
    # Users outside the graph go through GLM's trained layers (``GlmFoldIn``). Without those arrays (a
    # model saved before them): the translation fold-in over h^L, which keeps the TransE geometry PM gave
    # it (on Digital Music the translation fold-in of a graph user is closer to its trained vector,
    # centred cosine 0.957, than the buyer-centroid one, 0.914).
    fold_in_method = "translation"
    glm_fold_state: dict[str, np.ndarray] | None = None

    def _fit(self, data: LookalikeData) -> None:
        self.pm_result, self.glm_result = fit_glom(data, self.config, seed=self.seed, progress=False)
        self.embeddings = self.glm_result.node_embeddings[: data.n_users]
        self.item_embeddings = self.glm_result.node_embeddings[data.n_users :]
        self.glm_fold_state = GlmFoldIn.state_from(self.glm_result, data)

    def learned_state(self) -> dict[str, Any]:
        return {**super().learned_state(), **(self.glm_fold_state or {})}

    def restore(self, data: LookalikeData, state: dict[str, Any]) -> GlomModel:
        super().restore(data, state)
        self.glm_fold_state = GlmFoldIn.saved_state(state)
        return self

    def outside_embeddings(self) -> np.ndarray | None:
        data = self.data
        if self.glm_fold_state is None or self.embeddings is None or data is None or not data.n_outside:
            return super().outside_embeddings()
        return GlmFoldIn(self.glm_fold_state, self.config.glm.aggregator).embed_outside(data)
