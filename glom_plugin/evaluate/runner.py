"""The evaluation protocol of the GLoM paper (§4.1, §4.4), for any models of the registry.

Per run r (``cfg.evaluate.runs``, paper: 5):

1. split every task's purchasers into seed pool / held-out positives (seeded by ``(cfg.seed, r)``);
2. remove the held-out purchase edges from polarity edges and interactions and rebuild the training
   ``LookalikeData`` (polarity, similarity, profiles) from what is left — ``training_data.py``;
3. sample each campaign's candidates (1:10) and non-seeds (1:10) from the training graph's users;
4. for each model: create it with seed ``cfg.seed + r``, ``fit`` it once on the training data, then
   ``score_campaign`` every campaign; wall time and peak memory of fit + scoring are measured. A model
   that raises is recorded as failed with its error, and the run goes on with the next model.

Every model of a run sees the same campaigns and the same training data. Metrics are averaged over
tasks per run, then mean ± std over runs (``EvaluationResult.summary``).

The sweeps reuse the same loop: ``sweep_embedding_size`` (Fig. 5) refits the models once per
``pm.dim`` on each run's data; ``sweep_seed_size`` (Fig. 6) fits once per run and scores campaigns whose
seed list is cut to each size (candidates and positives unchanged, so only the seed list varies).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from glom_plugin.config import GlomConfig
from glom_plugin.evaluate.campaigns import (
    EvalCampaign,
    Task,
    TaskSample,
    TaskSplit,
    held_out_pairs,
    purchasers_by_item,
    sample_tasks,
    select_tasks,
    split_tasks,
)
from glom_plugin.evaluate.metrics import campaign_metrics
from glom_plugin.evaluate.resources import ResourceMeter, memory_method, release_free_memory
from glom_plugin.evaluate.results import EvaluationResult, ModelRun, RunRecord, SweepResult, TaskResult
from glom_plugin.evaluate.training_data import (
    DataBuilder,
    EvaluationTables,
    attach_outside,
    build_training_data,
)
from glom_plugin.expand.calibration import campaign_seed, seed_calibrated_threshold
from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.layout import RunLayout
from glom_plugin.models.base import Campaign, LookalikeModel
from glom_plugin.models.registry import create_model
from glom_plugin.storage import write_text


@dataclass(frozen=True)
class RunInputs:
    """One run's inputs (steps 1–3): the leak-free training data and the sampled campaigns."""

    data: LookalikeData
    samples: list[TaskSample]
    skipped: list[dict[str, str]]  # tasks this run cannot evaluate, with why
    n_held_out: int  # purchase edges removed from the training data
    splits: list[TaskSplit] = field(default_factory=list)  # the run's splits, to sample other protocols from


@dataclass(frozen=True)
class ProtocolTasks:
    """The tasks (§4.1) over a run directory's tables: what every run and every model share. Benchmarks
    that study one stage on the evaluation's own splits build them from here, not from a copy."""

    tables: EvaluationTables
    purchasers: dict[str, np.ndarray]
    tasks: list[Task]
    # item_id -> users outside the graph who bought it (the realistic protocol's extra hidden audience)
    outside_purchasers: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def load(cls, cfg: GlomConfig, layout: RunLayout) -> ProtocolTasks:
        return cls.of(cfg, EvaluationTables.load(layout))

    @classmethod
    def of(cls, cfg: GlomConfig, tables: EvaluationTables) -> ProtocolTasks:
        """Tasks over the graph's purchasers (§4.1: the task set and the splits do not see outside users,
        so the sampled protocol keeps its definition); outside purchasers join the task's audience."""
        purchasers = purchasers_by_item(tables.polarity)
        ev = cfg.evaluate
        tasks = select_tasks(purchasers, ev.min_purchasers, ev.max_tasks, cfg.seed)
        outside = purchasers_by_item(tables.outside_held_out([t.item_id for t in tasks]))
        return cls(tables, purchasers, tasks, outside)

    def run_inputs(
        self, cfg: GlomConfig, layout: RunLayout, run: int, data_builder: DataBuilder = build_training_data
    ) -> RunInputs:
        """Steps 1–3 for run ``run``: split, remove held-out purchases and rebuild the data, sample."""
        ev = cfg.evaluate
        splits = split_tasks(self.tasks, self.purchasers, ev.seed_fraction, cfg.seed, run)
        held_out = held_out_pairs(splits)
        # outside users' purchases of the task items are hidden from their fold-in rows (not counted in
        # n_held_out: they never were graph edges)
        outside_held_out = self.tables.outside_held_out([t.item_id for t in self.tasks])
        train = self.tables.without(pd.concat([held_out, outside_held_out], ignore_index=True))
        data = attach_outside(data_builder(train, cfg, layout), train)
        samples, skipped = sample_tasks(
            splits, self.purchasers, data, ev.negative_ratio, cfg.seed, run, ev.candidates, self.outside_purchasers
        )
        return RunInputs(data, samples, skipped, len(held_out), splits)

    def samples_for(
        self, inputs: RunInputs, cfg: GlomConfig, run: int, candidates: str
    ) -> tuple[list[TaskSample], list[dict[str, str]]]:
        """The same run's tasks sampled under another protocol (``evaluate.candidates``): same split, same
        training data, so the models fitted once serve both."""
        if candidates == cfg.evaluate.candidates:
            return inputs.samples, inputs.skipped
        return sample_tasks(
            inputs.splits, self.purchasers, inputs.data, cfg.evaluate.negative_ratio, cfg.seed, run, candidates,
            self.outside_purchasers,
        )


@dataclass(frozen=True)
class _Variant:
    """One point of the protocol: the config the models are built with and the seed-list size."""

    label: str
    model_cfg: GlomConfig
    seed_size: int | None = None


def run_evaluation(
    cfg: GlomConfig,
    layout: RunLayout,
    model_names: list[str],
    runs: int | None = None,
    *,
    data_builder: DataBuilder = build_training_data,
) -> EvaluationResult:
    """Table 2: every model on the same tasks, ``runs`` times (default ``cfg.evaluate.runs``).

    After each run the table so far is written to ``evaluate/table.partial.md``: a long comparison can be
    read while it runs, and an interrupted one still leaves the runs it finished.
    """

    def checkpoint(results: list[EvaluationResult]) -> None:
        from glom_plugin.evaluate.report import markdown_table

        write_text(markdown_table(results[0]), layout.evaluate_dir / PARTIAL_TABLE)

    return _run_protocol(cfg, layout, model_names, runs, [_Variant("", cfg)], data_builder, checkpoint)[0]


PARTIAL_TABLE = "table.partial.md"


def evaluate_protocols(
    cfg: GlomConfig,
    layout: RunLayout,
    model_names: list[str],
    protocols: Sequence[str],
    runs: int | None = None,
    *,
    data_builder: DataBuilder = build_training_data,
) -> dict[str, EvaluationResult]:
    """Table 2 under several protocols (``evaluate.candidates`` values) from ONE fit per model and run:
    the split and the training data do not depend on the protocol, only who the campaigns rank does.
    ``evaluate/table.partial.md`` holds the first protocol's table after each run."""
    if not protocols:
        raise ValueError("no protocol to evaluate")
    # no label: each table's protocol line says which protocol it is
    variants = [_Variant("", cfg.with_overrides(**{"evaluate.candidates": mode})) for mode in protocols]

    def checkpoint(results: list[EvaluationResult]) -> None:
        from glom_plugin.evaluate.report import markdown_table

        write_text(markdown_table(results[0]), layout.evaluate_dir / PARTIAL_TABLE)

    results = _run_protocol(cfg, layout, model_names, runs, variants, data_builder, checkpoint)
    return dict(zip(protocols, results, strict=True))


def sweep_embedding_size(
    cfg: GlomConfig,
    layout: RunLayout,
    model_names: list[str],
    runs: int | None = None,
    sizes: Sequence[int] | None = None,
    *,
    data_builder: DataBuilder = build_training_data,
) -> SweepResult:
    """Fig. 5: the protocol once per ``pm.dim`` in ``sizes`` (default ``cfg.evaluate.embedding_sizes``)."""
    values = list(sizes if sizes is not None else cfg.evaluate.embedding_sizes)
    variants = [_Variant(f"pm.dim={dim}", cfg.with_overrides(**{"pm.dim": int(dim)})) for dim in values]
    return SweepResult(
        "pm.dim", values, _run_protocol(cfg, layout, model_names, runs, variants, data_builder)
    )


def sweep_seed_size(
    cfg: GlomConfig,
    layout: RunLayout,
    model_names: list[str],
    runs: int | None = None,
    sizes: Sequence[int] | None = None,
    *,
    data_builder: DataBuilder = build_training_data,
) -> SweepResult:
    """Fig. 6: seeds per campaign cut to each of ``sizes`` (default ``cfg.evaluate.seed_sizes``).

    A task whose seed pool is smaller than a size uses its whole pool; the mean number of seeds actually
    used is recorded per point (``mean_seeds_per_campaign``).
    """
    values = list(sizes if sizes is not None else cfg.evaluate.seed_sizes)
    if any(v < 1 for v in values):
        raise ValueError("seed sizes must be >= 1")
    variants = [_Variant(f"seed_size={s}", cfg, int(s)) for s in values]
    return SweepResult(
        "seed_size", values, _run_protocol(cfg, layout, model_names, runs, variants, data_builder)
    )


def _run_protocol(
    cfg: GlomConfig,
    layout: RunLayout,
    model_names: list[str],
    runs: int | None,
    variants: list[_Variant],
    data_builder: DataBuilder,
    after_run: Callable[[list[EvaluationResult]], None] | None = None,
) -> list[EvaluationResult]:
    ev = cfg.evaluate
    n_runs = ev.runs if runs is None else int(runs)
    if n_runs < 1:
        raise ValueError("runs must be >= 1")
    if not model_names:
        raise ValueError("no model to evaluate")
    protocol = ProtocolTasks.load(cfg, layout)
    tasks = protocol.tasks
    method = memory_method()
    task_json = [{"item_id": t.item_id, "n_purchasers": t.n_purchasers} for t in tasks]
    results = [
        EvaluationResult(
            model_names=list(model_names),
            config=v.model_cfg.model_dump(mode="json"),
            tasks=task_json,
            runs=[],
            memory_method=method,
            label=v.label,
            seed_size=v.seed_size,
        )
        for v in variants
    ]
    # Variants sharing a model config share one fit per model and run (the seed-size sweep, the protocols:
    # no model reads evaluate.candidates, so it is left out of the key).
    groups: dict[str, list[int]] = {}
    for index, variant in enumerate(variants):
        key = variant.model_cfg.with_overrides(**{"evaluate.candidates": "sampled"}).model_dump_json()
        groups.setdefault(key, []).append(index)

    progress = tqdm(
        total=n_runs * len(model_names) * len(tasks) * len(variants), desc="evaluate", unit="campaign"
    )
    try:
        for run in range(n_runs):
            inputs = protocol.run_inputs(cfg, layout, run, data_builder)
            data = inputs.data
            sampled = {
                i: protocol.samples_for(inputs, cfg, run, v.model_cfg.evaluate.candidates)
                for i, v in enumerate(variants)
            }
            progress.update(sum(len(skipped) for _, skipped in sampled.values()) * len(model_names))
            data_summary = _data_summary(data, inputs.n_held_out)
            campaigns = {i: [s.campaign(v.seed_size) for s in sampled[i][0]] for i, v in enumerate(variants)}
            model_runs: dict[int, dict[str, ModelRun]] = {i: {} for i in range(len(variants))}
            for members in groups.values():
                for name in model_names:
                    outcome = _fit_and_score(
                        name,
                        variants[members[0]].model_cfg,
                        run,
                        cfg.seed + run,
                        data,
                        {i: campaigns[i] for i in members},
                        progress,
                    )
                    for i, (model_run, pooled) in outcome.items():
                        model_runs[i][name] = model_run
                        if run == 0 and pooled is not None:
                            results[i].pooled_run0[name] = pooled
            for i in range(len(variants)):
                samples, skipped = sampled[i]
                records = [
                    {"item_id": s.split.task.item_id, **c.counts(), **s.notes}
                    for s, c in zip(samples, campaigns[i], strict=True)
                ]
                results[i].runs.append(
                    RunRecord(run, cfg.seed + run, data_summary, records, skipped, model_runs[i])
                )
            if after_run is not None:
                after_run(results)
    finally:
        progress.close()
    return results


def _data_summary(data: LookalikeData, n_held_out: int) -> dict[str, int]:
    return {
        "n_users": data.n_users,
        "n_items": data.n_items,
        "n_edges": len(data.edges),
        "n_similarity": len(data.similarity),
        "n_held_out_edges": n_held_out,
        "has_user_profiles": int(data.user_profile_embeddings is not None),
        "n_outside_users": data.n_outside,  # outside the graph, with a training row: scored by fold-in
        "n_outside_edges": len(data.outside_edges),
    }


def _fit_and_score(
    name: str,
    model_cfg: GlomConfig,
    run: int,
    seed: int,
    data: LookalikeData,
    campaigns: dict[int, list[EvalCampaign]],
    progress: tqdm,
) -> dict[int, tuple[ModelRun, tuple[np.ndarray, np.ndarray] | None]]:
    """Fit one model once, score every campaign of every variant; a raise marks it failed, not fatal."""
    model_runs = {i: ModelRun(model=name, run=run) for i in campaigns}
    pooled: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {i: ([], []) for i in campaigns}
    stage = "create"
    done = 0
    meter = ResourceMeter()
    model = None
    try:
        # Created (and its libraries imported) before measuring: the table reports fit + score only.
        model = create_model(name, model_cfg, seed=seed)
        release_free_memory()
        with meter:
            stage = "fit"
            start = time.perf_counter()
            model.fit(data)
            fit_seconds = time.perf_counter() - start
            fixed_threshold = model.decision_threshold
            calibrate = fixed_threshold is None and model_cfg.evaluate.seed_recall is not None
            source = "model" if fixed_threshold is not None else "seed-calibrated" if calibrate else None
            for i, variant_campaigns in campaigns.items():
                model_runs[i].fit_seconds = fit_seconds
                model_runs[i].threshold_source = source
                thresholds: list[float] = []
                for item in variant_campaigns:
                    stage = f"score {item.campaign.name}"
                    start = time.perf_counter()
                    campaign, scored = scorable_campaign(item.campaign, model.n_users)
                    scores = np.asarray(model.score_campaign(campaign), dtype=np.float64)
                    if scores.shape != (len(campaign.candidates),):
                        raise ValueError(
                            f"returned {scores.shape} scores for {len(campaign.candidates)} candidates"
                        )
                    threshold = (
                        _calibrated_threshold(model, campaign, model_cfg, seed) if calibrate else fixed_threshold
                    )
                    model_runs[i].score_seconds += time.perf_counter() - start
                    if threshold is not None:
                        thresholds.append(threshold)
                    scores = unscored_last(scores, scored, threshold)
                    metrics = campaign_metrics(item.labels, scores, threshold)
                    counts = {**item.counts(), "n_positives_scored": int(item.labels[scored].sum())}
                    model_runs[i].tasks.append(TaskResult(item.item_id, counts, metrics))
                    pooled[i][0].append(item.labels)
                    pooled[i][1].append(scores)
                    progress.update(1)
                    done += 1
                model_runs[i].decision_threshold = float(np.mean(thresholds)) if thresholds else None
    except Exception as exc:  # noqa: BLE001 — any model error is reported in the table, not fatal
        for model_run in model_runs.values():
            model_run.status = "failed"
            model_run.error = f"{type(exc).__name__}: {exc}"
            model_run.failed_stage = stage
            model_run.traceback = traceback.format_exc(limit=8)
        progress.update(sum(len(c) for c in campaigns.values()) - done)
    finally:
        del model  # release the model before the next one is measured
    usage = meter.usage
    for model_run in model_runs.values():
        if usage is not None:
            model_run.peak_rss_mb = usage.peak_rss_mb
            model_run.peak_gpu_mb = usage.peak_gpu_mb
    first = next(iter(model_runs.values()))
    if first.ok:
        tqdm.write(
            f"[evaluate] run {run} {name}: fit {first.fit_seconds:.2f} s, "
            f"score {sum(m.score_seconds for m in model_runs.values()):.2f} s "
            f"({sum(len(c) for c in campaigns.values())} campaigns), peak RSS +{first.peak_rss_mb:.1f} MiB"
        )
    else:
        tqdm.write(f"[evaluate] run {run} {name}: FAILED at {first.failed_stage}: {first.error}")
    return {
        i: (
            model_runs[i],
            (np.concatenate(pooled[i][0]), np.concatenate(pooled[i][1]))
            if model_runs[i].ok and pooled[i][0]
            else None,
        )
        for i in campaigns
    }


def scorable_campaign(campaign: Campaign, n_scorable: int) -> tuple[Campaign, np.ndarray]:
    """The campaign as a model that scores rows 0..n_scorable-1 sees it (a model that does not cover users
    outside the graph gets neither candidates nor non-seeds among them), and which candidates it scores."""
    scored = np.asarray(campaign.candidates) < n_scorable
    if scored.all():
        return campaign, scored
    non_seeds = np.asarray(campaign.non_seeds)
    return replace(campaign, candidates=campaign.candidates[scored], non_seeds=non_seeds[non_seeds < n_scorable]), scored


def unscored_last(scores: np.ndarray, scored: np.ndarray, threshold: float | None) -> np.ndarray:
    """One score per candidate: the model's where it scored, and below every score (and the threshold)
    where it could not, so the users it cannot return sit at the end of its ranking, tied: what a real
    campaign gets from it."""
    if scored.all():
        return scores
    floor = min(float(scores.min()) if len(scores) else 0.0, threshold if threshold is not None else np.inf) - 1.0
    out = np.full(len(scored), floor, dtype=np.float64)
    out[scored] = scores
    return out


def _calibrated_threshold(model: LookalikeModel, campaign: Campaign, cfg: GlomConfig, seed: int) -> float | None:
    """T for one campaign from its held-out seeds, scored by the model itself as candidates would be
    (``expand/calibration.py``); the campaign's non-seeds stay as they are for per-campaign learners."""

    def score(rest: np.ndarray, held: np.ndarray) -> np.ndarray:
        fold = replace(campaign, name=f"{campaign.name}/calibration", seeds=rest, candidates=held)
        return np.asarray(model.score_campaign(fold), dtype=np.float64)

    return seed_calibrated_threshold(
        campaign.seeds,
        score,
        cfg.evaluate.seed_recall,
        folds=cfg.evaluate.calibration_folds,
        seed=campaign_seed(seed, campaign.name),
    )
