"""``glom expand-batch``: a file of campaigns -> one Parquet of ranked lookalikes, written as it is scored.

Campaigns come as JSONL (one object a line: ``{"campaign": "a", "seed_ids": [...], "k": 100,
"threshold": 0.6, "seed_recall": 0.5, "aggregation": "mean"}``; only ``seed_ids`` is required) or as a
directory of seed files (``expand.read_seed_file``; the campaign is the file's stem). Scoring is
``expand/batch.py``'s blocked matrix product, so the lookalikes are exactly the online path's on an exact
index. Each chunk's campaigns are appended to the Parquet file as a row group once scored; the file is
written under a temporary name and renamed when complete. A campaign none of whose seeds is known is
reported in the summary (``<out>.summary.json``), not fatal; so is one with fewer known seeds than
``expand.min_seeds`` (refused, or warned about with ``expand.min_seeds_action=warn``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from glom_plugin.config import ExpandConfig, GlomConfig
from glom_plugin.data.hashing import looks_hashed
from glom_plugin.expand.aggregation import AGGREGATIONS
from glom_plugin.expand.batch import (
    STATE_ENTRIES,
    BatchCampaign,
    BatchRanking,
    campaign_chunks,
    rank_campaigns,
)
from glom_plugin.expand.expander import calibrated_threshold, check_min_seeds, read_seed_file, resolve_seeds
from glom_plugin.layout import RunLayout
from glom_plugin.models.artifact import TrainedModel
from glom_plugin.models.base import EmbeddingLookalikeModel, LookalikeModel
from glom_plugin.models.saved import load_model, trained_model_dir

OUTPUT_SCHEMA = pa.schema(
    [("campaign", pa.string()), ("rank", pa.int32()), ("user_id", pa.string()), ("score", pa.float32())]
)
ROW_GROUP_ROWS = 65_536  # lookalike rows per Parquet row group (written as soon as they are scored)
_FIELDS = {"campaign", "seed_ids", "k", "threshold", "seed_recall", "aggregation"}


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    seed_ids: list[str]
    k: int | None = None
    threshold: float | None = None
    seed_recall: float | None = None
    aggregation: str | None = None


@dataclass
class BatchSummary:
    campaigns: int = 0
    scored: int = 0
    lookalikes: int = 0
    # per campaign: how many seed ids the model does not know, and those of them shaped like hashed ids
    # (a raw id passed by mistake is counted, never written; issue 14)
    unknown_seeds: dict[str, dict] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)

    def note_seeds(self, campaign: str, unknown: list[str], warning: str | None) -> None:
        """A scored campaign's unknown seeds (count, and only the hashed-looking ones) and k-anonymity warning."""
        if unknown:
            self.unknown_seeds[campaign] = {"n": len(unknown), "hashed": [s for s in unknown if looks_hashed(s)]}
        if warning:
            self.warnings[campaign] = warning


def read_campaigns(path: str | Path) -> list[CampaignSpec]:
    """JSONL of campaigns, or a directory whose files are seed lists; errors name the file and line."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise ValueError(f"{path}: the campaign directory has no seed files")
        return [CampaignSpec(name=p.stem, seed_ids=read_seed_file(p)) for p in files]
    if not path.exists():
        raise FileNotFoundError(f"campaign file {path} does not exist")
    specs: list[CampaignSpec] = []
    with path.open() as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            specs.append(_campaign_from_json(line, f"{path}, line {number}", default_name=f"campaign-{len(specs) + 1}"))
    if not specs:
        raise ValueError(f"{path}: no campaigns found")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: campaign names repeat: {sorted({n for n in names if names.count(n) > 1})[:5]}")
    return specs


def _campaign_from_json(line: str, where: str, default_name: str) -> CampaignSpec:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not JSON ({err.msg})") from err
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
    extra = set(record) - _FIELDS
    if extra:
        raise ValueError(f"{where}: unknown field(s) {sorted(extra)}; allowed: {sorted(_FIELDS)}")
    seeds = record.get("seed_ids")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, str) and s for s in seeds):
        raise ValueError(f"{where}, field seed_ids: a non-empty list of hashed user ids is required")
    k = record.get("k")
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
        raise ValueError(f"{where}, field k: must be an integer >= 1, got {k!r}")
    aggregation = record.get("aggregation")
    if aggregation is not None and aggregation not in AGGREGATIONS:
        raise ValueError(f"{where}, field aggregation: {aggregation!r} is not one of {AGGREGATIONS}")
    threshold, seed_recall = record.get("threshold"), record.get("seed_recall")
    if threshold is not None and (not isinstance(threshold, int | float) or not -1.0 <= threshold <= 1.0):
        raise ValueError(f"{where}, field threshold: must be a number in [-1, 1], got {threshold!r}")
    if seed_recall is not None and (not isinstance(seed_recall, int | float) or not 0.0 < seed_recall <= 1.0):
        raise ValueError(f"{where}, field seed_recall: must be a number in (0, 1], got {seed_recall!r}")
    return CampaignSpec(
        name=str(record.get("campaign") or default_name),
        seed_ids=seeds,
        k=k,
        threshold=threshold,
        seed_recall=seed_recall,
        aggregation=aggregation,
    )


class SortedIds:
    """Hashed id -> row by binary search over a sorted copy of the ids: vectorised over every seed of
    every campaign, and ~5 bytes per user beside the ids instead of a dict's ~100."""

    def __init__(self, user_ids: np.ndarray) -> None:
        self.order = np.argsort(user_ids, kind="stable")
        self.sorted = user_ids[self.order]

    def rows(self, ids: list[str]) -> np.ndarray:
        """Row of each id, -1 when unknown."""
        query = np.asarray(ids, dtype=self.sorted.dtype if len(ids) else str)
        pos = np.clip(np.searchsorted(self.sorted, query), 0, max(len(self.sorted) - 1, 0))
        found = (self.sorted[pos] == query) if len(self.sorted) else np.zeros(len(ids), bool)
        # an id longer than the stored width would be truncated by the cast: never a match
        found &= np.array([len(s) <= self.sorted.dtype.itemsize // 4 for s in ids], dtype=bool)
        return np.where(found, self.order[pos], -1)


def _resolve(
    spec: CampaignSpec, ids: SortedIds, model: TrainedModel, cfg: ExpandConfig
) -> tuple[BatchCampaign, list[str], str | None]:
    unique = list(dict.fromkeys(spec.seed_ids))
    rows = ids.rows(unique)
    unknown = [s for s, r in zip(unique, rows.tolist(), strict=True) if r < 0]
    seed_rows = rows[rows >= 0].astype(np.int64)
    if len(seed_rows) == 0:
        raise ValueError(f"none of the {len(unique)} seed ids is known to model {model.model_name!r}")
    warning = check_min_seeds(len(seed_rows), cfg)  # k-anonymity, as `glom expand`
    campaign_cfg = cfg.model_copy(
        update={k: v for k, v in (("threshold", spec.threshold), ("seed_recall", spec.seed_recall)) if v is not None}
    )
    threshold = calibrated_threshold(model.user_embeddings, seed_rows, campaign_cfg)
    return BatchCampaign(spec.name, seed_rows, int(spec.k or cfg.top_k), threshold), unknown, warning


def resolve_groups(
    model: TrainedModel, specs: list[CampaignSpec], cfg: ExpandConfig, summary: BatchSummary
) -> dict[str, list[BatchCampaign]]:
    """Campaigns resolved to seed rows and grouped by aggregation, in input order; unknown seeds, warnings
    and errors go to ``summary`` (the local and the Spark stage share this)."""
    ids = SortedIds(model.user_ids)
    groups: dict[str, list[BatchCampaign]] = {}
    for spec in specs:
        summary.campaigns += 1
        try:
            campaign, unknown, warning = _resolve(spec, ids, model, cfg)
        except ValueError as err:
            summary.errors[spec.name] = str(err)
            continue
        summary.note_seeds(spec.name, unknown, warning)
        groups.setdefault(spec.aggregation or cfg.aggregation, []).append(campaign)
    return groups


def rank_specs(
    model: TrainedModel, specs: list[CampaignSpec], cfg: ExpandConfig, summary: BatchSummary, progress: bool = False
) -> Iterator[BatchRanking]:
    """Resolve every campaign, then score them by aggregation group (one blocked pass per chunk)."""
    groups = resolve_groups(model, specs, cfg, summary)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        passes = sum(_passes(g, a) for a, g in groups.items())
        bar = tqdm(total=passes * model.n_users, unit="user", unit_scale=True, desc="expand-batch")
    try:
        for aggregation, campaigns in groups.items():
            yield from rank_campaigns(
                model.user_embeddings, campaigns, aggregation, progress=bar.update if bar else None, threads=cfg.batch_threads
            )
    finally:
        if bar is not None:
            bar.close()


def _passes(campaigns: list[BatchCampaign], aggregation: str) -> int:
    return sum(1 for _ in campaign_chunks(campaigns, aggregation, STATE_ENTRIES))


def run_expand_batch_stage(
    cfg: GlomConfig, layout: RunLayout, campaigns_path: Path, out_path: Path, progress: bool = True
) -> BatchSummary:
    """The run's trained model (``train.model``, any family; ``models/glm`` for older runs) + a campaign
    file -> ``out_path`` (Parquet: campaign, rank, user_id, score) and ``<out>.summary.json``."""
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".parquet":
        raise ValueError(f"{out_path}: batch output must end in .parquet")
    specs = read_campaigns(campaigns_path)
    fitted = load_model(trained_model_dir(cfg, layout))
    summary = BatchSummary()
    if isinstance(fitted, EmbeddingLookalikeModel):  # one blocked pass over the retrieval vectors
        model = fitted.as_trained()
        tables = (ranking_table(r, model.user_ids) for r in rank_specs(model, specs, cfg.expand, summary, progress=progress))
    else:  # a per-campaign model fits each campaign, as it does online
        tables = per_campaign_tables(fitted, specs, cfg.expand, summary)
    return write_batch_output(tables, out_path, summary)


def write_batch_output(tables: Iterable[pa.Table], out_path: Path, summary: BatchSummary) -> BatchSummary:
    """Stream the campaigns' tables into one Parquet file (row groups of ~``ROW_GROUP_ROWS``, written then
    renamed) and ``<out>.summary.json`` beside it; counts go to ``summary``."""
    from glom_plugin.storage import atomic_path, write_json

    with atomic_path(out_path) as tmp, pq.ParquetWriter(tmp, OUTPUT_SCHEMA) as writer:
        pending: list[pa.Table] = []
        for table in tables:
            pending.append(table)
            summary.scored += 1
            summary.lookalikes += len(table)
            if sum(len(t) for t in pending) >= ROW_GROUP_ROWS:
                writer.write_table(pa.concat_tables(pending))
                pending = []
        if pending or summary.scored == 0:
            writer.write_table(pa.concat_tables(pending) if pending else OUTPUT_SCHEMA.empty_table())
    write_json(summary.__dict__, out_path.with_name(out_path.name + ".summary.json"))
    return summary


def per_campaign_tables(
    model: LookalikeModel, specs: list[CampaignSpec], cfg: ExpandConfig, summary: BatchSummary
) -> Iterator[pa.Table]:
    """Each campaign through the model's own ``expand`` (per-campaign models have no shared matrix product)."""
    from tqdm.auto import tqdm

    for spec in tqdm(specs, desc="expand-batch", unit="campaign"):
        summary.campaigns += 1
        try:
            seeds = list(dict.fromkeys(spec.seed_ids))
            _, used, unknown = resolve_seeds(model, seeds)
            warning = check_min_seeds(len(used), cfg)
            campaign_cfg = cfg.model_copy(update={"threshold": spec.threshold} if spec.threshold is not None else {})
            result = model.expand(seeds, int(spec.k or cfg.top_k), config=campaign_cfg)
        except ValueError as err:
            summary.errors[spec.name] = str(err)
            continue
        summary.note_seeds(spec.name, unknown, warning)
        yield lookalike_table(spec.name, result.user_ids, result.scores)


def ranking_table(ranking: BatchRanking, user_ids: np.ndarray) -> pa.Table:
    return lookalike_table(ranking.campaign.name, user_ids[ranking.rows], ranking.scores)


def lookalike_table(campaign: str, user_ids: np.ndarray, scores: np.ndarray) -> pa.Table:
    """One campaign's ranked lookalikes (best first) in the output schema."""
    n = len(user_ids)
    return pa.table(
        {
            "campaign": pa.array([campaign] * n, pa.string()),
            "rank": pa.array(np.arange(1, n + 1, dtype=np.int32)),
            "user_id": pa.array(np.asarray(user_ids).tolist(), pa.string()),
            "score": pa.array(np.asarray(scores).astype(np.float32)),
        },
        schema=OUTPUT_SCHEMA,
    )