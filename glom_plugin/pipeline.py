"""The stages in order, as one-call functions the CLI and the MLflow entry points share.

Each function takes the resolved ``GlomConfig``, reads the previous stage's files from the run
directory and writes its own; heavy libraries are imported inside, so importing this module is cheap.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glom_plugin.config import GlomConfig
from glom_plugin.layout import RunLayout
from glom_plugin.storage import write_json


@dataclass
class StageLog:
    """Seconds per stage, printed at the end of a multi-stage command and saved to the run dir."""

    seconds: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, fn: Callable[[], Any], echo: Callable[[str], None] = print) -> Any:
        echo(f"==> {name}")
        start = time.perf_counter()
        result = fn()
        self.seconds[name] = round(time.perf_counter() - start, 2)
        echo(f"    {name} done in {self.seconds[name]:.1f}s")
        return result


def layout_for(cfg: GlomConfig) -> RunLayout:
    root = Path(cfg.run_dir)
    root.mkdir(parents=True, exist_ok=True)
    write_json(cfg.model_dump(), root / "config.resolved.json")
    return RunLayout.at(root)


def ingest(cfg: GlomConfig) -> Any:
    from glom_plugin.data.ingest import run_ingest

    return run_ingest(cfg, layout_for(cfg))


def validate(cfg: GlomConfig) -> Any:
    from glom_plugin.platform.gx_gate import run_validate

    return run_validate(cfg, layout_for(cfg))


def graph(cfg: GlomConfig) -> Any:
    from glom_plugin.graph.build import run_graph_stage

    return run_graph_stage(cfg, layout_for(cfg))


def profiles(cfg: GlomConfig, dry_run: bool = False) -> Any:
    from glom_plugin.text.profiles import run_profiles_stage

    return run_profiles_stage(cfg, layout_for(cfg), dry_run=dry_run)


def pretrain(cfg: GlomConfig) -> Any:
    from glom_plugin.models.glom import run_pretrain_stage

    return run_pretrain_stage(cfg, layout_for(cfg))


def train(cfg: GlomConfig) -> Any:
    from glom_plugin.models.glom import run_train_stage

    return run_train_stage(cfg, layout_for(cfg))


def evaluate(
    cfg: GlomConfig,
    model_names: list[str],
    runs: int | None = None,
    sweeps: bool = False,
    sweep_models: list[str] | None = None,
) -> dict[str, Path]:
    """Run the paper's protocol for the named models, write the report and log it to MLflow."""
    from glom_plugin.evaluate.report import log_to_mlflow, write_report
    from glom_plugin.evaluate.runner import run_evaluation, sweep_embedding_size, sweep_seed_size

    layout = layout_for(cfg)
    result = run_evaluation(cfg, layout, model_names, runs=runs)
    if sweeps:
        # Fig. 5 / Fig. 6 are drawn for GLoM (Attn1 first); without a GLoM variant, for the first non-random model.
        glom = sorted((m for m in model_names if m.startswith("glom")), key=lambda m: m != "glom-attn1")
        chosen = sweep_models or glom[:1] or [m for m in model_names if m != "random"][:1]
        if chosen:
            result.embedding_sweep = sweep_embedding_size(cfg, layout, chosen, runs=runs)
            result.seed_sweep = sweep_seed_size(cfg, layout, chosen, runs=runs)
    paths = write_report(result, layout.evaluate_dir)
    log_to_mlflow(result, cfg, paths)
    return paths


def prepare(cfg: GlomConfig, log: StageLog | None = None) -> StageLog:
    """ingest -> validate -> graph (the foundation issue's `glom prepare`)."""
    log = log or StageLog()
    log.run("ingest", lambda: ingest(cfg))
    log.run("validate", lambda: validate(cfg))
    log.run("graph", lambda: graph(cfg))
    return log


def save_stage_log(cfg: GlomConfig, log: StageLog) -> None:
    write_json({"seconds": log.seconds}, Path(cfg.run_dir) / "stage_seconds.json")


def summarize_table(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))
