"""Per-campaign metrics of the GLoM paper's Table 2 (§4.4), computed with scikit-learn.

The held-out purchasers of the task item are the positives; the sampled non-purchasers among the
candidates are the negatives. For each campaign we report

- ``precision`` / ``recall`` at the model's own decision threshold (a candidate is expanded when its
  score is >= ``model.decision_threshold``). A model without a threshold only ranks, so these two are
  NaN for it — the table says so instead of inventing a cut-off. When nothing is expanded, precision is
  0 (scikit-learn ``zero_division=0``).
- ``precision_at_k`` / ``recall_at_k`` with k = the number of positives, i.e. expand exactly as many
  users as the advertiser's true audience holds. With that k both equal TP / k (R-precision); both are
  reported because the paper's table has two columns and the threshold ones may be undefined.
- ``pr_auc``: average precision (``average_precision_score``), the paper's PR-AUC.
- ``roc_auc``: ``roc_auc_score``.

Per-task values are averaged over tasks within a run, then mean ± std is taken over runs (§4.1:
"mean results over five runs").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, precision_score, recall_score, roc_auc_score

METRIC_NAMES: tuple[str, ...] = ("precision", "recall", "precision_at_k", "recall_at_k", "pr_auc", "roc_auc")


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.ndim != 1 or scores.shape != labels.shape:
        raise ValueError(f"need one score per candidate: {scores.shape} scores for {labels.shape} labels")
    if not np.isfinite(scores).all():
        raise ValueError(f"{int((~np.isfinite(scores)).sum())} scores are NaN or infinite")
    if labels.all() or not labels.any():
        raise ValueError("a campaign needs at least one positive and one negative candidate")
    return labels, scores


def precision_recall_at_threshold(
    labels: np.ndarray, scores: np.ndarray, threshold: float | None
) -> tuple[float, float]:
    """Precision and recall of the expanded set {u : score(u) >= threshold}; (NaN, NaN) without a threshold."""
    labels, scores = _check(labels, scores)
    if threshold is None:
        return math.nan, math.nan
    predicted = scores >= threshold
    return (
        float(precision_score(labels, predicted, zero_division=0.0)),
        float(recall_score(labels, predicted, zero_division=0.0)),
    )


def precision_recall_at_k(
    labels: np.ndarray, scores: np.ndarray, k: int | None = None
) -> tuple[float, float]:
    """Precision and recall of the top-k candidates (k defaults to the number of positives).

    Ties are broken by candidate order (a stable sort), which the campaign builder shuffles, so a
    constant-score model gets chance-level numbers rather than the order the evaluator built.
    """
    labels, scores = _check(labels, scores)
    n_pos = int(labels.sum())
    k = n_pos if k is None else int(k)
    if k <= 0:
        raise ValueError("k must be positive")
    top = np.argsort(-scores, kind="stable")[:k]
    hits = int(labels[top].sum())
    return hits / min(k, len(labels)), hits / n_pos


def campaign_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float | None) -> dict[str, float]:
    """All metrics of one campaign (one task of one run)."""
    labels, scores = _check(labels, scores)
    precision, recall = precision_recall_at_threshold(labels, scores, threshold)
    p_at_k, r_at_k = precision_recall_at_k(labels, scores)
    return {
        "precision": precision,
        "recall": recall,
        "precision_at_k": p_at_k,
        "recall_at_k": r_at_k,
        "pr_auc": float(average_precision_score(labels, scores)),
        "roc_auc": float(roc_auc_score(labels, scores)),
    }


def mean_over_tasks(per_task: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Unweighted mean over tasks (every campaign counts once, whatever its size), per metric.

    A metric that is NaN for every task (no threshold) stays NaN; it is never NaN for only some tasks,
    since thresholds are per model.
    """
    if not per_task:
        return {name: math.nan for name in METRIC_NAMES}
    out: dict[str, float] = {}
    for name in METRIC_NAMES:
        values = np.array([row[name] for row in per_task], dtype=np.float64)
        out[name] = math.nan if np.isnan(values).all() else float(np.nanmean(values))
    return out


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) over runs; std is 0.0 for a single run, NaN stays NaN."""
    array = np.array(list(values), dtype=np.float64)
    if len(array) == 0 or np.isnan(array).all():
        return math.nan, math.nan
    array = array[~np.isnan(array)]
    std = float(np.std(array, ddof=1)) if len(array) > 1 else 0.0
    return float(np.mean(array)), std
