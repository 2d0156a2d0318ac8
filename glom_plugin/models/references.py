"""Reference rows every table shows, so a learned model has to earn its complexity (issue: quality).

- ``cosine-centroid``: each user is the L2-normalised bag of items they interacted with; a campaign's
  candidates are ranked by cosine to the mean of its seeds' vectors. Ten lines, no training: a learned
  model that cannot beat it has learned nothing the co-purchase matrix did not already say.
- ``popularity``: users ranked by how many items they interacted with, the same for every campaign.
  What "just target the most active users" gives; a model near it ranks by activity, not by likeness.

Neither hides the campaign's own item: candidates' purchases of it are held out of the training graph,
so that column is zero for every candidate and only rescales the centroid.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.models.base import Campaign, LookalikeModel


def normalized_item_bags(data: LookalikeData) -> sp.csr_matrix:
    """users x items, 1 per interaction, each row scaled to unit L2 norm (empty rows stay zero); the
    graph's users, then the users outside it (their bags are their item rows)."""
    bags = data.all_user_item_matrix().astype(bool).astype(np.float64).tocsr()
    norms = np.sqrt(np.asarray(bags.sum(axis=1), dtype=np.float64).ravel())
    return (sp.diags(1.0 / np.maximum(norms, 1e-12)) @ bags).tocsr()


class CosineCentroidModel(LookalikeModel):
    """cos(x_u, mean_s x_s) over unit-norm raw item bags: the co-purchase reference."""

    name = "cosine-centroid"
    covers_outside = True

    bags: sp.csr_matrix | None = None

    def _fit(self, data: LookalikeData) -> None:
        self.bags = normalized_item_bags(data)

    def score_campaign(self, campaign: Campaign) -> np.ndarray:
        if self.bags is None:
            raise RuntimeError(f"{self.name}: fit() must run before scoring")
        centroid = np.asarray(self.bags[np.asarray(campaign.seeds, dtype=np.int64)].mean(axis=0)).ravel()
        norm = float(np.linalg.norm(centroid))
        if norm == 0.0:
            return np.zeros(len(campaign.candidates))
        return self.bags[np.asarray(campaign.candidates, dtype=np.int64)] @ (centroid / norm)


class PopularityModel(LookalikeModel):
    """log(1 + number of interactions): the same ranking for every campaign (seeds are ignored)."""

    name = "popularity"
    covers_outside = True

    activity: np.ndarray | None = None

    def _fit(self, data: LookalikeData) -> None:
        counts = np.bincount(data.edges["user_idx"].to_numpy(dtype=np.int64), minlength=data.n_users)
        outside = np.bincount(data.outside_edges["user_idx"].to_numpy(dtype=np.int64), minlength=data.n_outside)
        counts = np.concatenate([counts, outside])  # outside users are ranked by their activity too
        self.activity = np.log1p(counts.astype(np.float64))

    def score_campaign(self, campaign: Campaign) -> np.ndarray:
        if self.activity is None:
            raise RuntimeError(f"{self.name}: fit() must run before scoring")
        return self.activity[np.asarray(campaign.candidates, dtype=np.int64)]
