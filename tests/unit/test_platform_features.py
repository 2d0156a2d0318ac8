"""Feast feature tables and MLflow helpers that need no running service."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from glom_plugin.config import GlomConfig
from glom_plugin.data.schema import POLARITY_SCHEMA
from glom_plugin.layout import RunLayout
from glom_plugin.models.artifact import TrainedModel
from glom_plugin.platform import feast_features as ff
from glom_plugin.platform import mlflow_registry as reg
from glom_plugin.storage import write_parquet


def test_polarity_statistics_hand_computed():
    edges = pd.DataFrame(
        {"user_id": ["a", "a", "a", "b"], "item_id": ["x", "y", "z", "x"], "polarity": [0.9, 0.2, 0.7, 0.4],
         "liked": [True, False, True, False]}
    )
    stats = ff.polarity_statistics(edges, "user_id").set_index("user_id")
    assert stats.loc["a", "mean_polarity"] == pytest.approx(0.6)
    assert (stats.loc["a", "likes"], stats.loc["a", "dislikes"], stats.loc["a", "interactions"]) == (2, 1, 3)
    assert (stats.loc["b", "likes"], stats.loc["b", "dislikes"]) == (0, 1)
    items = ff.polarity_statistics(edges, "item_id").set_index("item_id")
    assert items.loc["x", "mean_polarity"] == pytest.approx(0.65) and items.loc["x", "interactions"] == 2
    with pytest.raises(ValueError, match="liked"):
        ff.polarity_statistics(edges.drop(columns="liked"), "user_id")


def test_export_writes_every_view_with_timestamps(tmp_path):
    layout = RunLayout.at(tmp_path)
    with pytest.raises(FileNotFoundError, match="polarity edges are required"):
        ff.export_feature_tables(layout)
    edges = pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "x"], "rating_norm": [1.0, 0.0], "sentiment": [None, 0.5],
                          "polarity": [1.0, 0.25], "liked": [True, False], "polarity_source": ["rating", "rating+sentiment"]})
    write_parquet(edges, layout.polarity_edges, schema=POLARITY_SCHEMA)
    model = TrainedModel(model_name="m", user_ids=np.array(["a", "b"]), user_embeddings=np.eye(2, 3))
    written = ff.export_feature_tables(layout, model=model)
    assert set(written) == set(ff.FEATURE_TABLE_FILES)
    # No profiles stage output: the profile views exist and are empty (with a warning), never fabricated.
    assert pq.read_table(written["user_profile_embedding"]).num_rows == 0
    glom = pq.read_table(written["user_glom_embedding"])
    assert glom.schema.field("embedding").type == pa.list_(pa.float32())
    np.testing.assert_array_equal(np.array(glom["embedding"].to_pylist(), dtype=np.float32), np.eye(2, 3))
    assert str(glom.schema.field("event_timestamp").type) == "timestamp[us, tz=UTC]"
    # Without an explicit model, the run's GLM artifact is used once training has saved one.
    model.save(layout.glm_dir)
    again = pq.read_table(ff.export_feature_tables(layout)["user_glom_embedding"])
    assert again["user_id"].to_pylist() == ["a", "b"]


def test_mlflow_helpers():
    assert reg._parse_models_uri("models:/glom@champion") == ("glom", None, "champion")
    assert reg._parse_models_uri("models:/glom/3") == ("glom", "3", None)
    assert reg.artifact_root_for("sqlite:////tmp/x/mlflow.db") == "/tmp/x/mlartifacts"
    assert reg.artifact_root_for("http://127.0.0.1:5000") is None
    params = reg.flatten_config(GlomConfig())
    assert params["pm.dim"] == "64" and params["tracking.champion_alias"] == "champion"


def test_feast_training_path_respects_the_no_profiles_ablation(tmp_path):
    cfg = GlomConfig(run_dir=str(tmp_path)).with_overrides(
        **{"pm.use_profiles": False, "features.feast_repo": str(tmp_path / "no-such-repo")}
    )
    sentinel = object()
    assert ff.attach_profile_embeddings_from_feast(sentinel, cfg) is sentinel  # never reaches Feast
