"""The seed-calibrated threshold T (expand/calibration.py): hand-made quantiles, fold bookkeeping, and
that the recall it targets on held-out seeds is the recall it gets on unseen members of the same audience."""

from __future__ import annotations

import numpy as np
import pytest

from glom_plugin.config import ExpandConfig
from glom_plugin.expand.aggregation import aggregate_similarity
from glom_plugin.expand.calibration import (
    campaign_seed,
    heldout_seed_scores,
    seed_calibrated_threshold,
    threshold_for_recall,
)
from glom_plugin.expand.expander import expand_audience
from tests.unit.test_expand import SEEDS, clustered_model


def test_threshold_is_the_score_that_the_asked_share_of_seeds_reach():
    scores = np.array([0.6, 0.9, 0.7, 0.8])
    assert threshold_for_recall(scores, 0.5) == 0.8  # 2 of 4 seeds score >= 0.8
    assert threshold_for_recall(scores, 1.0) == 0.6
    assert threshold_for_recall(scores, 0.1) == 0.9
    assert threshold_for_recall(scores, 0.51) == 0.7  # at least the asked share: 3 of 4
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="seed_recall"):
            threshold_for_recall(scores, bad)
    with pytest.raises(ValueError, match="finite"):
        threshold_for_recall(np.array([0.1, np.nan]), 0.5)


def test_each_seed_is_held_out_once_and_scored_against_the_others():
    seeds = np.arange(100, 111)
    seen: list[tuple[set, set]] = []

    def score(rest, held):
        seen.append((set(rest.tolist()), set(held.tolist())))
        return held.astype(float)  # the score of a seed is its own id: easy to check the alignment

    out = heldout_seed_scores(seeds, score, folds=4, seed=3)
    assert out.tolist() == seeds.astype(float).tolist()
    assert len(seen) == 4
    assert set().union(*(held for _, held in seen)) == set(seeds.tolist())
    for rest, held in seen:
        assert not rest & held and rest | held == set(seeds.tolist())
    assert len(heldout_seed_scores(seeds[:2], score, folds=5)) == 2  # folds capped at the seed count
    assert seed_calibrated_threshold(seeds[:1], score, 0.5) is None  # nothing to hold out
    with pytest.raises(ValueError, match="returned"):
        heldout_seed_scores(seeds, lambda rest, held: np.zeros(1), folds=2)


def test_calibrated_threshold_reaches_about_the_asked_recall_on_unseen_audience_members():
    rng = np.random.default_rng(7)
    direction = np.eye(16)[0] * 1.5
    audience = direction + rng.normal(size=(600, 16))
    others = rng.normal(size=(3000, 16))
    seeds, positives = audience[:300], audience[300:]
    rows = np.arange(300)
    for recall in (0.3, 0.5, 0.8):
        threshold = seed_calibrated_threshold(
            rows, lambda rest, held: aggregate_similarity(seeds[held], seeds[rest], "mean"), recall, seed=1
        )
        found = aggregate_similarity(positives, seeds, "mean") >= threshold
        assert abs(found.mean() - recall) < 0.08
        # and it separates: far fewer non-members clear it
        assert (aggregate_similarity(others, seeds, "mean") >= threshold).mean() < found.mean() / 2


def test_campaign_seed_is_stable_and_differs_by_campaign_and_run():
    assert campaign_seed(0, "item-1") == campaign_seed(0, "item-1")
    assert len({campaign_seed(0, "item-1"), campaign_seed(1, "item-1"), campaign_seed(0, "item-2")}) == 3


def test_expander_calibrates_t_when_asked_and_a_fixed_t_wins():
    model = clustered_model()
    calibrated = expand_audience(model, SEEDS, ExpandConfig(seed_recall=0.5, top_k=1000))
    assert calibrated.threshold is not None and (calibrated.lookalikes["score"] >= calibrated.threshold).all()
    found = calibrated.lookalikes["user_id"].tolist()
    assert 0 < len(found) < model.n_users - len(SEEDS) and all(u.startswith("0-") for u in found)
    everything = expand_audience(model, SEEDS, ExpandConfig(seed_recall=1.0), k=0)
    assert len(everything.lookalikes) >= len(found)
    fixed = expand_audience(model, SEEDS, ExpandConfig(seed_recall=0.5, threshold=0.99), k=0)
    assert fixed.threshold == 0.99
    assert calibrated.summary()["threshold"] == calibrated.threshold
