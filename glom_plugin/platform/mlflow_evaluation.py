"""MLflow adapter for the evaluation: one run per protocol with the config, the summary metrics, the
sweep curves and the report files (the evaluation core writes the report; this logs it)."""

from __future__ import annotations

import time
from pathlib import Path

from glom_plugin.config import GlomConfig
from glom_plugin.evaluate.report import metric_key, summary_metrics
from glom_plugin.evaluate.results import EvaluationResult


def log_to_mlflow(result: EvaluationResult, cfg: GlomConfig, paths: dict[str, Path]) -> str:
    """One MLflow run: resolved config as params, summary metrics per model, sweep curves as stepped
    metrics (``sweep.pm.dim.recall_at_k.<model>`` at step = dim), failures as tags, files as artifacts.

    Tracking URI and experiment come from ``glom_plugin.platform.mlflow_registry`` (sqlite beside the run
    dir, artifacts beside the store); inside ``mlflow run`` the project's run is logged into. NaN metrics
    (no decision threshold) are left out. Returns the MLflow run id.
    """
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from glom_plugin.platform.mlflow_registry import _mlflow, _start_run, configure_tracking, flatten_config

    mlflow = _mlflow()
    tracking_uri = configure_tracking(cfg)
    client = MlflowClient(tracking_uri=tracking_uri)
    run_name = f"evaluate-{result.protocol}{'-' + result.label if result.label else ''}"
    with _start_run(mlflow, cfg, run_name) as run:
        run_id = run.info.run_id
        tags = {"glom.stage": "evaluate", "glom.protocol": result.protocol, "memory_method": result.memory_method}
        for model, row in result.summary().items():
            if row["failures"]:
                first = row["failures"][0]
                tags[metric_key("failed", model)] = (
                    f"{len(row['failures'])} run(s); {first['stage']}: {first['error']}"[:8000]
                )
        mlflow.set_tags(tags)
        params = flatten_config(cfg)
        params["evaluated_models"] = ",".join(result.model_names)[:6000]
        params["evaluated_runs"] = str(len(result.runs))
        param_list = [Param(k[:250], v) for k, v in params.items()]
        for start in range(0, len(param_list), 100):
            client.log_batch(run_id, params=param_list[start : start + 100])
        stamp = int(time.time() * 1000)
        metrics = [Metric(k, v, stamp, 0) for k, v in summary_metrics(result).items()]
        for sweep in (result.embedding_sweep, result.seed_sweep):
            if sweep is None:
                continue
            for value, point in zip(sweep.values, sweep.results, strict=True):
                for key, metric_value in summary_metrics(point).items():
                    metrics.append(
                        Metric(metric_key("sweep", sweep.parameter, key), metric_value, stamp, int(value))
                    )
        for start in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[start : start + 1000])
        for path in paths.values():
            mlflow.log_artifact(str(path), artifact_path="evaluate")
    return run_id
