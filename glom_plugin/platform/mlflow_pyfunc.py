"""The MLflow pyfunc face of a trained GLoM model (imported only when MLflow logs or loads one).

Input: one row per campaign — ``seed_ids`` (list of hashed user ids), optional ``k`` (int) and
``campaign`` (name). Output: one row per lookalike — campaign, user_id, score, rank (1 = most alike),
exactly what ``glom_plugin.expand.expander.expand_audience`` returns for those seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from glom_plugin.config import ExpandConfig

ARTIFACT_KEY = "trained_model"
OUTPUT_COLUMNS = ["campaign", "user_id", "score", "rank"]


def expand_config_of(trained: Any) -> ExpandConfig:
    """The expansion settings the model was trained with (its saved config), defaults when absent."""
    section = (trained.config or {}).get("expand") if isinstance(trained.config, dict) else None
    return ExpandConfig.model_validate(section) if section else ExpandConfig()


class GlomLookalikePyfunc(mlflow.pyfunc.PythonModel):
    """Wraps ``glom_plugin.models.artifact.TrainedModel`` (saved as the ``trained_model`` artifact)."""

    def load_context(self, context: Any) -> None:
        from glom_plugin.models.artifact import TrainedModel

        self.trained = TrainedModel.load(Path(context.artifacts[ARTIFACT_KEY]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        from glom_plugin.expand.expander import expand_audience

        expand_cfg = expand_config_of(self.trained)
        default_k = int((params or {}).get("k") or expand_cfg.top_k)
        frames = []
        for row_number, row in enumerate(model_input.to_dict("records")):
            k = int(row.get("k") or default_k)
            result = expand_audience(self.trained, [str(s) for s in row["seed_ids"]], expand_cfg, k=k)
            frame = result.lookalikes[["user_id", "score"]].reset_index(drop=True).copy()
            frame.insert(0, "campaign", str(row.get("campaign") or row_number))
            frame["rank"] = range(1, len(frame) + 1)
            frames.append(frame)
        if not frames:
            return pd.DataFrame(columns=OUTPUT_COLUMNS)
        return pd.concat(frames, ignore_index=True)[OUTPUT_COLUMNS]
