"""Registry name ``pm``: PM's user embeddings alone (GLoM §4.2 "Pre-trained Model" baseline).

The registry face of PM, apart from its math (``pm.py``) so data flows one way: ``pm.py`` (energies,
sampler) <- ``training.py`` (the loop, ``fit_pm``) <- this file, as ``glom.py`` holds GLoM's face.
"""

from __future__ import annotations

import numpy as np

from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.models.base import EmbeddingLookalikeModel
from glom_plugin.models.training import fit_pm


class PretrainedModel(EmbeddingLookalikeModel):
    """``self.embeddings`` = per-user mean of interaction- and profile-based representations
    (``PretrainEnergyModel.node_embeddings``), so the PM baseline and GLM's input are the same vectors."""

    name = "pm"
    # TransE (h_u + r ≈ h_i): a user outside the graph is the mean of its items' vectors minus r
    fold_in_method = "translation"

    def _fit(self, data: LookalikeData) -> None:
        result = fit_pm(data, self.config, seed=self.seed, progress=False)
        self.energy_model, self.triples, self.history = result.model, result.triples, result.history
        self.embeddings = result.node_embeddings[: data.n_users].astype(np.float32)
        self.item_embeddings = result.node_embeddings[data.n_users :].astype(np.float32)
