"""Resumable training (issue 14, item 9): PM and GLM checkpoint every epoch; a run resumed from the
checkpoint of epoch k ends with exactly the model of the uninterrupted run. (The real kill -9 of a
`glom train` process is tests/integration/test_resume_training.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from glom_plugin.config import GlomConfig
from glom_plugin.models.checkpoint import EpochCheckpoint
from glom_plugin.models.training import fit_glm, fit_pm
from tests.support.planted import make_planted_data

torch.set_num_threads(1)


def small_cfg(**overrides: object) -> GlomConfig:
    values = {"pm.dim": 8, "pm.epochs": 6, "pm.batch_size": 256, "pm.patience": 50, "glm.epochs": 5,
              "glm.patience": 50, "glm.batch_size": 512, "glm.layers": 1, "device": "cpu"}
    return GlomConfig().with_overrides(**{**values, **overrides})


@pytest.mark.parametrize("objective", ["eq9", "seedset"])
def test_resumed_training_equals_the_uninterrupted_run(tmp_path: Path, objective: str) -> None:
    data = make_planted_data(n_users=60, n_items=20, seed=7)
    cfg = small_cfg(**{"glm.objective": objective, "glm.seedset_episodes": 16, "glm.seedset_batch": 8})
    pm_full = fit_pm(data, cfg, seed=3, progress=False)
    glm_full = fit_glm(data, cfg, seed=3, pm=pm_full, progress=False)

    # Interrupted after PM epoch 3 / GLM epoch 2: the checkpoint files are what a killed run leaves.
    pm_ckpt = EpochCheckpoint(tmp_path / "pm.pt", "key-pm")
    fit_pm(data, small_cfg(**{"pm.epochs": 3}), seed=3, progress=False, checkpoint=pm_ckpt)
    assert torch.load(pm_ckpt.path, weights_only=False)["epoch"] == 2
    pm_resumed = fit_pm(data, cfg, seed=3, progress=False, checkpoint=EpochCheckpoint(pm_ckpt.path, "key-pm", resume=True))
    np.testing.assert_array_equal(pm_resumed.node_embeddings, pm_full.node_embeddings)
    assert pm_resumed.history.train_loss == pm_full.history.train_loss

    glm_ckpt = EpochCheckpoint(tmp_path / "glm.pt", "key-glm")
    short = cfg.with_overrides(**{"glm.epochs": 2})
    fit_glm(data, short, seed=3, pm=pm_resumed, progress=False, checkpoint=glm_ckpt)
    glm_resumed = fit_glm(data, cfg, seed=3, pm=pm_resumed, progress=False,
                          checkpoint=EpochCheckpoint(glm_ckpt.path, "key-glm", resume=True))
    np.testing.assert_array_equal(glm_resumed.node_embeddings, glm_full.node_embeddings)
    assert glm_resumed.history.val_mrr == glm_full.history.val_mrr
    assert glm_resumed.history.best_epoch == glm_full.history.best_epoch


def test_a_checkpoint_of_other_settings_is_ignored(tmp_path: Path) -> None:
    data = make_planted_data(n_users=40, n_items=15, seed=4)
    cfg = small_cfg(**{"pm.epochs": 2})
    fit_pm(data, cfg, seed=1, progress=False, checkpoint=EpochCheckpoint(tmp_path / "pm.pt", "settings-a"))
    fresh = fit_pm(data, cfg, seed=1, progress=False)
    other = fit_pm(data, cfg, seed=1, progress=False,
                   checkpoint=EpochCheckpoint(tmp_path / "pm.pt", "settings-b", resume=True))
    np.testing.assert_array_equal(other.node_embeddings, fresh.node_embeddings)  # started from epoch 0
    assert len(other.history.train_loss) == 2
