"""MLproject and bentofile.yaml describe commands and a service that really exist."""

from __future__ import annotations

import importlib
import shlex
from pathlib import Path

import pytest
import yaml

from glom_plugin.config import load_config

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("entry_point", ["prepare", "pretrain", "train", "evaluate", "main"])
def test_mlproject_entry_points_parse_as_glom_commands(entry_point, tmp_path):
    import typer.main
    from mlflow.projects._project_spec import load_project

    from glom_plugin.cli import app

    command = load_project(str(REPO_ROOT)).get_entry_point(entry_point).compute_command({}, str(tmp_path))
    argv = shlex.split(command)
    assert argv[0] == "glom"
    cli = typer.main.get_command(app)
    assert argv[1] in cli.commands, f"MLproject calls `glom {argv[1]}`, which the CLI does not have"
    params = cli.commands[argv[1]].make_context(argv[1], argv[2:]).params  # unknown options raise here
    cfg = load_config(params.get("config"), list(params.get("set_") or []), run_dir=params["run_dir"])
    assert cfg.run_dir == params["run_dir"]


def test_bentofile_names_the_service_and_builds_offline():
    spec = yaml.safe_load((REPO_ROOT / "bentofile.yaml").read_text())
    assert spec["python"]["lock_packages"] is False
    module_name, _, class_name = spec["service"].partition(":")
    service = getattr(importlib.import_module(module_name), class_name)
    assert {"expand", "expand_batch", "health", "model_info"} <= set(service.apis)
    assert service.apis["expand_batch"].batchable


def test_profile_tags_name_the_builder_templates_and_embedding_model(tmp_path):
    from glom_plugin.layout import RunLayout
    from glom_plugin.pipeline import profile_tags
    from glom_plugin.storage import write_json

    layout = RunLayout.at(tmp_path)
    assert profile_tags(layout) == {}  # no profiles stage: nothing to say
    write_json(
        {"profiles.builder": "llm", "profiles.item_template_id": "item@v3", "embedding.model": "m@1", "n_item_profiles": 5},
        layout.profiles_report,
    )
    assert profile_tags(layout) == {"profiles.builder": "llm", "profiles.item_template_id": "item@v3", "embedding.model": "m@1"}


def test_training_metrics_report_how_each_stage_ended():
    from glom_plugin.pipeline import training_metrics

    metrics = {
        "pm": {"best_epoch": 7, "best_val_mrr": 0.53, "initial_val_mrr": None, "val_mrr": [0.4, 0.53]},
        "glm": {"best_epoch": -1, "best_val_mrr": 0.41, "initial_val_mrr": 0.41, "stopped_early": True},
        "relations": {"interacted": 10},
    }
    assert training_metrics(metrics) == {
        "pm.best_epoch": 7.0,
        "pm.best_val_mrr": 0.53,
        "glm.best_epoch": -1.0,
        "glm.best_val_mrr": 0.41,
        "glm.initial_val_mrr": 0.41,
    }
