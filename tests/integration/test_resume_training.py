"""Kill -9 a real `glom train` in the middle of GLM, `--resume` it: the model equals the one of an
uninterrupted run (issue 14, item 9). Real processes, the real generated dataset, real stages."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from glom_plugin.config import GlomConfig
from glom_plugin.layout import RunLayout

pytestmark = pytest.mark.integration

OVERRIDES = {"data.synthetic_reviews": 2500, "pm.dim": 16, "pm.epochs": 4, "glm.epochs": 40, "glm.patience": 100,
             "glm.batch_size": 256, "device": "cpu", "seed": 5}
TRAIN = """
import sys
from glom_plugin.config import GlomConfig
from glom_plugin.layout import RunLayout
from glom_plugin.stages.train import run_train_stage
cfg = GlomConfig(run_dir=sys.argv[1]).with_overrides(**eval(sys.argv[2]))
run_train_stage(cfg, RunLayout.at(sys.argv[1]), resume=sys.argv[3] == "resume")
"""


def train_process(run_dir: Path, resume: bool) -> subprocess.Popen:
    env = {**os.environ, "GLOM_ID_SALT": "resume-test", "OMP_NUM_THREADS": "1", "DGLBACKEND": "pytorch"}
    return subprocess.Popen([sys.executable, "-c", TRAIN, str(run_dir), repr(OVERRIDES), "resume" if resume else "fresh"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_killed_training_resumes_to_the_uninterrupted_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from glom_plugin.models.artifact import TrainedModel
    from glom_plugin.stages.graph import run_graph_stage
    from glom_plugin.stages.ingest import run_ingest

    monkeypatch.setenv("GLOM_ID_SALT", "resume-test")
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    cfg = GlomConfig(run_dir=str(killed)).with_overrides(**OVERRIDES)
    run_ingest(cfg, RunLayout.at(killed), echo=lambda _: None)
    run_graph_stage(cfg, RunLayout.at(killed))
    shutil.copytree(killed, whole)

    proc = train_process(killed, resume=False)
    checkpoint = RunLayout.at(killed).models_dir / "checkpoints" / "glm.pt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if checkpoint.is_file() and torch.load(checkpoint, weights_only=False)["epoch"] >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"training ended before it could be killed: {proc.stderr.read()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "models" / "glm" / "model.json").exists()  # the kill came before GLM finished

    resumed = train_process(killed, resume=True)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-2000:]
    assert "resuming glm after epoch" in err
    uninterrupted = train_process(whole, resume=False)
    _, err = uninterrupted.communicate(timeout=600)
    assert uninterrupted.returncode == 0, err[-2000:]

    a, b = TrainedModel.load(killed / "models" / "glm"), TrainedModel.load(whole / "models" / "glm")
    np.testing.assert_array_equal(a.user_ids, b.user_ids)
    np.testing.assert_array_equal(a.user_embeddings, b.user_embeddings)
    assert a.metrics["glm"]["val_mrr"] == b.metrics["glm"]["val_mrr"]
    assert not checkpoint.exists()  # discarded once the model is saved
