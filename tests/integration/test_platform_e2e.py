"""End to end on small data: `feast apply` (CLI) -> materialize -> training features through Feast ->
MLflow registry (champion) -> `bentoml serve` -> an expansion answer; then the trained user embeddings
go back into Feast's online store."""

from __future__ import annotations

import os
import subprocess

import httpx
import numpy as np
import pytest
import yaml

from glom_plugin.config import GlomConfig
from glom_plugin.expand.expander import expand_audience
from glom_plugin.expand.index import build_index
from glom_plugin.layout import RunLayout
from glom_plugin.models.artifact import TrainedModel
from glom_plugin.platform import feast_features as ff
from glom_plugin.platform import mlflow_registry as reg

from .platform_support import VENV_BIN, bentoml_serve, copy_feature_repo, write_run_inputs

pytestmark = pytest.mark.integration


def test_feast_to_expansion_answer(tmp_path):
    layout = RunLayout.at(tmp_path / "run")
    inputs = write_run_inputs(layout, n_users=120, n_items=30, dim=12, seed=3)
    ff.export_feature_tables(layout)
    repo = copy_feature_repo(tmp_path / "feature_repo")

    env = {**os.environ, "GLOM_FEATURES_DIR": str(layout.features_dir)}
    applied = subprocess.run([str(VENV_BIN / "feast"), "apply"], cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    ff.materialize(repo)

    # "Training": the model's user vectors are built only from what Feast serves (profile embedding +
    # scaled polarity statistics) — the path GLoM's training takes with features.source = feast.
    users = inputs["users"]
    features = ff.load_training_features(repo, users, inputs["items"])
    assert features["user_profile_found"].all()
    stats = np.column_stack([features["user_mean_polarity"], features["user_likes"] / features["user_interactions"]])
    user_vectors = np.hstack([features["user_profile_embeddings"], stats]).astype(np.float32)
    np.testing.assert_array_equal(features["user_profile_embeddings"], inputs["embeddings"]["user_id"])
    trained = TrainedModel(
        model_name="feast-profile-features", user_ids=np.array(users), user_embeddings=user_vectors,
        metrics={"data_date": "2026-11-20"},
    )

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = GlomConfig(run_dir=str(layout.root)).with_overrides(
        **{"tracking.tracking_uri": uri, "tracking.registered_model": "glom-e2e", "expand.min_seeds": 1}
    )
    registered = reg.log_training_run(cfg, trained, pr_auc=0.42)
    assert registered.promoted and registered.version == "1"
    config_path = tmp_path / "serving.yaml"
    config_path.write_text(yaml.safe_dump(cfg.model_dump()))

    seeds = users[:6] + ["not-a-user"]
    with bentoml_serve(
        "glom_plugin.serving.service:LookalikeService",
        {"GLOM_MODEL_URI": "models:/glom-e2e@champion", "GLOM_CONFIG": str(config_path), "MLFLOW_TRACKING_URI": uri,
         "GLOM_TEST_LOG_DIR": str(tmp_path)},
    ) as url:
        response = httpx.post(f"{url}/expand", json={"seed_ids": seeds, "k": 20}, timeout=60)
    assert response.status_code == 200, response.text
    answer = response.json()
    reference = expand_audience(trained, seeds, cfg.expand, k=20, index=build_index(trained.user_embeddings)).lookalikes
    assert [r["user_id"] for r in answer["lookalikes"]] == reference["user_id"].tolist()
    assert answer["unknown_seeds"] == [] and answer["model_version"] == "1"  # raw-looking ids are not echoed

    # The trained user embeddings become a Feast feature view and are served online.
    ff.export_feature_tables(layout, model=trained)
    ff.materialize(repo, feature_views=["user_glom_embedding"])
    online = ff.get_online_features(repo, ["user_glom_embedding:embedding"], [{"user_id": u} for u in users[:10]])
    np.testing.assert_array_equal(np.asarray(online["user_glom_embedding__embedding"], dtype=np.float32), user_vectors[:10])
