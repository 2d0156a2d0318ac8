"""`glom expand-batch` as a Spark job (``--set backend=spark``): campaigns × user-embedding partitions.

The run's trained model is the local stage's (``train.model``, ``models/saved.py``); its retrieval vectors
(what the local stage scores) are staged once as Parquet, read by Spark and range-partitioned on the row
index. Each task scores its block of users against every
campaign of a chunk with the same arithmetic as ``expand/batch.py`` (unit rows times the chunk's query
matrix, the aggregation's reduction, seeds masked, the ``T − RESCORE_SLACK`` floor) and keeps, per
campaign, its block's best ``k + SEARCH_MARGIN`` (ties: lower row) with their exact scores
(``aggregation.exact_similarity``, row-local arithmetic, so a task computes what the driver would).
The per-block lists are merged by a window per campaign into the global best ``k + SEARCH_MARGIN`` —
the short list the local running top k holds — and each campaign's short list ends exactly as the online
path does (``expander.select_ranked``: T, then the top k by exact score, ties by lower row). The output
Parquet (campaign, rank, user_id, score) and its summary are ``batch_stage``'s, written the same way.

Only the chunk's queries and seeds travel to the tasks (one campaign's seeds are a few KB); the embedding
matrix is never collected. The driver holds the merged short lists: campaigns × (k + margin) rows.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from glom_plugin.config import GlomConfig
from glom_plugin.expand.aggregation import AGGREGATIONS, SeedSet, exact_similarity
from glom_plugin.expand.batch import (
    STATE_ENTRIES,
    BatchCampaign,
    BatchRanking,
    _aggregate,
    _float32_at_least,
    _inverse_norms,
    _queries,
    campaign_chunks,
)
from glom_plugin.expand.batch_stage import (
    BatchSummary,
    CampaignSpec,
    per_campaign_tables,
    ranking_table,
    read_campaigns,
    resolve_groups,
    write_batch_output,
)
from glom_plugin.expand.expander import RESCORE_SLACK, SEARCH_MARGIN, select_ranked
from glom_plugin.expand.topk import top_k_order
from glom_plugin.layout import RunLayout
from glom_plugin.models.artifact import TrainedModel
from glom_plugin.models.base import EmbeddingLookalikeModel
from glom_plugin.models.saved import load_model, trained_model_dir

CANDIDATE_DDL = "campaign int, row long, fast float, exact float"
ROWS_PER_PARTITION = 1 << 16  # users per Spark task (the unit of the campaigns × users grid)


def block_candidates(
    rows: np.ndarray,
    block: np.ndarray,
    chunk: list[BatchCampaign],
    seed_sets: list[SeedSet],
    queries: np.ndarray,
    starts: np.ndarray | None,
    aggregation: str,
    n_users: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(campaign, row, fast score, exact score) of each campaign's best ``k + SEARCH_MARGIN`` users of one
    block (``rows`` ascending, ``block`` their embeddings): the entries this block contributes to the local
    running top k, with their exact re-scores."""
    order = np.argsort(rows, kind="stable")
    rows, block = rows[order], block[order]
    units = block * _inverse_norms(block)[:, None]
    scores = _aggregate(units @ queries, aggregation, starts)
    out_c, out_r, out_f, out_e = [], [], [], []
    for c, campaign in enumerate(chunk):
        column = scores[:, c]
        floor = _float32_at_least(None if campaign.threshold is None else campaign.threshold - RESCORE_SLACK)
        eligible = (column > floor) & ~np.isin(rows, campaign.seed_rows)  # seeds are never lookalikes
        positions = np.flatnonzero(eligible)
        keep = positions[top_k_order(column[positions], min(campaign.k + SEARCH_MARGIN, n_users))]
        keep = np.sort(keep)
        out_c.append(np.full(len(keep), c, dtype=np.int32))
        out_r.append(rows[keep])
        out_f.append(column[keep].astype(np.float32))
        out_e.append(exact_similarity(block[keep], seed_sets[c], aggregation).astype(np.float32))
    return tuple(np.concatenate(parts) if parts else np.empty(0) for parts in (out_c, out_r, out_f, out_e))  # type: ignore[return-value]


def _score_task(chunk: list[BatchCampaign], seed_sets: list[SeedSet], queries: np.ndarray,
                starts: np.ndarray | None, aggregation: str, n_users: int) -> Any:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        table = pa.Table.from_batches(list(batches))
        if table.num_rows == 0:
            return
        rows = table.column("row").to_numpy().astype(np.int64)
        # Spark reads the fixed-size list as a variable one: its values, row after row, are the block
        values = table.column("embedding").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        block = values.astype(np.float32).reshape(len(rows), -1)
        c, r, f, e = block_candidates(rows, block, chunk, seed_sets, queries, starts, aggregation, n_users)
        yield pa.RecordBatch.from_arrays(
            [pa.array(c, pa.int32()), pa.array(r, pa.int64()), pa.array(f, pa.float32()), pa.array(e, pa.float32())],
            names=["campaign", "row", "fast", "exact"],
        )

    return run


def rank_campaigns_spark(
    embeddings_path: Path, embeddings: np.ndarray, campaigns: list[BatchCampaign], aggregation: str
) -> Iterator[BatchRanking]:
    """``batch.rank_campaigns`` as a Spark job over the embeddings file; same rankings, same order.
    ``embeddings``: the model's matrix, used on the driver only for the chunk's seeds and queries."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from glom_plugin.spark_session import get_spark_session

    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; choose one of {AGGREGATIONS}")
    spark = get_spark_session("glom-expand-batch")
    n_users = len(embeddings)
    users = spark.read.parquet(str(embeddings_path)).select(
        F.col("_metadata.row_index").alias("row"), "embedding"
    )
    partitions = max(1, -(-n_users // ROWS_PER_PARTITION))
    users = users.repartitionByRange(partitions, "row").persist()
    for chunk in campaign_chunks(campaigns, aggregation, STATE_ENTRIES):
        queries, starts = _queries(embeddings, chunk, aggregation)
        seed_sets = [SeedSet.of(embeddings[c.seed_rows]) for c in chunk]
        task = _score_task(chunk, seed_sets, queries, starts, aggregation, n_users)
        candidates = users.mapInArrow(task, CANDIDATE_DDL)
        ks = spark.createDataFrame([(i, min(c.k + SEARCH_MARGIN, n_users)) for i, c in enumerate(chunk)],
                                   "campaign int, kk int")
        rank = F.row_number().over(Window.partitionBy("campaign").orderBy(F.desc("fast"), F.asc("row")))
        merged = (candidates.withColumn("_rank", rank).join(F.broadcast(ks), "campaign")
                  .filter(F.col("_rank") <= F.col("kk")).select("campaign", "row", "exact"))
        table = merged.toArrow()
        campaign_of = table.column("campaign").to_numpy()
        order = np.lexsort((table.column("row").to_numpy(), campaign_of))
        campaign_of = campaign_of[order]
        rows = table.column("row").to_numpy()[order]
        exact = table.column("exact").to_numpy()[order]
        bounds = np.searchsorted(campaign_of, np.arange(len(chunk) + 1))
        for i, campaign in enumerate(chunk):
            lo, hi = bounds[i], bounds[i + 1]
            kept_rows, scores = select_ranked(rows[lo:hi], exact[lo:hi], campaign.k, campaign.threshold)
            yield BatchRanking(campaign, kept_rows, scores.astype(np.float32))
    users.unpersist()


def run_expand_batch_spark(
    cfg: GlomConfig, layout: RunLayout, campaigns_path: Path, out_path: Path, progress: bool = True
) -> BatchSummary:
    """``batch_stage.run_expand_batch_stage`` on Spark: same arguments, model, output Parquet and summary.
    Embedding models are scored as the Spark job; a per-campaign model (no shared matrix product to split)
    runs each campaign through its own ``expand``, as the local stage does."""

    out_path = Path(out_path)
    if out_path.suffix.lower() != ".parquet":
        raise ValueError(f"{out_path}: batch output must end in .parquet")
    specs = read_campaigns(campaigns_path)
    fitted = load_model(trained_model_dir(cfg, layout))
    summary = BatchSummary()
    if isinstance(fitted, EmbeddingLookalikeModel):
        tables = _spark_tables(fitted.as_trained(), specs, cfg, summary, out_path.parent)
    else:
        tables = per_campaign_tables(fitted, specs, cfg.expand, summary)
    return write_batch_output(tables, out_path, summary)


def _spark_tables(
    model: TrainedModel, specs: list[CampaignSpec], cfg: GlomConfig, summary: BatchSummary, scratch: Path
) -> Iterator[pa.Table]:
    """The retrieval vectors the local stage scores, staged once as Parquet (row groups of
    ``ROWS_PER_PARTITION`` users) for the Spark job; each campaign's ranking as an output table."""
    groups = resolve_groups(model, specs, cfg.expand, summary)
    with tempfile.TemporaryDirectory(prefix=f".expand-batch-{os.getpid()}-", dir=scratch) as tmp:
        path = Path(tmp) / "embeddings.parquet"
        dim = model.user_embeddings.shape[1]
        flat = pa.array(np.ascontiguousarray(model.user_embeddings).reshape(-1), type=pa.float32())
        pq.write_table(pa.table({"embedding": pa.FixedSizeListArray.from_arrays(flat, dim)}), path,
                       row_group_size=ROWS_PER_PARTITION)
        for aggregation, group in groups.items():
            for ranking in rank_campaigns_spark(path, model.user_embeddings, group, aggregation):
                yield ranking_table(ranking, model.user_ids)
