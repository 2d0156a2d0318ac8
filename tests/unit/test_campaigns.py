"""Task selection and per-run splits (GLoM §4.1): tasks = items, seed:non-seed = positive:negative = 1:10."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from glom_plugin.evaluate.campaigns import (
    held_out_pairs,
    purchasers_by_item,
    sample_tasks,
    select_tasks,
    split_tasks,
)
from glom_plugin.graph.dataset import LookalikeData


def _purchasers(counts: dict[str, int]) -> dict[str, np.ndarray]:
    return {item: np.array([f"u{k:04d}" for k in range(n)], dtype=object) for item, n in counts.items()}


def _world(n_users: int = 1500, n_items: int = 6, seed: int = 0) -> tuple[pd.DataFrame, LookalikeData]:
    """Purchase log + the LookalikeData a run would train on (built here; no held-out removal needed)."""
    rng = np.random.default_rng(seed)
    rows = [
        (f"u{u:04d}", f"i{j}")
        for u in range(n_users)
        for j in range(n_items)
        if rng.random() < 0.02 + 0.005 * j
    ]
    # every user keeps at least one edge on an item that is never a task
    rows += [(f"u{u:04d}", "filler") for u in range(n_users)]
    polarity = pd.DataFrame(rows, columns=["user_id", "item_id"])
    user_ids = np.sort(polarity["user_id"].unique()).astype(object)
    item_ids = np.sort(polarity["item_id"].unique()).astype(object)
    uidx = {u: i for i, u in enumerate(user_ids)}
    iidx = {it: i for i, it in enumerate(item_ids)}
    edges = pd.DataFrame(
        {
            "user_idx": polarity["user_id"].map(uidx).to_numpy(np.int64),
            "item_idx": polarity["item_id"].map(iidx).to_numpy(np.int64),
            "rating_norm": 1.0,
            "sentiment": np.nan,
            "polarity": 1.0,
            "liked": True,
        }
    )
    data = LookalikeData(
        user_ids=user_ids,
        item_ids=item_ids,
        edges=edges,
        similarity=pd.DataFrame({"user_a": [], "user_b": [], "similarity": []}),
        item_categories=sp.csr_matrix((len(item_ids), 0)),
    )
    return polarity, data


def test_select_tasks_keeps_items_with_enough_purchasers_and_caps_the_count() -> None:
    purchasers = _purchasers({"a": 3, "b": 10, "c": 11, "d": 50})
    tasks = select_tasks(purchasers, min_purchasers=10, max_tasks=10, seed=1)
    assert [t.item_id for t in tasks] == ["b", "c", "d"]
    assert [t.n_purchasers for t in tasks] == [10, 11, 50]
    with pytest.raises(ValueError, match="no item has >= 60 purchasers"):
        select_tasks(purchasers, min_purchasers=60, max_tasks=10, seed=1)


def test_select_tasks_spreads_over_popularity_and_is_deterministic_by_seed() -> None:
    purchasers = _purchasers({f"item{k:03d}": 10 + k for k in range(100)})
    tasks = select_tasks(purchasers, min_purchasers=10, max_tasks=5, seed=3)
    counts = sorted(t.n_purchasers for t in tasks)
    assert len(tasks) == 5
    # one item from each popularity fifth: the least popular fifth (10..29) and the most popular (90..109)
    for fifth, count in enumerate(counts):
        assert 10 + 20 * fifth <= count < 10 + 20 * (fifth + 1)
    assert select_tasks(purchasers, 10, 5, seed=3) == tasks
    others = {tuple(t.item_id for t in select_tasks(purchasers, 10, 5, seed=s)) for s in range(6)}
    assert len(others) > 1  # the seed does choose


def test_split_and_sample_follow_the_paper_ratios() -> None:
    polarity, data = _world()
    purchasers = purchasers_by_item(polarity)
    tasks = select_tasks({k: v for k, v in purchasers.items() if k != "filler"}, 10, 10, seed=0)
    splits = split_tasks(tasks, purchasers, seed_fraction=0.5, seed=7, run=0)
    samples, skipped = sample_tasks(splits, purchasers, data, negative_ratio=10, seed=7, run=0)
    assert skipped == [] and len(samples) == len(tasks)
    for split, sample in zip(splits, samples, strict=True):
        bought = set(purchasers[split.task.item_id])
        n = len(bought)
        # seed pool = half of the purchasers, positives = the other half, together all purchasers
        assert len(split.seed_pool) == round(0.5 * n)
        assert set(split.seed_pool) | set(split.positives) == bought
        assert not set(split.seed_pool) & set(split.positives)
        campaign = sample.campaign()
        seeds = set(data.user_ids[campaign.campaign.seeds])
        candidates = data.user_ids[campaign.campaign.candidates]
        non_seeds = set(data.user_ids[campaign.campaign.non_seeds])
        positives = set(candidates[campaign.labels])
        negatives = set(candidates[~campaign.labels])
        assert seeds == set(split.seed_pool)
        assert positives == set(split.positives)  # positives are exactly the held-out purchasers
        assert not seeds & set(candidates)  # seeds are never candidates
        assert not negatives & bought and not non_seeds & bought
        assert not non_seeds & set(candidates)  # no test user is a training negative
        assert len(negatives) == 10 * len(positives)  # positive:negative = 1:10
        assert len(non_seeds) == 10 * len(seeds)  # seed:non-seed = 1:10
        assert len(set(candidates)) == len(candidates)
        assert campaign.campaign.item_idx == list(data.item_ids).index(split.task.item_id)
        assert sample.notes["negatives_short"] == 0 and sample.notes["non_seeds_short"] == 0


def test_held_out_pairs_are_the_positives_purchases_of_the_task_item() -> None:
    polarity, _ = _world()
    purchasers = purchasers_by_item(polarity)
    tasks = select_tasks({k: v for k, v in purchasers.items() if k != "filler"}, 10, 3, seed=0)
    splits = split_tasks(tasks, purchasers, 0.5, seed=1, run=0)
    held = held_out_pairs(splits)
    expected = {(u, s.task.item_id) for s in splits for u in s.positives}
    assert set(map(tuple, held[["user_id", "item_id"]].to_numpy())) == expected
    seeds = {(u, s.task.item_id) for s in splits for u in s.seed_pool}
    assert not expected & seeds  # the advertiser's seeds keep their edges


def test_splits_are_deterministic_by_seed_and_run() -> None:
    polarity, data = _world()
    purchasers = purchasers_by_item(polarity)
    tasks = select_tasks({k: v for k, v in purchasers.items() if k != "filler"}, 10, 3, seed=0)

    def draw(seed: int, run: int) -> list[tuple[list[str], list[int]]]:
        splits = split_tasks(tasks, purchasers, 0.5, seed=seed, run=run)
        samples, _ = sample_tasks(splits, purchasers, data, 10, seed=seed, run=run)
        return [(list(s.split.seed_pool), s.campaign().campaign.candidates.tolist()) for s in samples]

    assert draw(5, 0) == draw(5, 0)
    assert draw(5, 0) != draw(5, 1)  # each run draws a new split
    assert draw(5, 0) != draw(6, 0)


def test_seed_size_variants_share_candidates_and_nest_seeds() -> None:
    polarity, data = _world()
    purchasers = purchasers_by_item(polarity)
    tasks = select_tasks({k: v for k, v in purchasers.items() if k != "filler"}, 10, 2, seed=0)
    samples, _ = sample_tasks(split_tasks(tasks, purchasers, 0.5, 1, 0), purchasers, data, 10, 1, 0)
    full = samples[0].campaign()
    small = samples[0].campaign(seed_size=3)
    assert len(small.campaign.seeds) == 3 and set(small.campaign.seeds) <= set(full.campaign.seeds)
    assert np.array_equal(small.campaign.candidates, full.campaign.candidates)
    assert np.array_equal(small.labels, full.labels)
    assert len(small.campaign.non_seeds) == 30
    assert set(small.campaign.non_seeds) <= set(full.campaign.non_seeds)
    huge = samples[0].campaign(seed_size=10_000)  # more than the pool: the whole pool
    assert np.array_equal(huge.campaign.seeds, full.campaign.seeds)


def test_isolated_users_are_left_out_and_counted() -> None:
    polarity, data = _world()
    purchasers = purchasers_by_item(polarity)
    tasks = select_tasks({k: v for k, v in purchasers.items() if k != "filler"}, 10, 1, seed=0)
    splits = split_tasks(tasks, purchasers, 0.5, 1, 0)
    lonely = splits[0].positives[0]
    lonely_idx = list(data.user_ids).index(lonely)
    data.edges = data.edges[data.edges["user_idx"] != lonely_idx].reset_index(drop=True)
    samples, _ = sample_tasks(splits, purchasers, data, 10, 1, 0)
    campaign = samples[0].campaign()
    assert lonely_idx not in set(campaign.campaign.candidates)
    assert samples[0].notes["positives_without_training_edges"] == 1


def test_a_small_pool_is_shared_so_per_campaign_models_still_get_non_seeds() -> None:
    polarity, data = _world(n_users=120)
    purchasers = purchasers_by_item(polarity)
    purchasers["filler"] = purchasers["filler"][:30]  # a task of 30 purchasers among 120 users: 90 < 10 x 30
    tasks = select_tasks({"filler": purchasers["filler"]}, 4, 1, seed=0)
    samples, _ = sample_tasks(split_tasks(tasks, purchasers, 0.5, 1, 0), purchasers, data, 10, 1, 0)
    sample = samples[0]
    campaign = sample.campaign()
    n_pool = data.n_users - len(purchasers[tasks[0].item_id])
    n_neg = int((~campaign.labels).sum())
    n_pos, n_seeds = int(campaign.labels.sum()), len(campaign.campaign.seeds)
    assert n_neg + len(campaign.campaign.non_seeds) == n_pool  # the whole pool is used, split in two
    assert n_neg < 10 * n_pos and len(campaign.campaign.non_seeds) < 10 * n_seeds
    assert n_neg == int(n_pool * n_pos / (n_pos + n_seeds))  # in proportion to what each set wanted
    assert sample.notes["negatives_short"] == 10 * n_pos - n_neg
    assert sample.notes["non_seeds_short"] == 10 * n_seeds - len(campaign.campaign.non_seeds)


def test_all_candidates_protocol_ranks_every_active_non_seed_user() -> None:
    """evaluate.candidates=all: the hidden audience among the whole active population, labels exact."""
    polarity, data = _world()
    purchasers = purchasers_by_item(polarity)
    tasks = select_tasks({k: v for k, v in purchasers.items() if k != "filler"}, 10, 5, seed=0)
    splits = split_tasks(tasks, purchasers, seed_fraction=0.5, seed=7, run=0)
    samples, skipped = sample_tasks(splits, purchasers, data, 10, seed=7, run=0, candidates="all")
    active = set(np.unique(data.edges["user_idx"].to_numpy()).tolist())
    assert skipped == [] and len(samples) == len(tasks)
    for split, sample in zip(splits, samples, strict=True):
        campaign = sample.campaign()
        pool = set(sample.seed_pool_idx.tolist())
        candidates = campaign.campaign.candidates
        assert set(candidates.tolist()) == active - pool  # everyone but the advertiser's list
        assert len(set(candidates.tolist())) == len(candidates)
        assert set(data.user_ids[candidates[campaign.labels]]) == set(split.positives)
        # non-seeds: drawn from the same population, label-blind, 1:10
        assert set(campaign.campaign.non_seeds.tolist()) <= active - pool
        assert len(campaign.campaign.non_seeds) == min(10 * len(campaign.campaign.seeds), len(candidates))
        # a smaller seed list keeps the same candidates (Fig. 6 compares like with like)
        assert np.array_equal(sample.campaign(2).campaign.candidates, candidates)


def test_unknown_candidate_mode_is_refused() -> None:
    polarity, data = _world()
    purchasers = purchasers_by_item(polarity)
    tasks = select_tasks({k: v for k, v in purchasers.items() if k != "filler"}, 10, 1, seed=0)
    splits = split_tasks(tasks, purchasers, 0.5, seed=1, run=0)
    with pytest.raises(ValueError, match="evaluate.candidates"):
        sample_tasks(splits, purchasers, data, 10, 1, 0, candidates="everyone")
