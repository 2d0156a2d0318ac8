"""The reference rows: cosine to the seed centroid over raw item bags, and activity; hand-checked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from glom_plugin.config import GlomConfig
from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.models.base import Campaign
from glom_plugin.models.registry import create_model


def _data(pairs: list[tuple[int, int]], n_users: int, n_items: int) -> LookalikeData:
    edges = pd.DataFrame(
        {
            "user_idx": [u for u, _ in pairs],
            "item_idx": [i for _, i in pairs],
            "rating_norm": 1.0,
            "sentiment": np.nan,
            "polarity": 1.0,
            "liked": True,
        }
    )
    return LookalikeData(
        user_ids=np.array([f"u{k}" for k in range(n_users)], dtype=object),
        item_ids=np.array([f"i{k}" for k in range(n_items)], dtype=object),
        edges=edges,
        similarity=pd.DataFrame({"user_a": [], "user_b": [], "similarity": []}),
        item_categories=sp.csr_matrix((n_items, 0)),
    )


def test_cosine_centroid_matches_the_hand_computed_cosine() -> None:
    # seeds u0 = {i0, i1}, u1 = {i1}; candidates u2 = {i1, i2}, u3 = {i2}, u4 = {i0}
    data = _data([(0, 0), (0, 1), (1, 1), (2, 1), (2, 2), (3, 2), (4, 0)], 5, 3)
    model = create_model("cosine-centroid", GlomConfig()).fit(data)
    scores = model.score_campaign(Campaign("c", np.array([0, 1]), np.array([], int), np.array([2, 3, 4])))
    centroid = (np.array([1, 1, 0]) / np.sqrt(2) + np.array([0, 1, 0])) / 2
    bags = np.array([[0, 1, 1], [0, 0, 1], [1, 0, 0]]) / np.array([[np.sqrt(2)], [1], [1]])
    expected = bags @ (centroid / np.linalg.norm(centroid))
    np.testing.assert_allclose(scores, expected, rtol=1e-12)
    assert scores[0] > scores[2] > scores[1] == 0.0


def test_popularity_ranks_by_activity_whatever_the_seeds() -> None:
    data = _data([(0, 0), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2)], 3, 3)
    model = create_model("popularity", GlomConfig()).fit(data)
    candidates = np.array([2, 0, 1])
    for seeds in ([0], [2]):
        scores = model.score_campaign(Campaign("c", np.array(seeds), np.array([], int), candidates))
        np.testing.assert_allclose(scores, np.log1p([3.0, 1.0, 2.0]))
