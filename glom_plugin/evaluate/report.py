"""Evaluation outputs: results JSON, a Table-2-shaped Markdown table and plots (the MLflow run that logs
them is ``glom_plugin/platform/mlflow_evaluation.py``).

- ``results.json``: per run, per task, per model (and the sweeps' points), plus the summary.
- ``table.md``: rows = models; Precision, Recall, PR-AUC, ROC-AUC as mean ± std over runs (paper
  Table 2, best per column marked *), then P@k, R@k, seconds (fit + score) and peak MB.
- ``pr_curves.png``: precision–recall curves per model, candidates pooled over the tasks of run 0.
- ``embedding_size.png`` (Fig. 5) and ``seed_size.png`` (Fig. 6) when the sweeps were run.

Plots use matplotlib's Agg canvas directly (no pyplot state, no display).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from glom_plugin.evaluate.metrics import METRIC_NAMES
from glom_plugin.evaluate.results import EvaluationResult, SweepResult
from glom_plugin.storage import atomic_path, write_json, write_text

# Column header -> summary key, in the order of the paper's Table 2 followed by ours.
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Precision", "precision"),
    ("Recall", "recall"),
    ("PR-AUC", "pr_auc"),
    ("ROC-AUC", "roc_auc"),
    ("P@k", "precision_at_k"),
    ("R@k", "recall_at_k"),
)
METRIC_LABELS = {key: header for header, key in TABLE_COLUMNS}
# Every learned model is compared with this reference row when the table has it (models/references.py).
REFERENCE_MODEL = "cosine-centroid"
REFERENCE_ROWS = frozenset({"cosine-centroid", "popularity", "random"})
PROTOCOL_TEXT = {
    "sampled": "`evaluate.candidates=sampled` (the paper's, §4.1): each task's hidden purchasers among "
    "10x as many sampled non-purchasers.",
    "all": "`evaluate.candidates=all` (realistic): each task's hidden purchasers among every active user "
    "outside the seed list; metrics over that whole ranking.",
}
EMBEDDING_SWEEP_METRICS = ("recall", "recall_at_k", "pr_auc")
SEED_SWEEP_METRICS = ("precision", "recall", "precision_at_k", "pr_auc", "roc_auc")


def write_report(result: EvaluationResult, out_dir: str | Path) -> dict[str, Path]:
    """Write JSON, table and plots (sweep plots when ``result.embedding_sweep`` / ``seed_sweep`` are set).

    Returns ``{"results_json", "table", "pr_curves"[, "embedding_size"][, "seed_size"]}`` -> path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    payload: dict[str, Any] = result.to_json()
    payload["config"] = result.config
    for key, sweep in (("embedding_sweep", result.embedding_sweep), ("seed_sweep", result.seed_sweep)):
        payload[key] = sweep.to_json() if sweep is not None else None
    paths["results_json"] = write_json(_json_safe(payload), out / "results.json")
    paths["table"] = write_text(markdown_table(result), out / "table.md")
    paths["pr_curves"] = plot_pr_curves(result, out / "pr_curves.png")
    if result.embedding_sweep is not None:
        paths["embedding_size"] = plot_sweep(
            result.embedding_sweep,
            EMBEDDING_SWEEP_METRICS,
            out / "embedding_size.png",
            xlabel="embedding size (pm.dim)",
            title="Fig. 5: metrics vs embedding size",
        )
    if result.seed_sweep is not None:
        paths["seed_size"] = plot_sweep(
            result.seed_sweep,
            SEED_SWEEP_METRICS,
            out / "seed_size.png",
            xlabel="seeds per campaign (requested)",
            title="Fig. 6: metrics vs seed-list size",
        )
    return paths


def _json_safe(value: Any) -> Any:
    """NaN/inf -> None so results.json is strict JSON (readable by any parser)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def _fmt(cell: dict[str, float], digits: int = 3) -> str:
    mean, std = cell["mean"], cell["std"]
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(result: EvaluationResult) -> str:
    """Paper Table 2 shape: one row per model, mean ± std over runs; failed models show their error."""
    summary = result.summary()
    ok_models = [m for m in result.model_names if summary[m]["runs_ok"] > 0]
    best = {
        key: max(
            (summary[m][key]["mean"] for m in ok_models if math.isfinite(summary[m][key]["mean"])),
            default=None,
        )
        for _, key in TABLE_COLUMNS
    }
    n_runs = len(result.runs)
    n_campaigns = [len(r.campaigns) for r in result.runs]
    reference = summary.get(REFERENCE_MODEL) if REFERENCE_MODEL in ok_models else None
    header = ["Model", *(h for h, _ in TABLE_COLUMNS)]
    if reference is not None:
        header.append(f"PR-AUC / {REFERENCE_MODEL}")
    header += ["coverage", "seconds", "peak MB", "runs ok"]
    lines = [
        f"# Lookalike evaluation{' — ' + result.label if result.label else ''}",
        "",
        f"Protocol: {PROTOCOL_TEXT.get(result.protocol, result.protocol)}",
        "",
        f"{len(result.tasks)} tasks (items), {n_runs} run(s), campaigns per run: {n_campaigns}; "
        f"mean seeds per campaign {result.mean_seeds():.1f}. Values: mean ± std over runs of the per-run "
        "mean over tasks (GLoM §4.1, §4.4).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    no_threshold = calibrated = flagged = False
    for model in result.model_names:
        row = summary[model]
        failures = row["failures"]
        if row["runs_ok"] == 0:
            first = failures[0] if failures else {"stage": "?", "error": "no run"}
            message = _escape(f"failed ({first['stage']}): {first['error']}")[:300]
            lines.append(f"| {model} | {message} |" + " |" * (len(header) - 2))
            continue
        cells = []
        for _, key in TABLE_COLUMNS:
            text = _fmt(row[key])
            if text == "n/a" and key in ("precision", "recall"):
                text, no_threshold = "n/a†", True
            elif best[key] is not None and math.isclose(row[key]["mean"], best[key]):
                text += " *"
            if key in ("precision", "recall") and row.get("threshold_source") == "seed-calibrated":
                text, calibrated = text + " §", True
            cells.append(text)
        below_reference = False
        if reference is not None:
            ratio = row["pr_auc"]["mean"] / reference["pr_auc"]["mean"]
            below_reference = model not in REFERENCE_ROWS and ratio <= 1.0
            cells.append(f"{ratio:.2f}" + (" ▽" if below_reference else ""))
            flagged = flagged or below_reference
        cells.append(f"{row['coverage']:.3f}")
        cells.append(_fmt(row["seconds"], 2))
        cells.append(f"{row['peak_rss_mb']['mean']:.1f}")
        ok_text = f"{row['runs_ok']}/{row['runs']}"
        if failures:
            ok_text += " ‡"
        cells.append(ok_text)
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "\\* best mean in the column. k = number of positives of the task, so P@k = R@k (R-precision).",
    ]
    lines.append(
        "coverage = share of each task's hidden audience the model scored, mean over campaigns. Under the "
        "realistic protocol the audience includes users outside the trained graph (dropped by the "
        "minimum-interactions filter): models that fold them in from their items score them, the others rank "
        "them last; purchasers left without any training interaction count against every model."
    )
    if flagged:
        lines.append(
            f"▽ a learned model that does not beat the `{REFERENCE_MODEL}` reference (cosine of raw item bags "
            "to the seeds' mean) on PR-AUC: it has learned nothing the co-purchase matrix did not already say."
        )
    if calibrated:
        recall = result.config.get("evaluate", {}).get("seed_recall")
        lines.append(
            "§ the model only ranks: Precision / Recall are at a threshold T calibrated per campaign on its "
            f"held-out seeds, so that a share evaluate.seed_recall = {recall} of them clears T "
            "(glom_plugin/expand/calibration.py). Models with a cut-off of their own (LR, MetaHeac: 0.5) use it."
        )
    if no_threshold:
        lines.append(
            "† the model has no decision threshold (it only ranks, and `evaluate.seed_recall` is unset): "
            "precision/recall at threshold are undefined — read P@k / R@k."
        )
    for model in result.model_names:
        row = summary[model]
        if row["failures"] and row["runs_ok"] > 0:
            lines.append(f"‡ {model} failed in some runs (averaged over the others):")
            lines += [
                f"  - run {f['run']} ({f['stage']}): {_escape(str(f['error']))[:300]}"
                for f in row["failures"]
            ]
    lines += [
        "",
        "seconds = fit + scoring of all campaigns of a run (mean ± std over runs). "
        f"peak MB = {result.memory_method}, in MiB.",
        "",
    ]
    return "\n".join(lines)


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, target: Path) -> Path:
    with atomic_path(target) as tmp:
        figure.savefig(tmp, format="png", bbox_inches="tight")
    return target


def plot_pr_curves(result: EvaluationResult, target: str | Path) -> Path:
    """Precision–recall curve per model over run 0's candidates pooled across tasks."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    figure = _new_figure(6.5, 5)
    axes = figure.add_subplot(1, 1, 1)
    base_rate = None
    for number, model in enumerate(m for m in result.model_names if m in result.pooled_run0):
        labels, scores = result.pooled_run0[model]
        precision, recall, _ = precision_recall_curve(labels, scores)
        ap = average_precision_score(labels, scores)
        # the colour cycle has ten entries: past them the line style tells models apart
        style = ("-", "--", "-.", ":")[(number // 10) % 4]
        axes.plot(recall, precision, style, label=f"{model} (AP {ap:.3f})", drawstyle="steps-post")
        base_rate = float(np.mean(labels))
    if base_rate is not None:
        axes.axhline(base_rate, color="grey", linestyle=":", label=f"positive rate {base_rate:.3f}")
    else:
        axes.text(0.5, 0.5, "no model finished run 0", ha="center", va="center", transform=axes.transAxes)
    axes.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1),
        ylim=(0, 1.02),
        title=f"Precision–recall, run 0, candidates pooled over tasks ({result.protocol} protocol)",
    )
    axes.legend(loc="upper right", fontsize="small")
    return _save(figure, Path(target))


def plot_sweep(
    sweep: SweepResult, metrics: tuple[str, ...], target: str | Path, xlabel: str, title: str
) -> Path:
    """One panel per metric; one line (mean ± std over runs) per model along the swept values."""
    figure = _new_figure(4.2 * len(metrics), 3.8)
    has_legend = False
    for index, metric in enumerate(metrics):
        axes = figure.add_subplot(1, len(metrics), index + 1)
        plotted = False
        for model, (means, stds) in sweep.series(metric).items():
            mean = np.array(means, dtype=float)
            if np.isnan(mean).all():
                continue
            axes.errorbar(
                sweep.values,
                mean,
                yerr=np.nan_to_num(np.array(stds, dtype=float)),
                marker="o",
                capsize=3,
                label=model,
            )
            plotted = True
        if not plotted:
            axes.text(
                0.5,
                0.5,
                "undefined for these models\n(no decision threshold)",
                ha="center",
                va="center",
                transform=axes.transAxes,
                fontsize="small",
            )
        axes.set(xlabel=xlabel, title=METRIC_LABELS.get(metric, metric))
        axes.set_xticks(sweep.values)
        if plotted and not has_legend:  # one legend, on the first panel with lines
            axes.legend(fontsize="x-small")
            has_legend = True
    figure.suptitle(title)
    return _save(figure, Path(target))


# ---------------------------------------------------------------- MLflow

_BAD_NAME_CHARS = re.compile(r"[^\w.\- /]")


def metric_key(*parts: str) -> str:
    return _BAD_NAME_CHARS.sub("_", ".".join(parts))[:250]


def summary_metrics(result: EvaluationResult) -> dict[str, float]:
    """``{"pr_auc.glom-attn1": mean, "pr_auc_std.glom-attn1": std, "seconds.glom-attn1": ..., "coverage.glom-attn1": ...}``;
    NaNs left out."""
    out: dict[str, float] = {}
    for model, row in result.summary().items():
        for key in (*METRIC_NAMES, "seconds", "fit_seconds", "score_seconds", "peak_rss_mb"):
            for stat, suffix in (("mean", ""), ("std", "_std")):
                value = row[key][stat]
                if math.isfinite(value):
                    out[metric_key(f"{key}{suffix}", model)] = float(value)
        out[metric_key("runs_ok", model)] = float(row["runs_ok"])
        if math.isfinite(row["coverage"]):  # share of the campaigns' audience the model scored
            out[metric_key("coverage", model)] = float(row["coverage"])
    return out
