"""A real MLflow sqlite tracking store + registry: each training run registers a version; the champion
alias moves only when PR-AUC improves; ``models:/NAME@champion`` loads the champion's embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from glom_plugin.config import GlomConfig
from glom_plugin.models.artifact import TrainedModel
from glom_plugin.platform import mlflow_registry as reg

pytestmark = pytest.mark.integration


def random_model(seed: int, n_users: int = 300, dim: int = 16) -> TrainedModel:
    rng = np.random.default_rng(seed)
    return TrainedModel(
        model_name="glom-attn1",
        user_ids=np.array([f"u{i:04d}" for i in range(n_users)]),
        user_embeddings=rng.normal(size=(n_users, dim)).astype(np.float32),
        item_ids=np.array([f"i{i}" for i in range(10)]),
        item_embeddings=rng.normal(size=(10, dim)).astype(np.float32),
        config=GlomConfig().model_dump(),
        metrics={"data_date": "2026-11-20"},
    )


@pytest.fixture()
def cfg(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return GlomConfig(run_dir=str(tmp_path / "run")).with_overrides(
        **{"tracking.tracking_uri": uri, "tracking.registered_model": "glom-test"}
    )


def test_versions_and_champion_alias_move_only_on_improvement(cfg, tmp_path):
    from mlflow import MlflowClient

    first = reg.log_training_run(
        cfg, random_model(1), metrics={"precision": 0.4}, pr_auc=0.50, run_name="first",
        tags={"profiles.item_template_id": "offline@v2"},
    )
    assert (first.version, first.promoted) == ("1", True)
    worse = reg.log_training_run(cfg, random_model(2), pr_auc=0.45, run_name="worse")
    assert (worse.version, worse.promoted) == ("2", False)
    client = MlflowClient(cfg.tracking_uri())
    assert str(client.get_model_version_by_alias("glom-test", "champion").version) == "1"
    better = reg.log_training_run(cfg, random_model(3), pr_auc=0.61, run_name="better")
    assert (better.version, better.promoted) == ("3", True)
    assert str(client.get_model_version_by_alias("glom-test", "champion").version) == "3"
    # A tie keeps the incumbent.
    assert reg.promote_if_better(client, "glom-test", worse.version, 0.61) is False
    assert str(client.get_model_version_by_alias("glom-test", "champion").version) == "3"
    versions = client.search_model_versions("name='glom-test'")
    assert sorted(str(v.version) for v in versions) == ["1", "2", "3"]
    run = client.get_run(first.run_id)
    assert run.data.metrics["pr_auc"] == pytest.approx(0.50)
    assert run.data.params["pm.dim"] == "64"
    assert run.data.tags["profiles.item_template_id"] == "offline@v2"

    loaded = reg.load_registered_model("models:/glom-test@champion", tracking_uri=cfg.tracking_uri())
    expected = random_model(3)
    np.testing.assert_array_equal(loaded.model.as_trained().user_embeddings, expected.user_embeddings)
    assert list(loaded.model.user_ids) == list(expected.user_ids)
    assert (loaded.version, loaded.alias, loaded.tags["data_date"]) == ("3", "champion", "2026-11-20")
    by_number = reg.load_registered_model("models:/glom-test/2", tracking_uri=cfg.tracking_uri())
    np.testing.assert_array_equal(by_number.model.as_trained().user_embeddings, random_model(2).user_embeddings)

    # The generic pyfunc face answers campaigns exactly as expand_audience does.
    import mlflow
    import pandas as pd

    from glom_plugin.expand.expander import expand_audience

    pyfunc = mlflow.pyfunc.load_model("models:/glom-test@champion")
    seeds = [["u0001", "u0002", "nobody"], ["u0100"]]
    out = pyfunc.predict(pd.DataFrame({"campaign": ["a", "b"], "seed_ids": seeds, "k": [7, 4]}))
    assert out.columns.tolist() == ["campaign", "user_id", "score", "rank"]
    for name, campaign_seeds, k in (("a", seeds[0], 7), ("b", seeds[1], 4)):
        reference = expand_audience(expected, campaign_seeds, GlomConfig().expand, k=k).lookalikes
        got = out[out["campaign"] == name]
        assert got["user_id"].tolist() == reference["user_id"].tolist()
        assert got["rank"].tolist() == list(range(1, k + 1))


def test_version_without_pr_auc_is_never_champion(cfg):
    from mlflow import MlflowClient

    version = reg.log_training_run(cfg, random_model(4), pr_auc=None)
    assert version.promoted is False
    assert reg.current_champion(MlflowClient(cfg.tracking_uri()), "glom-test") is None
    with pytest.raises(ValueError, match="finite"):
        reg.promote_if_better(MlflowClient(cfg.tracking_uri()), "glom-test", version.version, float("nan"))
