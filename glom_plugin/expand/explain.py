"""Why a lookalike was chosen: its most similar seeds (cosine) and the items it shares with them.

The item lookup is built once per interactions table (``SharedItems.from_interactions``), so a service
answers an explained request with work proportional to the lookalikes returned, not to the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from glom_plugin.expand.aggregation import l2_normalize

EXPLAIN_SEEDS = 3
EXPLAIN_ITEMS = 5


class SharedItems:
    """user_id -> the set of item ids it interacted with."""

    def __init__(self, items_of: dict[str, frozenset[str]]) -> None:
        self.items_of = items_of

    @classmethod
    def from_interactions(cls, interactions: pd.DataFrame) -> SharedItems:
        grouped = interactions.astype({"user_id": str, "item_id": str}).groupby("user_id")["item_id"]
        return cls({user: frozenset(items) for user, items in grouped})

    def shared(self, user: str, seeds: list[str]) -> list[str]:
        mine = self.items_of.get(user, frozenset())
        theirs = frozenset().union(*(self.items_of.get(s, frozenset()) for s in seeds))
        return sorted(mine & theirs)[:EXPLAIN_ITEMS]


@dataclass(frozen=True)
class Explanations:
    nearest_seeds: list[list[str]]
    nearest_seed_scores: list[list[float]]
    shared_items: list[list[str]] | None


def explain_lookalikes(
    embeddings: np.ndarray,
    user_ids: np.ndarray,
    rows: np.ndarray,
    seed_rows: np.ndarray,
    items: SharedItems | None,
) -> Explanations:
    """For each lookalike row, its ``EXPLAIN_SEEDS`` most similar seeds and, given ``items``, the items it
    shares with them."""
    if len(rows) == 0:
        return Explanations([], [], [] if items is not None else None)
    sims = l2_normalize(embeddings[rows]) @ l2_normalize(embeddings[seed_rows]).T
    n = min(EXPLAIN_SEEDS, len(seed_rows))
    nearest = np.argsort(-sims, axis=1)[:, :n]
    seed_ids = user_ids[seed_rows]
    seeds = [seed_ids[row].tolist() for row in nearest]
    scores = [np.round(sims[i, row], 4).tolist() for i, row in enumerate(nearest)]
    shared = None
    if items is not None:
        shared = [items.shared(user, near) for user, near in zip(user_ids[rows].tolist(), seeds, strict=True)]
    return Explanations(seeds, scores, shared)
