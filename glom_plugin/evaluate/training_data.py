"""Leak-free training data for one evaluation run.

The positives of a task are users whose purchase of the task item the models must *discover*; if that
purchase stayed anywhere in the training inputs — as a polarity edge, inside a Pearson similarity
(Eq. 1) computed over co-rated items, or in the review text a user/item profile is written from (§3.2)
— a model could read the label off its features. So per run the evaluator removes every held-out
(user, item) pair from the polarity edges *and* from the interactions, recomputes polarity/liked from
the remaining rows, rebuilds ``LookalikeData`` (similarity recomputed on training rows only) and then
the profile embeddings from training interactions only. Tested in tests/unit/test_leakage.py.

Users outside the trained graph (the minimum-interactions filter dropped them; ``outside`` holds their
rows with items of the graph) are part of the audience too: every one of their purchases of a task item
is held out like the positives' (``outside_held_out``), and what is left of their rows is all a model
may fold them in from (``LookalikeData.outside_edges``, attached per run by ``attach_outside``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from glom_plugin.config import GlomConfig
from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.layout import RunLayout


@dataclass(frozen=True)
class EvaluationTables:
    """The whole dataset as the evaluator reads it: polarity edges, interactions (with review text), items.

    ``user_ids`` / ``item_ids`` are the sorted ids of the *full* polarity table; training data keeps this
    index even when held-out rows leave a user without edges, so indices are stable across runs.
    """

    polarity: pd.DataFrame
    interactions: pd.DataFrame
    items: pd.DataFrame
    user_ids: np.ndarray = field(default=None)  # type: ignore[assignment]
    item_ids: np.ndarray = field(default=None)  # type: ignore[assignment]
    # rows (user_id, item_id, rating_norm) of users outside the graph with items of the graph
    outside: pd.DataFrame = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.user_ids is None:
            object.__setattr__(
                self, "user_ids", np.sort(self.polarity["user_id"].astype(str).unique()).astype(object)
            )
        if self.item_ids is None:
            object.__setattr__(
                self, "item_ids", np.sort(self.polarity["item_id"].astype(str).unique()).astype(object)
            )
        if self.outside is None:
            object.__setattr__(self, "outside", pd.DataFrame(columns=["user_id", "item_id", "rating_norm"]))
        elif len(self.outside):
            rows = self.outside
            graph_user = rows["user_id"].astype(str).isin(pd.Index(self.user_ids.astype(str)))
            graph_item = rows["item_id"].astype(str).isin(pd.Index(self.item_ids.astype(str)))
            object.__setattr__(self, "outside", rows.loc[~graph_user & graph_item].reset_index(drop=True))

    @classmethod
    def load(cls, layout: RunLayout) -> EvaluationTables:
        """Read the graph stage's polarity edges and the ingested interactions/items of a run directory."""
        paths = {
            "polarity": layout.polarity_edges,
            "interactions": layout.interactions,
            "items": layout.items,
        }
        missing = [f"{name}: {path}" for name, path in paths.items() if not path.exists()]
        if missing:
            raise FileNotFoundError(
                "evaluation needs the ingest and graph stages' outputs (run `glom prepare` first); missing "
                + "; ".join(missing)
            )
        from glom_plugin.graph.build import read_outside_rows

        tables = {name: pd.read_parquet(path) for name, path in paths.items()}
        return cls(**tables, outside=read_outside_rows(layout))

    def without(self, held_out: pd.DataFrame) -> EvaluationTables:
        """The same tables with every held-out (user_id, item_id) row removed from polarity and interactions."""
        return EvaluationTables(
            polarity=drop_pairs(self.polarity, held_out),
            interactions=drop_pairs(self.interactions, held_out),
            items=self.items,
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            outside=drop_pairs(self.outside, held_out),
        )

    def outside_held_out(self, item_ids: list[str]) -> pd.DataFrame:
        """(user_id, item_id) of every outside user's purchase of one of ``item_ids`` (the task items):
        such a user is in the task's hidden audience, so the purchase is hidden from what they are
        folded in from."""
        rows = self.outside
        if not len(rows):
            return pd.DataFrame({"user_id": pd.Series(dtype=object), "item_id": pd.Series(dtype=object)})
        hit = rows["item_id"].astype(str).isin(pd.Index([str(i) for i in item_ids]))
        return rows.loc[hit, ["user_id", "item_id"]].astype(str).drop_duplicates(ignore_index=True)


def drop_pairs(frame: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Anti-join: rows of ``frame`` whose (user_id, item_id) is not in ``pairs``; index reset, order kept."""
    if pairs.empty:
        return frame.reset_index(drop=True)
    keys = pd.MultiIndex.from_frame(pairs[["user_id", "item_id"]].astype(str))
    rows = pd.MultiIndex.from_arrays([frame["user_id"].astype(str), frame["item_id"].astype(str)])
    return frame.loc[~rows.isin(keys)].reset_index(drop=True)


# (training tables, config, layout) -> LookalikeData. The default is ``build_training_data``; another
# builder (e.g. a Spark-backed one for large data) plugs in through ``run_evaluation(data_builder=...)``.
DataBuilder = Callable[[EvaluationTables, GlomConfig, RunLayout], LookalikeData]


def attach_outside(data: LookalikeData, train: EvaluationTables) -> LookalikeData:
    """``data`` with the outside users of the training tables (their rows left after the hold-out); a
    user none of whose rows is left is not scorable by any model and is not attached."""
    from glom_plugin.graph.build import with_outside_users

    if data.n_outside or not len(train.outside):
        return data
    return with_outside_users(data, train.outside)


def build_training_data(train: EvaluationTables, cfg: GlomConfig, layout: RunLayout) -> LookalikeData:
    """Polarity/liked (§3.3) -> LookalikeData with similarity (§3.4) -> profile embeddings (§3.2), all from
    the training rows given. Imported lazily: these stages are heavy and live in their own packages."""
    from glom_plugin.graph.build import build_lookalike_data
    from glom_plugin.graph.polarity import polarity_from_sentiment
    from glom_plugin.text.profiles import attach_profile_embeddings

    polarity = polarity_from_sentiment(train.polarity, cfg)
    data = build_lookalike_data(polarity, train.items, cfg, user_ids=train.user_ids, item_ids=train.item_ids)
    return attach_profile_embeddings(data, train.interactions, train.items, cfg, layout)
