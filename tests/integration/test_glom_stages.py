"""The GLoM stages on the generated dataset: ingest -> graph -> profiles -> pretrain -> train -> expand.

Real parts only: the synthetic Amazon-2023 files, the real graph stage, offline profiles with the
packaged sentence-transformers model, PM + GLM training, the faiss-backed expansion.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from glom_plugin.config import GlomConfig
from glom_plugin.layout import RunLayout

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from glom_plugin.stages.graph import run_graph_stage
    from glom_plugin.stages.ingest import run_ingest
    from glom_plugin.text.profiles import run_profiles_stage

    root = tmp_path_factory.mktemp("glom-run")
    cfg = GlomConfig(run_dir=str(root), device="cpu").with_overrides(
        **{
            "data.synthetic_reviews": 3000,
            "pm.dim": 16,
            "pm.epochs": 4,
            "glm.epochs": 3,
            "glm.batch_size": 4096,
        }
    )
    layout = RunLayout.at(root)
    run_ingest(cfg, layout)
    run_graph_stage(cfg, layout)
    run_profiles_stage(cfg, layout)
    return cfg, layout


def test_pretrain_train_expand(run, tmp_path):
    from glom_plugin.models.artifact import TrainedModel
    from glom_plugin.stages.expand import run_expand_stage
    from glom_plugin.stages.train import run_pretrain_stage, run_train_stage

    cfg, layout = run
    pm = run_pretrain_stage(cfg, layout)
    assert pm.model_name == "pm" and pm.user_embeddings.shape[1] == 16
    assert (layout.pm_dir / "model.json").exists()
    assert pm.metrics["pm"]["epoch_seconds"]
    assert pm.metrics["uses_profiles"]  # the profiles stage ran, so PM's F_GG/F_GI/F_IG terms were on

    trained = run_train_stage(cfg, layout)
    assert trained.model_name == "glom-seedset"  # the default GLM objective (glm.objective=seedset)
    assert trained.metrics["glm"]["train_loss"]  # seed-set epochs ran
    # the graph's users first, the reused PM's (ids match); then the users the ingest filter kept out of
    # the graph, folded in through GLM's layers (models/fold_in.py), each one from the outside table
    n_graph = len(pm.user_ids)
    np.testing.assert_array_equal(trained.user_ids[:n_graph], pm.user_ids)
    outside = set(pd.read_parquet(layout.outside_interactions)["user_id"]) if layout.outside_interactions.exists() else set()
    assert set(trained.user_ids[n_graph:]) <= outside and not set(trained.user_ids[n_graph:]) & set(pm.user_ids)
    assert np.isfinite(trained.user_embeddings).all()
    assert trained.metrics["relations"]["similar"] > 0
    loaded = TrainedModel.load(layout.glm_dir)
    np.testing.assert_array_equal(loaded.user_embeddings, trained.user_embeddings)

    seeds = tmp_path / "seeds.csv"
    pd.DataFrame({"user_id": list(trained.user_ids[:5]) + ["not-a-user"]}).to_csv(seeds, index=False)
    out = tmp_path / "lookalikes.parquet"
    result = run_expand_stage(cfg.with_overrides(**{"expand.top_k": 50, "expand.min_seeds": 5}), layout, seeds, out)
    table = pd.read_parquet(out)
    assert len(table) == 50 and not set(table["user_id"]) & set(trained.user_ids[:5])
    summary = json.loads((tmp_path / "lookalikes.parquet.summary.json").read_text())
    # "not-a-user" is not a hashed id: counted in the summary, never written there
    assert result.unknown_seeds == ["not-a-user"] and summary["n_unknown_not_hashed"] == 1
    assert summary["unknown_seeds"] == []


def test_stale_pm_is_retrained_when_dimension_changes(run):
    from glom_plugin.stages.train import run_pretrain_stage, run_train_stage

    cfg, layout = run
    run_pretrain_stage(cfg, layout)
    smaller = cfg.with_overrides(**{"pm.dim": 8, "glm.epochs": 1, "pm.epochs": 1})
    trained = run_train_stage(smaller, layout)
    assert trained.user_embeddings.shape[1] == 8
    assert json.loads((layout.pm_dir / "model.json").read_text())["dim"] == 8


def test_saved_pm_is_retrained_when_any_pm_setting_changes(run):
    """Issue 14, Found 3: a changed pm.lr or pm.epochs used to reuse the old PM silently."""
    from glom_plugin.stages.train import run_pretrain_stage, run_train_stage

    cfg, layout = run
    run_pretrain_stage(cfg, layout)
    before = json.loads((layout.pm_dir / "model.json").read_text())["created_at"]
    same = run_train_stage(cfg.with_overrides(**{"glm.epochs": 1}), layout)  # GLM's settings: PM reused
    assert json.loads((layout.pm_dir / "model.json").read_text())["created_at"] == before
    assert same.metrics["pm"]
    run_train_stage(cfg.with_overrides(**{"pm.lr": 0.02, "glm.epochs": 1}), layout)
    saved = json.loads((layout.pm_dir / "model.json").read_text())
    assert saved["config"]["pm"]["lr"] == 0.02
