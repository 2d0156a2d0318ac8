"""What an evaluation produces: per run, per model, per task — and the paper-style summary over runs.

Kept apart from the runner so the report, MLflow logging and the CLI read one plain structure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from glom_plugin.evaluate.metrics import METRIC_NAMES, mean_over_tasks, mean_std

# Resource columns summarised next to the metrics.
RESOURCE_NAMES: tuple[str, ...] = ("seconds", "fit_seconds", "score_seconds", "peak_rss_mb")


@dataclass
class TaskResult:
    """One model on one campaign of one run."""

    item_id: str
    counts: dict[str, int]
    metrics: dict[str, float]


@dataclass
class ModelRun:
    """One model in one run: fitted once on the run's training data, then scored on every campaign."""

    model: str
    run: int
    status: str = "ok"  # "ok" or "failed"
    error: str | None = None
    failed_stage: str | None = None  # "create", "fit" or "score <campaign>"
    traceback: str | None = None
    # The model's fixed cut-off, or the mean over campaigns of the seed-calibrated T; None = rank only.
    decision_threshold: float | None = None
    threshold_source: str | None = None  # "model", "seed-calibrated" or None
    fit_seconds: float = 0.0
    score_seconds: float = 0.0
    peak_rss_mb: float = math.nan
    peak_gpu_mb: float | None = None
    tasks: list[TaskResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def seconds(self) -> float:
        return self.fit_seconds + self.score_seconds

    def mean_metrics(self) -> dict[str, float]:
        return mean_over_tasks([t.metrics for t in self.tasks])

    def coverage_shares(self) -> list[float]:
        """Per campaign, the share of the task's hidden audience this model scored (``n_positives_scored``
        of ``n_audience``: users outside the graph count, and so do those left without a training row)."""
        return [
            t.counts["n_positives_scored"] / t.counts["n_audience"]
            for t in self.tasks
            if "n_positives_scored" in t.counts and t.counts.get("n_audience", 0) > 0
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "run": self.run,
            "status": self.status,
            "error": self.error,
            "failed_stage": self.failed_stage,
            "traceback": self.traceback,
            "decision_threshold": self.decision_threshold,
            "threshold_source": self.threshold_source,
            "fit_seconds": self.fit_seconds,
            "score_seconds": self.score_seconds,
            "seconds": self.seconds,
            "peak_rss_mb": self.peak_rss_mb,
            "peak_gpu_mb": self.peak_gpu_mb,
            "mean": self.mean_metrics() if self.ok else None,
            "tasks": [{"item_id": t.item_id, **t.counts, **t.metrics} for t in self.tasks],
        }


@dataclass
class RunRecord:
    """One run: its seed, the training graph's size, the campaigns and every model's result."""

    run: int
    seed: int
    data: dict[str, int]
    campaigns: list[dict[str, Any]]
    skipped_tasks: list[dict[str, str]]
    models: dict[str, ModelRun]

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "seed": self.seed,
            "data": self.data,
            "campaigns": self.campaigns,
            "skipped_tasks": self.skipped_tasks,
            "models": {name: m.to_json() for name, m in self.models.items()},
        }


@dataclass
class EvaluationResult:
    """The protocol's result for a list of models. ``summary()`` is the paper's Table 2 row per model."""

    model_names: list[str]
    config: dict[str, Any]
    tasks: list[dict[str, Any]]
    runs: list[RunRecord]
    memory_method: str
    # label of a sweep point ("pm.dim=32", "seed_size=10"); empty for the main evaluation
    label: str = ""
    seed_size: int | None = None
    # run 0's candidates' labels and scores per model, pooled over tasks, for the PR-curve plot (not in JSON)
    pooled_run0: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    embedding_sweep: SweepResult | None = None
    seed_sweep: SweepResult | None = None

    def model_runs(self, model: str) -> list[ModelRun]:
        return [record.models[model] for record in self.runs if model in record.models]

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per model: mean ± std over successful runs of the per-run task means, resources, failures."""
        out: dict[str, dict[str, Any]] = {}
        for model in self.model_names:
            runs = self.model_runs(model)
            ok = [m for m in runs if m.ok]
            row: dict[str, Any] = {"runs_ok": len(ok), "runs": len(runs)}
            means = [m.mean_metrics() for m in ok]
            for name in METRIC_NAMES:
                mean, std = mean_std(r[name] for r in means)
                row[name] = {"mean": mean, "std": std}
            for name in RESOURCE_NAMES:
                mean, std = mean_std(getattr(m, name) for m in ok)
                row[name] = {"mean": mean, "std": std}
            shares = [share for m in ok for share in m.coverage_shares()]
            row["coverage"] = float(np.mean(shares)) if shares else self.coverage({m.run for m in ok})
            row["has_threshold"] = any(m.decision_threshold is not None for m in ok)
            row["threshold_source"] = next((m.threshold_source for m in ok if m.threshold_source), None)
            row["failures"] = [
                {"run": m.run, "stage": m.failed_stage, "error": m.error} for m in runs if not m.ok
            ]
            out[model] = row
        return out

    def coverage(self, runs: set[int] | None = None) -> float:
        """Share of the hidden audience that is among the candidates, mean over campaigns: held-out
        purchasers left with a training edge over all held-out purchasers of the task. A model's own
        coverage (``summary``) is the share it scored, which is this for a model that scores every candidate."""
        shares = [
            c["n_positives"] / (c["n_positives"] + c.get("positives_without_training_edges", 0))
            for record in self.runs
            if runs is None or record.run in runs
            for c in record.campaigns
            if c["n_positives"] + c.get("positives_without_training_edges", 0) > 0
        ]
        return float(np.mean(shares)) if shares else math.nan

    @property
    def protocol(self) -> str:
        """``evaluate.candidates`` of the run: "sampled" (the paper's) or "all" (the realistic one)."""
        return str(self.config.get("evaluate", {}).get("candidates", "sampled"))

    def mean_seeds(self) -> float:
        counts = [c["n_seeds"] for record in self.runs for c in record.campaigns]
        return float(np.mean(counts)) if counts else math.nan

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "protocol": self.protocol,
            "seed_size": self.seed_size,
            "mean_seeds_per_campaign": self.mean_seeds(),
            "model_names": self.model_names,
            "memory_method": self.memory_method,
            "tasks": self.tasks,
            "summary": self.summary(),
            "runs": [record.to_json() for record in self.runs],
        }


@dataclass
class SweepResult:
    """One evaluation per value of a swept setting (Fig. 5: ``pm.dim``; Fig. 6: seeds per campaign)."""

    parameter: str
    values: list[int]
    results: list[EvaluationResult]

    @property
    def model_names(self) -> list[str]:
        return self.results[0].model_names if self.results else []

    def series(self, metric: str) -> dict[str, tuple[list[float], list[float]]]:
        """model -> (means, stds) of ``metric`` along ``values``."""
        out: dict[str, tuple[list[float], list[float]]] = {}
        for model in self.model_names:
            rows = [r.summary()[model][metric] for r in self.results]
            out[model] = ([row["mean"] for row in rows], [row["std"] for row in rows])
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "parameter": self.parameter,
            "values": self.values,
            "points": [
                {
                    "value": v,
                    "mean_seeds_per_campaign": r.mean_seeds(),
                    "summary": r.summary(),
                    "runs": [rec.to_json() for rec in r.runs],
                }
                for v, r in zip(self.values, self.results, strict=True)
            ],
        }
