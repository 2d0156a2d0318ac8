"""Leak-free training data for one evaluation run.

The positives of a task are users whose purchase of the task item the models must *discover*; if that
purchase stayed anywhere in the training inputs — as a polarity edge, inside a Pearson similarity
(Eq. 1) computed over co-rated items, or in the review text a user/item profile is written from (§3.2)
— a model could read the label off its features. So per run the evaluator removes every held-out
(user, item) pair from the polarity edges *and* from the interactions, recomputes polarity/liked from
the remaining rows, rebuilds ``LookalikeData`` (similarity recomputed on training rows only) and then
the profile embeddings from training interactions only. Tested in tests/unit/test_leakage.py.
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

    def __post_init__(self) -> None:
        if self.user_ids is None:
            object.__setattr__(
                self, "user_ids", np.sort(self.polarity["user_id"].astype(str).unique()).astype(object)
            )
        if self.item_ids is None:
            object.__setattr__(
                self, "item_ids", np.sort(self.polarity["item_id"].astype(str).unique()).astype(object)
            )

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
        return cls(**{name: pd.read_parquet(path) for name, path in paths.items()})

    def without(self, held_out: pd.DataFrame) -> EvaluationTables:
        """The same tables with every held-out (user_id, item_id) row removed from polarity and interactions."""
        return EvaluationTables(
            polarity=drop_pairs(self.polarity, held_out),
            interactions=drop_pairs(self.interactions, held_out),
            items=self.items,
            user_ids=self.user_ids,
            item_ids=self.item_ids,
        )


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


def build_training_data(train: EvaluationTables, cfg: GlomConfig, layout: RunLayout) -> LookalikeData:
    """Polarity/liked (§3.3) -> LookalikeData with similarity (§3.4) -> profile embeddings (§3.2), all from
    the training rows given. Imported lazily: these stages are heavy and live in their own packages."""
    from glom_plugin.graph.build import build_lookalike_data
    from glom_plugin.graph.polarity import polarity_from_sentiment
    from glom_plugin.text.profiles import attach_profile_embeddings

    polarity = polarity_from_sentiment(train.polarity, cfg)
    data = build_lookalike_data(polarity, train.items, cfg, user_ids=train.user_ids, item_ids=train.item_ids)
    return attach_profile_embeddings(data, train.interactions, train.items, cfg, layout)
