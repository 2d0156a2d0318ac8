"""Lookalike tasks and their per-run splits (GLoM paper §4.1).

Tasks are items: an item's purchasers are the audience an advertiser would like to grow. For each task
and run the purchasers are split once into

- a *seed pool* (``seed_fraction`` of them): the seed list the advertiser uploads. Their edges to the
  item stay in the graph, since the advertiser knows them;
- the *positives*: the other purchasers, whose edges to the item are held out of the graph and of every
  feature the models train on (``held_out_pairs``), and which the models must find among candidates.

Candidates are the positives plus sampled non-purchasers at ``negative_ratio`` negatives per positive
(paper: positive:negative = 1:10). Models that train per campaign also get ``non_seeds``: other sampled
non-purchasers at seed:non-seed = 1:10, disjoint from the candidates so that no test user is a training
negative. Seeds are never candidates.

With ``candidates="all"`` (``evaluate.candidates``, the realistic protocol) a campaign instead ranks
every active non-seed-pool user, as a real campaign ranks the whole population: the positives are hidden
among all of them and the metrics are over that whole ranking. Its non-seeds are then sampled from the
same population without looking at labels (an advertiser cannot know who the hidden audience is), so a
hidden purchaser can be a training negative, exactly as in production.

Users outside the trained graph (``LookalikeData.outside_user_ids``, rows ``n_users..`` of the scoring
index: users the minimum-interactions filter dropped) are part of the realistic protocol: their purchases
of the task item are hidden too (all of them: an advertiser's seed list comes from the users it knows,
so the split stays the graph users'), they are among the positives, and those with a training row left
are candidates and may be drawn as non-seeds. A model that cannot score them (``covers_outside``) ranks
them last, and its coverage says how much of the audience it reached. The sampled protocol keeps its
definition: graph users only.

Randomness: the task list depends on ``cfg.seed`` only (the same items in every run, as in the paper's
fixed task set); splits and samples depend on ``(cfg.seed, run, task number)``, so every model of a run
sees the same campaigns and each run sees different ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.models.base import Campaign


@dataclass(frozen=True)
class Task:
    """One item whose purchasers form a lookalike task."""

    item_id: str
    n_purchasers: int


@dataclass(frozen=True)
class TaskSplit:
    """The id-level split of one task in one run: seed pool (random order) and held-out positives."""

    task: Task
    seed_pool: np.ndarray
    positives: np.ndarray


def purchasers_by_item(polarity: pd.DataFrame) -> dict[str, np.ndarray]:
    """item_id -> sorted unique user_ids of everyone who interacted with it (§4.4: purchased = interacted)."""
    missing = {"user_id", "item_id"} - set(polarity.columns)
    if missing:
        raise ValueError(f"polarity edges lack column(s) {sorted(missing)}")
    grouped = polarity[["user_id", "item_id"]].drop_duplicates().groupby("item_id", sort=True)["user_id"]
    return {str(item): np.sort(users.to_numpy(dtype=object)) for item, users in grouped}


def select_tasks(
    purchasers: Mapping[str, np.ndarray], min_purchasers: int, max_tasks: int, seed: int
) -> list[Task]:
    """Items with at least ``min_purchasers`` purchasers; at most ``max_tasks`` of them.

    When there are more eligible items than ``max_tasks``, items are sorted by popularity and cut into
    ``max_tasks`` equal strata, one item drawn from each, so the task set spans niche to popular items
    rather than only the head (which a top-N choice would give). Deterministic for a given ``seed``.
    """
    if min_purchasers < 2:
        raise ValueError("evaluate.min_purchasers must be >= 2 (a task needs a seed and a positive)")
    if max_tasks < 1:
        raise ValueError("evaluate.max_tasks must be >= 1")
    eligible = sorted(
        ((len(users), item) for item, users in purchasers.items() if len(users) >= min_purchasers),
    )
    if not eligible:
        raise ValueError(
            f"no item has >= {min_purchasers} purchasers (evaluate.min_purchasers); "
            f"the most popular has {max((len(u) for u in purchasers.values()), default=0)}"
        )
    if len(eligible) > max_tasks:
        rng = np.random.default_rng([seed, 0x7A5C])
        strata = np.array_split(np.arange(len(eligible)), max_tasks)
        eligible = [eligible[int(rng.choice(stratum))] for stratum in strata]
    return [Task(item_id=item, n_purchasers=count) for count, item in eligible]


def split_task(
    task: Task, purchasers: np.ndarray, seed_fraction: float, rng: np.random.Generator
) -> TaskSplit:
    """Seed pool = ``seed_fraction`` of the purchasers (at least one, leaving at least one positive)."""
    if not 0.0 < seed_fraction < 1.0:
        raise ValueError("evaluate.seed_fraction must be in (0, 1)")
    order = rng.permutation(len(purchasers))
    n_seeds = min(max(int(round(seed_fraction * len(purchasers))), 1), len(purchasers) - 1)
    shuffled = purchasers[order]
    return TaskSplit(task=task, seed_pool=shuffled[:n_seeds], positives=np.sort(shuffled[n_seeds:]))


def split_tasks(
    tasks: Sequence[Task], purchasers: Mapping[str, np.ndarray], seed_fraction: float, seed: int, run: int
) -> list[TaskSplit]:
    return [
        split_task(
            task, purchasers[task.item_id], seed_fraction, np.random.default_rng([seed, run, number, 0])
        )
        for number, task in enumerate(tasks)
    ]


def held_out_pairs(splits: Sequence[TaskSplit]) -> pd.DataFrame:
    """The (user_id, item_id) purchase edges the models must not see in this run: positives x task item."""
    frames = [pd.DataFrame({"user_id": s.positives, "item_id": s.task.item_id}) for s in splits]
    if not frames:
        return pd.DataFrame({"user_id": pd.Series(dtype=object), "item_id": pd.Series(dtype=object)})
    return pd.concat(frames, ignore_index=True).drop_duplicates(ignore_index=True)


@dataclass(frozen=True)
class EvalCampaign:
    """A model-facing ``Campaign`` plus what only the evaluator knows: the labels of the candidates."""

    campaign: Campaign
    labels: np.ndarray
    item_id: str
    # the task's whole hidden audience: positives among the candidates + those left without a training
    # row (no model can score them); None = the positives
    n_audience: int | None = None

    @property
    def n_positives(self) -> int:
        return int(self.labels.sum())

    def counts(self) -> dict[str, int]:
        return {
            "n_seeds": len(self.campaign.seeds),
            "n_non_seeds": len(self.campaign.non_seeds),
            "n_candidates": len(self.campaign.candidates),
            "n_positives": self.n_positives,
            "n_negatives": len(self.labels) - self.n_positives,
            "n_audience": self.n_positives if self.n_audience is None else int(self.n_audience),
        }


@dataclass
class TaskSample:
    """Index-level sample of one task in one run, from which campaigns of any seed-list size are cut.

    Candidates (positives + negatives, shuffled) are fixed; the seed list is a prefix of the seed pool
    and the non-seeds a prefix of a fixed permutation of the remaining non-purchasers, so a smaller seed
    list is a subset of a larger one (Fig. 6 compares like with like).
    """

    split: TaskSplit
    item_idx: int | None
    seed_pool_idx: np.ndarray
    candidates: np.ndarray
    labels: np.ndarray
    non_seed_order: np.ndarray
    negative_ratio: int
    # What could not be used, so reports show it rather than dropping it silently.
    notes: dict[str, int] = field(default_factory=dict)

    def campaign(self, seed_size: int | None = None) -> EvalCampaign:
        seeds = self.seed_pool_idx if seed_size is None else self.seed_pool_idx[: int(seed_size)]
        non_seeds = self.non_seed_order[: self.negative_ratio * len(seeds)]
        return EvalCampaign(
            campaign=Campaign(
                name=f"item:{self.split.task.item_id}",
                seeds=seeds,
                non_seeds=non_seeds,
                candidates=self.candidates,
                item_idx=self.item_idx,
            ),
            labels=self.labels,
            item_id=self.split.task.item_id,
            n_audience=int(self.labels.sum()) + int(self.notes.get("positives_without_training_edges", 0)),
        )


def sample_task(
    split: TaskSplit,
    purchasers: np.ndarray,
    user_index: Mapping[str, int],
    item_index: Mapping[str, int],
    active_users: np.ndarray,
    negative_ratio: int,
    rng: np.random.Generator,
    candidates: str = "sampled",
    outside_purchasers: np.ndarray | None = None,
    outside_active: np.ndarray | None = None,
) -> TaskSample:
    """Map a split onto the training graph's user indices and draw negatives and non-seeds.

    ``active_users``: sorted indices of users with at least one training edge. Only they can be seeds,
    candidates or non-seeds: a user whose every edge was held out would be isolated in the training graph,
    and since ingestion keeps only users with interactions, isolation itself would betray a held-out
    purchaser. Such seeds/positives are left out and counted in ``notes``, never silently.
    Negatives and non-seeds are drawn from active users who never interacted with the item (held-out
    purchasers of *other* tasks are eligible: they did not buy this one). When there are fewer such users
    than both 1:10 sets need, the pool is shared in proportion and the shortfall is counted in ``notes``
    (``negatives_short``, ``non_seeds_short``). Raises when a task has no usable seed, positive or negative.

    ``candidates="all"``: every active user outside the seed pool is a candidate (``_sample_population``),
    and the users outside the graph join them: ``outside_purchasers`` (ids) bought the item and are hidden
    positives, ``outside_active`` (sorted rows >= n_users) are those with a training row left.
    """
    if negative_ratio < 1:
        raise ValueError("evaluate.negative_ratio must be >= 1")
    if candidates not in CANDIDATE_MODES:
        raise ValueError(f"unknown evaluate.candidates {candidates!r}; choose one of {CANDIDATE_MODES}")
    item_id = split.task.item_id

    def active(ids: np.ndarray) -> np.ndarray:
        idx = np.array([user_index[u] for u in ids if u in user_index], dtype=np.int64)
        return idx[np.isin(idx, active_users, assume_unique=True)]

    seed_idx = active(split.seed_pool)
    pos_idx = active(split.positives)
    bought = np.array([user_index[u] for u in purchasers if u in user_index], dtype=np.int64)
    notes = {
        "seeds_without_training_edges": len(split.seed_pool) - len(seed_idx),
        "positives_without_training_edges": len(split.positives) - len(pos_idx),
    }
    if len(seed_idx) == 0 or len(pos_idx) == 0:
        raise ValueError(f"task {item_id!r}: no seed or no positive has an edge left in the training graph")
    if candidates == "all":
        if outside_purchasers is not None and len(outside_purchasers):
            outside_pos = np.array([user_index[u] for u in outside_purchasers if u in user_index], dtype=np.int64)
            if outside_active is not None:
                outside_pos = outside_pos[np.isin(outside_pos, outside_active)]
            notes["positives_without_training_edges"] += len(outside_purchasers) - len(outside_pos)
            notes["outside_positives"] = len(outside_pos)
            pos_idx = np.concatenate([pos_idx, outside_pos])
        population = active_users if outside_active is None else np.concatenate([active_users, outside_active])
        return _sample_population(split, seed_idx, pos_idx, population, item_index, negative_ratio, rng, notes)
    pool = np.setdiff1d(active_users, bought, assume_unique=True)
    if len(pool) == 0:
        raise ValueError(f"task {item_id!r}: every user interacted with the item; no negatives to sample")
    want_neg, want_non_seeds = negative_ratio * len(pos_idx), negative_ratio * len(seed_idx)
    if len(pool) >= want_neg + want_non_seeds:
        n_neg = want_neg
    else:
        # Too few non-purchasers for both 1:10 sets: share the pool in proportion, so per-campaign
        # models still get non-seeds (at least one of each while the pool has two users).
        n_neg = int(len(pool) * want_neg / (want_neg + want_non_seeds))
        n_neg = min(max(n_neg, 1), len(pool) - 1) if len(pool) > 1 else len(pool)
    notes["negatives_short"] = want_neg - n_neg
    negatives = rng.choice(pool, size=n_neg, replace=False)
    rest = rng.permutation(np.setdiff1d(pool, negatives, assume_unique=True))
    notes["non_seeds_short"] = max(want_non_seeds - len(rest), 0)
    candidates = np.concatenate([pos_idx, negatives])
    labels = np.concatenate([np.ones(len(pos_idx), bool), np.zeros(n_neg, bool)])
    order = rng.permutation(len(candidates))
    return TaskSample(
        split=split,
        item_idx=item_index.get(item_id),
        seed_pool_idx=seed_idx,
        candidates=candidates[order],
        labels=labels[order],
        non_seed_order=rest,
        negative_ratio=negative_ratio,
        notes=notes,
    )


CANDIDATE_MODES: tuple[str, ...] = ("sampled", "all")


def _sample_population(
    split: TaskSplit,
    seed_idx: np.ndarray,
    pos_idx: np.ndarray,
    active_users: np.ndarray,
    item_index: Mapping[str, int],
    negative_ratio: int,
    rng: np.random.Generator,
    notes: dict[str, int],
) -> TaskSample:
    """The realistic campaign: candidates = every active user outside the seed pool (labels: bought the
    item, held out), non-seeds = a label-blind sample of that same population at ``negative_ratio`` x."""
    population = np.setdiff1d(active_users, seed_idx, assume_unique=True)
    labels = np.isin(population, pos_idx, assume_unique=True)
    if labels.all():
        raise ValueError(f"task {split.task.item_id!r}: every non-seed user bought the item; no negatives")
    non_seed_order = rng.permutation(population)
    notes["negatives_short"] = 0
    notes["non_seeds_short"] = max(negative_ratio * len(seed_idx) - len(non_seed_order), 0)
    return TaskSample(
        split=split,
        item_idx=item_index.get(split.task.item_id),
        seed_pool_idx=seed_idx,
        candidates=population,
        labels=labels,
        non_seed_order=non_seed_order,
        negative_ratio=negative_ratio,
        notes=notes,
    )


def sample_tasks(
    splits: Sequence[TaskSplit],
    purchasers: Mapping[str, np.ndarray],
    data: LookalikeData,
    negative_ratio: int,
    seed: int,
    run: int,
    candidates: str = "sampled",
    outside_purchasers: Mapping[str, np.ndarray] | None = None,
) -> tuple[list[TaskSample], list[dict[str, str]]]:
    """Samples of every task that can be evaluated in this run, and the tasks that cannot (with why).
    ``outside_purchasers``: item_id -> ids of users outside the graph who bought it (realistic protocol)."""
    if candidates not in CANDIDATE_MODES:  # a setting error, not a task that cannot be evaluated
        raise ValueError(f"unknown evaluate.candidates {candidates!r}; choose one of {CANDIDATE_MODES}")
    outside = candidates == "all"
    ids = data.all_user_ids if outside else data.user_ids
    user_index = {str(u): i for i, u in enumerate(ids)}
    item_index = {str(it): i for i, it in enumerate(data.item_ids)}
    active_users = np.unique(data.edges["user_idx"].to_numpy(dtype=np.int64))
    # every attached outside user has a training row (attach_outside keeps no other)
    outside_active = data.n_users + np.unique(data.outside_edges["user_idx"].to_numpy(dtype=np.int64)) if outside else None
    outside_purchasers = outside_purchasers or {}
    samples: list[TaskSample] = []
    skipped: list[dict[str, str]] = []
    for number, split in enumerate(splits):
        try:
            samples.append(
                sample_task(
                    split,
                    purchasers[split.task.item_id],
                    user_index,
                    item_index,
                    active_users,
                    negative_ratio,
                    np.random.default_rng([seed, run, number, 1]),
                    candidates,
                    outside_purchasers.get(split.task.item_id) if outside else None,
                    outside_active,
                )
            )
        except ValueError as exc:
            skipped.append({"item_id": split.task.item_id, "reason": str(exc)})
    return samples, skipped
