"""Hand-computed precision / recall / AP / ROC-AUC examples, checked against scikit-learn too."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from glom_plugin.evaluate.metrics import (
    campaign_metrics,
    mean_over_tasks,
    mean_std,
    precision_recall_at_k,
    precision_recall_at_threshold,
)

# 10 candidates ranked by score; positives at ranks 1, 3 and 6.
LABELS = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0], dtype=bool)
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])


def test_precision_recall_at_threshold_by_hand() -> None:
    # expanded = scores >= 0.55 -> ranks 1..4 -> TP = 2, FP = 2
    precision, recall = precision_recall_at_threshold(LABELS, SCORES, 0.55)
    assert precision == pytest.approx(2 / 4)
    assert recall == pytest.approx(2 / 3)
    # a threshold equal to a score includes it (>=)
    assert precision_recall_at_threshold(LABELS, SCORES, 0.4) == pytest.approx((3 / 6, 1.0))
    # nothing expanded: precision 0 (zero_division=0), recall 0
    assert precision_recall_at_threshold(LABELS, SCORES, 2.0) == (0.0, 0.0)


def test_no_threshold_gives_nan_not_an_invented_cutoff() -> None:
    precision, recall = precision_recall_at_threshold(LABELS, SCORES, None)
    assert math.isnan(precision) and math.isnan(recall)


def test_precision_recall_at_k_by_hand() -> None:
    # k = number of positives = 3 -> top 3 holds ranks 1, 3 -> 2 hits
    assert precision_recall_at_k(LABELS, SCORES) == pytest.approx((2 / 3, 2 / 3))
    assert precision_recall_at_k(LABELS, SCORES, k=6) == pytest.approx((3 / 6, 1.0))


def test_average_precision_and_roc_auc_by_hand_and_vs_sklearn() -> None:
    metrics = campaign_metrics(LABELS, SCORES, threshold=0.55)
    # AP = mean precision at each positive's rank: (1/1 + 2/3 + 3/6) / 3
    assert metrics["pr_auc"] == pytest.approx((1 + 2 / 3 + 0.5) / 3)
    # ROC-AUC = share of (positive, negative) pairs ranked correctly: (7 + 6 + 4) / (3 * 7)
    assert metrics["roc_auc"] == pytest.approx(17 / 21)
    assert metrics["pr_auc"] == pytest.approx(average_precision_score(LABELS, SCORES))
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(LABELS, SCORES))
    assert metrics["precision"] == pytest.approx(0.5) and metrics["recall"] == pytest.approx(2 / 3)


def test_ties_are_broken_by_candidate_order() -> None:
    labels = np.array([0, 1, 0, 1], dtype=bool)
    flat = np.zeros(4)
    assert precision_recall_at_k(labels, flat) == (0.5, 0.5)  # top-2 = candidates 0 and 1
    assert campaign_metrics(labels, flat, None)["roc_auc"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        (LABELS, SCORES[:-1], "one score per candidate"),
        (LABELS, np.where(LABELS, np.nan, 0.1), "NaN or infinite"),
        (np.ones(3, bool), np.arange(3.0), "at least one positive and one negative"),
    ],
)
def test_bad_inputs_raise(labels: np.ndarray, scores: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        campaign_metrics(labels, scores, 0.5)


def test_averages_over_tasks_and_runs() -> None:
    tasks = [campaign_metrics(LABELS, SCORES, None), campaign_metrics(LABELS, -SCORES, None)]
    mean = mean_over_tasks(tasks)
    assert mean["pr_auc"] == pytest.approx((tasks[0]["pr_auc"] + tasks[1]["pr_auc"]) / 2)
    assert math.isnan(mean["precision"])  # no threshold in any task stays NaN
    m, s = mean_std([0.5, 0.7])
    assert m == pytest.approx(0.6) and s == pytest.approx(math.sqrt(0.02))  # sample std, ddof = 1
    assert mean_std([0.4]) == (0.4, 0.0)
    assert all(math.isnan(v) for v in mean_std([math.nan, math.nan]))
