"""Reference row: uniform random scores, so every table shows what chance gives on the same candidates."""

from __future__ import annotations

import numpy as np

from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.models.base import Campaign, LookalikeModel


class RandomModel(LookalikeModel):
    name = "random"
    covers_outside = True

    def _fit(self, data: LookalikeData) -> None:
        self._rng = np.random.default_rng(self.seed)

    def score_campaign(self, campaign: Campaign) -> np.ndarray:
        return self._rng.random(len(campaign.candidates))
