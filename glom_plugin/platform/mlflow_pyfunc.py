"""The MLflow pyfunc face of any fitted glom-plugin model (imported only when MLflow logs or loads one).

The logged artifact is the model's saved directory (``models/saved.py``; a bare ``TrainedModel`` of
older runs loads as fixed embeddings). Input: one row per campaign — ``seed_ids`` (list of hashed user
ids), optional ``k`` (int) and ``campaign`` (name). Output: one row per lookalike — campaign, user_id,
score, rank (1 = most alike), exactly what the model's own ``expand`` returns for those seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

ARTIFACT_KEY = "trained_model"
OUTPUT_COLUMNS = ["campaign", "user_id", "score", "rank"]


class GlomLookalikePyfunc(mlflow.pyfunc.PythonModel):
    """Wraps the ``LookalikeModel`` saved as the ``trained_model`` artifact."""

    def load_context(self, context: Any) -> None:
        from glom_plugin.models.saved import load_model

        self.model = load_model(Path(context.artifacts[ARTIFACT_KEY]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        default_k = int((params or {}).get("k") or self.model.config.expand.top_k)
        frames = []
        for row_number, row in enumerate(model_input.to_dict("records")):
            k = int(row.get("k") or default_k)
            result = self.model.expand([str(s) for s in row["seed_ids"]], k)
            frame = result.lookalikes[["user_id", "score"]].reset_index(drop=True).copy()
            frame.insert(0, "campaign", str(row.get("campaign") or row_number))
            frame["rank"] = range(1, len(frame) + 1)
            frames.append(frame)
        if not frames:
            return pd.DataFrame(columns=OUTPUT_COLUMNS)
        return pd.concat(frames, ignore_index=True)[OUTPUT_COLUMNS]
