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


def _stage(layout: RunLayout, stage: str, cfg: GlomConfig, upstream: tuple[str, ...], fn: Callable[[], Any],
           rows: Callable[[Any], dict[str, int]] | None = None) -> Any:
    """Run one stage between its ``running`` and ``complete`` manifests (``run_integrity``): a crash leaves
    it marked unfinished, so no later stage mistakes its partial or earlier outputs for this run's."""
    from glom_plugin.run_integrity import begin_stage, fail_stage, finish_stage

    begin_stage(layout, stage)
    try:
        result = fn()
    except BaseException as err:
        fail_stage(layout, stage, err)
        raise
    finish_stage(layout, stage, cfg, upstream, rows(result) if rows else None)
    return result


def _require(layout: RunLayout, reader: str, *stages: str) -> None:
    from glom_plugin.run_integrity import require

    for stage in stages:
        require(layout, stage, reader)


def ingest(cfg: GlomConfig) -> Any:
    from glom_plugin.stages.backends import stage_backend

    run_ingest = stage_backend("ingest", cfg.backend)  # local or spark (stages/backends.py)

    layout = layout_for(cfg)
    return _stage(layout, "ingest", cfg, (), lambda: run_ingest(cfg, layout),
                  rows=lambda r: {"read": r.rows_read, "rejected": r.rows_rejected, "duplicates": r.duplicates,
                                  "interactions": r.n_interactions, "users": r.n_users, "items": r.n_items})


def validate(cfg: GlomConfig) -> Any:
    from glom_plugin.stages.backends import stage_backend

    run_validate = stage_backend("validate", cfg.backend)  # local or spark (stages/backends.py)

    layout = layout_for(cfg)
    _require(layout, "glom validate", "ingest")
    return run_validate(cfg, layout)


def graph(cfg: GlomConfig) -> Any:
    from glom_plugin.stages.backends import stage_backend

    run_graph_stage = stage_backend("graph", cfg.backend)  # local or spark (stages/backends.py)

    layout = layout_for(cfg)
    _require(layout, "glom graph", "ingest")
    return _stage(layout, "graph", cfg, ("ingest",), lambda: run_graph_stage(cfg, layout),
                  rows=lambda r: {f"edges.{k}": v for k, v in r.get("edges", {}).items()})


def profiles(cfg: GlomConfig, dry_run: bool = False) -> Any:
    from glom_plugin.text.profiles import run_profiles_stage

    layout = layout_for(cfg)
    _require(layout, "glom profiles", "ingest")
    if dry_run:
        return run_profiles_stage(cfg, layout, dry_run=True)
    return _stage(layout, "profiles", cfg, ("ingest",), lambda: run_profiles_stage(cfg, layout))


def _model_inputs(layout: RunLayout, reader: str) -> tuple[str, ...]:
    """PM and GLM read the graph, and the profile embeddings when the profiles stage ran."""
    from glom_plugin.run_integrity import read_manifest

    stages = ("graph", "profiles") if read_manifest(layout, "profiles") is not None else ("graph",)
    _require(layout, reader, *stages)
    return stages


def features(cfg: GlomConfig, online: bool = True) -> dict[str, Any]:
    """Feast: write the feature tables of this run, ``feast apply`` the repo over them, materialize online.

    Run after ``profiles`` (training can then read profile embeddings through Feast with
    ``features.source=feast``) and again after ``train`` so the GLoM user embeddings reach the online store.
    """
    from glom_plugin.platform.feast_features import (
        export_feature_tables,
        feast_apply,
        materialize,
        resolve_repo_path,
    )

    layout = layout_for(cfg)
    repo = resolve_repo_path(cfg)
    tables = export_feature_tables(layout, cfg)
    applied = feast_apply(repo, features_dir=layout.features_dir)
    if online:
        materialize(repo)
    return {"feature_repo": str(repo), "tables": {k: str(v) for k, v in tables.items()}, "applied": applied,
            "materialized": online}


def pretrain(cfg: GlomConfig, resume: bool = False) -> Any:
    from glom_plugin.run_integrity import clean_orphans, finish_stage
    from glom_plugin.stages.train import run_pretrain_stage

    layout = layout_for(cfg)
    inputs = _model_inputs(layout, "glom pretrain")
    clean_orphans(layout.root)
    artifact = run_pretrain_stage(cfg, layout, resume=resume)
    finish_stage(layout, "pm", cfg, inputs, {"users": artifact.n_users})
    return artifact


def train(cfg: GlomConfig, register: bool = True, resume: bool = False, model_name: str | None = None) -> Any:
    """Any registry model (``model_name``, default ``train.model``) on the run's graph, saved to
    ``models/<name>``, logged to MLflow and registered as a new version of the one registered model.

    The version is not made champion here: the model was trained on all data, so its quality is only known
    from the leak-free protocol — ``evaluate`` gives each evaluated model's version its PR-AUC and moves
    the champion to the best, whatever its family.
    """
    from glom_plugin.run_integrity import clean_orphans, finish_stage, outputs_match
    from glom_plugin.stages.train import run_model_stage

    name = model_name or cfg.train.model
    layout = layout_for(cfg)
    inputs = _model_inputs(layout, "glom train")
    clean_orphans(layout.root)
    trained = run_model_stage(cfg, layout, name, resume=resume)
    if "pm" in trained.staged and not outputs_match(layout, "pm"):  # PM was (re)trained on the way
        finish_stage(layout, "pm", cfg, inputs, {"users": trained.model.n_users})
    if "glm" in trained.staged:
        upstream = (*inputs, "pm") if "pm" in trained.staged else inputs
        finish_stage(layout, "glm", cfg, upstream, {"users": trained.model.n_users})
    if register:
        from glom_plugin.platform.mlflow_registry import MODEL_FAMILY_TAG, MODEL_KIND_TAG, log_model_run

        reports = (layout.graph_report, layout.ingest_report, layout.profiles_report)
        artifacts = [path for path in reports if path.exists()]
        registered = log_model_run(
            cfg, trained.directory, name, metrics=training_metrics(trained.metrics), artifacts=artifacts,
            run_name=f"train {name}", promote=False,
            tags={**profile_tags(layout), MODEL_FAMILY_TAG: type(trained.model).__name__,
                  MODEL_KIND_TAG: trained.model.kind},
        )
        record_registered(layout, name, {"name": registered.name, "version": registered.version, "model_name": name,
                                         "model_uri": registered.model_uri, "run_id": registered.run_id})
        print(f"registered {registered.model_uri} ({name}); champion decided by `glom evaluate`")
    return trained


REGISTERED_FILE = "registered.json"
TRAINING_SCALARS = ("best_epoch", "best_val_mrr", "initial_val_mrr")


def training_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """``pm.best_val_mrr``, ``glm.best_epoch``, ``glm.initial_val_mrr``, ...: how each training stage ended,
    as MLflow metrics, so a registered version shows whether GLM's training was kept (best_epoch >= 0) and
    what it gained over its starting point."""
    out: dict[str, float] = {}
    for stage in ("pm", "glm"):
        history = metrics.get(stage)
        if not isinstance(history, dict):
            continue
        for key in TRAINING_SCALARS:
            value = history.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[f"{stage}.{key}"] = float(value)
    return out


def profile_tags(layout: RunLayout) -> dict[str, str]:
    """Which profile builder, prompt templates and LLM produced the profiles the model was trained on
    (``profiles.*`` keys of the profiles report), so a registered version says where its inputs came from."""
    if not layout.profiles_report.exists():
        return {}
    report = json.loads(layout.profiles_report.read_text())
    return {key: str(value) for key, value in report.items() if key.startswith("profiles.") or key == "embedding.model"}


def registered_versions(layout: RunLayout) -> dict[str, dict[str, Any]]:
    """model name -> the registry version ``train`` last registered for it from this run."""
    path = layout.models_dir / REGISTERED_FILE
    if not path.exists():
        return {}
    recorded = json.loads(path.read_text())
    if "models" not in recorded:  # a run registered before any model could be trained: one GLoM entry
        return {recorded["model_name"]: recorded}
    return dict(recorded["models"])


def record_registered(layout: RunLayout, model_name: str, entry: dict[str, Any]) -> None:
    versions = registered_versions(layout)
    versions[model_name] = entry
    write_json({"models": versions, "latest": model_name}, layout.models_dir / REGISTERED_FILE)


def promote_registered(cfg: GlomConfig, layout: RunLayout, summary: dict[str, dict[str, Any]]) -> str | None:
    """Champion by evidence: every evaluated model with a version registered from this run gets this
    evaluation's PR-AUC (and protocol) as tags; ``@champion`` moves to the best of them when it beats the
    incumbent (``mlflow_registry.promote_best``), whatever its family."""
    measured = {
        name: (entry, float(summary[name]["pr_auc"]["mean"]))
        for name, entry in registered_versions(layout).items()
        if summary.get(name, {}).get("runs_ok")
    }
    if not measured:
        return None
    from mlflow import MlflowClient

    from glom_plugin.platform.mlflow_registry import configure_tracking, promote_best

    configure_tracking(cfg)
    registry_name = next(iter(measured.values()))[0]["name"]
    outcome = promote_best(
        MlflowClient(cfg.tracking_uri()), registry_name,
        {entry["version"]: pr_auc for entry, pr_auc in measured.values()},
        protocol=cfg.evaluate.candidates, alias=cfg.tracking.champion_alias,
    )
    by_version = {entry["version"]: name for name, (entry, _) in measured.items()}
    ranked = ", ".join(f"{name} v{entry['version']} {pr_auc:.4f}" for name, (entry, pr_auc) in
                       sorted(measured.items(), key=lambda kv: -kv[1][1]))
    holder = by_version.get(outcome.version, f"v{outcome.version}")
    verdict = "moved to" if outcome.moved else "stays with"
    message = (f"@{cfg.tracking.champion_alias} {verdict} {holder} (v{outcome.version}, PR-AUC {outcome.pr_auc:.4f}, "
               f"protocol {cfg.evaluate.candidates}); measured: {ranked}")
    print(message)
    return message


def evaluate(
    cfg: GlomConfig,
    model_names: list[str],
    runs: int | None = None,
    sweeps: bool = False,
    sweep_models: list[str] | None = None,
    sweep_runs: int | None = None,
    protocols: list[str] | None = None,
) -> dict[str, Path]:
    """Run the protocol(s) for the named models, write the report(s) and log them to MLflow.

    ``protocols`` (``evaluate.candidates`` values, default: the configured one) share one fit per model
    and run. The configured protocol's report goes to ``evaluate/`` and decides the champion; any other
    to ``evaluate/candidates-<name>/`` (its paths are returned with that prefix).
    """
    from glom_plugin.evaluate.report import write_report
    from glom_plugin.evaluate.runner import evaluate_protocols, sweep_embedding_size, sweep_seed_size
    from glom_plugin.platform.mlflow_evaluation import log_to_mlflow

    layout = layout_for(cfg)
    main = cfg.evaluate.candidates
    modes = [main] + [m for m in (protocols or []) if m != main]
    results = evaluate_protocols(cfg, layout, model_names, modes, runs=runs)
    result = results[main]
    if sweeps:
        # Fig. 5 / Fig. 6 are drawn for GLoM (the default glom-seedset first, then the paper's Attn1); without a
        # GLoM variant, for the first non-random model.
        glom = sorted(
            (m for m in model_names if m.startswith("glom")), key=lambda m: (m != "glom-seedset", m != "glom-attn1")
        )
        chosen = sweep_models or glom[:1] or [m for m in model_names if m != "random"][:1]
        if chosen:
            result.embedding_sweep = sweep_embedding_size(cfg, layout, chosen, runs=sweep_runs or runs)
            result.seed_sweep = sweep_seed_size(cfg, layout, chosen, runs=sweep_runs or runs)
    paths = write_report(result, layout.evaluate_dir)
    log_to_mlflow(result, cfg, paths)
    for mode in modes[1:]:
        other = write_report(results[mode], layout.evaluate_dir / f"candidates-{mode}")
        log_to_mlflow(results[mode], cfg.with_overrides(**{"evaluate.candidates": mode}), other)
        paths.update({f"{mode}:{name}": path for name, path in other.items()})
    promote_registered(cfg, layout, result.summary())
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


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))
