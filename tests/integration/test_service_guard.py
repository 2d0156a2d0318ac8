"""The real `bentoml serve` behind its front door (issue 14): API keys (401), body limit (413), k-anonymity
(400), a model reload under the same URI, and no start-up without the id salt."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
import yaml

from glom_plugin.config import GlomConfig
from glom_plugin.models.artifact import TrainedModel
from glom_plugin.platform import mlflow_registry as reg

from .platform_support import bentoml_serve

pytestmark = pytest.mark.integration
KEY = "soak-key-1"


def model(n_users: int = 300, dim: int = 8) -> TrainedModel:
    rng = np.random.default_rng(0)
    return TrainedModel(model_name="glom-attn1", user_ids=np.array([f"user{i:04d}" for i in range(n_users)]),
                        user_embeddings=rng.normal(size=(n_users, dim)).astype(np.float32))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("guard")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    cfg = GlomConfig(run_dir=str(root / "run")).with_overrides(**{
        "tracking.tracking_uri": uri, "tracking.registered_model": "glom-guard", "serving.max_body_bytes": 4096,
        "expand.min_seeds": 5, "serving.workers": 1})
    assert reg.log_training_run(cfg, model(), pr_auc=0.5).promoted
    config_path = root / "serving.yaml"
    config_path.write_text(yaml.safe_dump(cfg.model_dump()))
    env = {"GLOM_MODEL_URI": "models:/glom-guard@champion", "GLOM_CONFIG": str(config_path),
           "MLFLOW_TRACKING_URI": uri, "GLOM_TEST_LOG_DIR": str(root), "GLOM_API_KEYS": f"{KEY},other-key"}
    return root, env


def test_keys_limits_k_anonymity_and_reload(setup):
    root, env = setup
    seeds = [f"user{i:04d}" for i in range(10)]
    with bentoml_serve("glom_plugin.serving.service:LookalikeService", env) as url:
        with httpx.Client(base_url=url, timeout=60) as client:
            assert client.get("/readyz").status_code == 200
            assert client.post("/expand", json={"seed_ids": seeds, "k": 5}).status_code == 401
            bad_key = client.post("/expand", json={"seed_ids": seeds, "k": 5}, headers={"X-API-Key": "nope"})
            assert bad_key.status_code == 401
            auth = {"Authorization": f"Bearer {KEY}"}
            ok = client.post("/expand", json={"seed_ids": seeds, "k": 5}, headers=auth)
            assert ok.status_code == 200 and ok.json()["n_lookalikes"] == 5
            typo = client.post("/expand", json={"seed_ids": seeds, "k": 5, "treshold": 0.5}, headers=auth)
            assert typo.status_code == 400 and "treshold" in typo.text  # not silently ignored
            mixed = client.post("/expand", json={"seed_ids": seeds + ["alice@example.com", "0" * 20], "k": 5},
                                headers=auth).json()
            assert mixed["unknown_seeds"] == ["0" * 20] and "alice" not in json.dumps(mixed)  # no raw id echoed
            few = client.post("/expand", json={"seed_ids": seeds[:3] + ["ghost"] * 5, "k": 5}, headers=auth)
            assert few.status_code == 400 and "expand.min_seeds=5" in few.text
            batch = client.post("/expand_batch", json={"campaigns": [{"seed_ids": seeds}, {"seed_ids": seeds[:2]}]},
                                headers=auth).json()
            assert batch[0]["n_lookalikes"] > 0 and "expand.min_seeds" in batch[1]["error"]
            huge = client.post("/expand", json={"seed_ids": seeds * 100, "k": 5}, headers=auth)
            assert huge.status_code == 413 and "serving.max_body_bytes" in huge.json()["error"]
            reloaded = client.post("/reload", json={}, headers=auth)
            assert reloaded.status_code == 200 and reloaded.json()["version"] == "1"
            again = client.post("/expand", json={"seed_ids": seeds, "k": 5}, headers=auth).json()
            assert again["lookalikes"] == ok.json()["lookalikes"]


def test_no_start_without_the_salt(setup):
    root, env = setup
    with pytest.raises(RuntimeError, match="GLOM_ID_SALT is blank"):
        with bentoml_serve("glom_plugin.serving.service:LookalikeService", {**env, "GLOM_ID_SALT": ""}, timeout=60):
            pass
