"""Ingestion on Spark: the same tables, rejects and report as ``data.ingest.run_ingest``, computed by a
Spark job so the dedup, the k-core filter and the per-user tables scale past one machine.

How the work is split, and why:

* **Parse + validate + hash** run inside Spark tasks (``mapInArrow`` over the interaction files): each
  task runs the *same* reader (``data/readers``) over its file and the *same* row contract
  (``ingest.validate_chunk``), salted hash (``hashing.hash_user_ids``) and duplicate digest as the local
  path, so a row is accepted or rejected for the same reason with the same file, line and field.
  A task is one file (Amazon 2023 publishes one file per category; a gzip stream cannot be split).
* **Exact-duplicate removal** is a window over the digest, the earliest (file, line) kept — the row the
  local streaming pass keeps. **k-core** is the local rounds as Spark aggregations and semi-joins.
* The **outputs** are the local artifacts: ``interactions`` in file/line order, ``users`` sorted by id,
  ``items`` by the same metadata pass (``ingest.write_items``), ``rejects.jsonl`` replayed through the
  same ``RejectLog`` (ordered by file and line, where the local stream interleaves reasons per chunk),
  ``ingest_report.json`` with the same fields; written to a staging folder and renamed together.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from glom_plugin.config import DataConfig, GlomConfig
from glom_plugin.data.hashing import hash_user_ids
from glom_plugin.data.ingest import (
    _DIGEST_COLUMNS,
    MAX_KCORE_ROUNDS,
    IngestError,
    IngestReport,
    _to_table,
    check_rejects,
    validate_chunk,
    write_items,
)
from glom_plugin.data.readers import create_reader
from glom_plugin.data.readers.base import DEFAULT_CHUNK_ROWS, RatingScale
from glom_plugin.data.rejects import DUPLICATE, RejectLog
from glom_plugin.data.schema import INTERACTIONS_SCHEMA, USERS_SCHEMA
from glom_plugin.layout import RunLayout
from glom_plugin.parquet_spark import write_single_parquet
from glom_plugin.stages.ingest import resolve_source
from glom_plugin.stages.meter import StageMeter

ROW, REJECT, PARSED, INVALID = "row", "reject", "parsed", "invalid"
# One schema for everything a parse task emits: accepted rows, rejects and two counters.
_INTERACTION_DDL = (
    "user_id string, item_id string, rating double, rating_norm double, review_title string, text string, "
    "timestamp_ms long, verified_purchase boolean, helpful_votes long"
)
TASK_DDL = (
    f"kind string, file_idx int, line long, {_INTERACTION_DDL}, digest long, "
    "r_file string, r_field string, r_reason string, r_detail string, r_rows long"
)


def _task_schema() -> pa.Schema:
    fields = [pa.field("kind", pa.string()), pa.field("file_idx", pa.int32()), pa.field("line", pa.int64())]
    fields += [f.with_nullable(True) for f in INTERACTIONS_SCHEMA]
    fields += [pa.field("digest", pa.int64())]
    fields += [pa.field(name, pa.string()) for name in ("r_file", "r_field", "r_reason", "r_detail")]
    fields += [pa.field("r_rows", pa.int64())]
    return pa.schema(fields)


def _batch(columns: dict[str, Any], n: int, schema: pa.Schema) -> pa.RecordBatch:
    arrays = [
        columns[f.name] if f.name in columns else pa.nulls(n, f.type) for f in schema
    ]
    return pa.RecordBatch.from_arrays([pa.array(a, f.type) if not isinstance(a, pa.Array) else a.cast(f.type)
                                       for a, f in zip(arrays, schema, strict=True)], schema=schema)


def parse_files_task(
    reader_name: str, data_cfg: DataConfig, sources: list[str], salt: str, scale: RatingScale, chunk_rows: int
):
    """The ``mapInArrow`` function: each input row (file_idx, source) is parsed by the reader; accepted
    rows come out hashed with their digest, rejects as records, then the task's two counters."""
    schema = _task_schema()

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for file_idx in batch.column("file_idx").to_pylist():
                yield from _parse_one(file_idx, sources[file_idx])

    def _parse_one(file_idx: int, source: str) -> Iterator[pa.RecordBatch]:
        with tempfile.TemporaryDirectory(prefix="glom-ingest-task-") as tmp:
            rejects = RejectLog(Path(tmp) / "rejects.jsonl")
            reader = create_reader(reader_name, data_cfg, Path(source), rejects, chunk_rows)
            parsed = invalid = 0
            for chunk in reader.interaction_chunks():
                parsed += len(chunk.frame)
                rows = validate_chunk(chunk, scale, rejects)
                invalid += len(chunk.frame) - len(rows)
                if rows.empty:
                    continue
                rows["user_id"] = hash_user_ids(rows["user_id"].to_numpy(), salt)
                digest = pd.util.hash_pandas_object(rows[_DIGEST_COLUMNS].astype(object), index=False).to_numpy()
                rows["rating_norm"] = scale.normalize(rows["rating"].to_numpy())
                table = _to_table(rows, INTERACTIONS_SCHEMA)
                n = table.num_rows
                columns: dict[str, Any] = {name: table.column(name).combine_chunks() for name in table.column_names}
                columns.update(
                    kind=pa.array([ROW] * n), file_idx=pa.array(np.full(n, file_idx, dtype=np.int32)),
                    line=pa.array(rows["_line"].to_numpy(dtype=np.int64)),
                    digest=pa.array(digest.astype(np.uint64).view(np.int64)),
                )
                yield _batch(columns, n, schema)
            path = rejects.commit()
            records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
        if records:
            yield _batch(
                {
                    "kind": [REJECT] * len(records),
                    "file_idx": [file_idx] * len(records),
                    "line": [r["line"] for r in records],
                    "r_file": [r["file"] for r in records],
                    "r_field": [r["field"] for r in records],
                    "r_reason": [r["reason"] for r in records],
                    "r_detail": [r["detail"] for r in records],
                    "r_rows": [int(r.get("rows", 1)) for r in records],
                },
                len(records),
                schema,
            )
        yield _batch({"kind": [PARSED, INVALID], "file_idx": [file_idx] * 2, "r_rows": [parsed, invalid]}, 2, schema)

    return run


def run_ingest_spark(
    cfg: GlomConfig, layout: RunLayout, chunk_rows: int = DEFAULT_CHUNK_ROWS, echo: Any = print
) -> IngestReport:
    """``run_ingest`` on Spark: same arguments, same outputs, same errors (``IngestError``)."""
    from glom_plugin.spark_session import get_spark_session

    started = time.perf_counter()
    meter = StageMeter()
    reader_name, source = resolve_source(cfg, layout)
    outputs = {
        "interactions": layout.interactions,
        "items": layout.items,
        "users": layout.users,
        "outside_interactions": layout.outside_interactions,
        "rejects": layout.rejects,
        "ingest_report": layout.ingest_report,
    }
    layout.ingest_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".staging-{os.getpid()}-", dir=layout.ingest_dir))
    rejects = RejectLog(layout.rejects)
    try:
        reader = create_reader(reader_name, cfg.data, source, rejects, chunk_rows)
        scale = reader.rating_scale()
        files = [str(p) for p in reader.interaction_files()]
        meta = reader.meta_file()
        report = IngestReport(
            source_format=cfg.data.source_format,
            source_files=files,
            meta_file=str(meta) if meta else None,
            rating_min=scale.min,
            rating_max=scale.max,
            min_user_interactions=cfg.data.min_user_interactions,
            min_item_interactions=cfg.data.min_item_interactions,
        )
        spark = get_spark_session("glom-ingest")
        # One task per file; a single-file layout keeps the reader's own source (its meta lookup and
        # messages are then exactly the local ones).
        sources = files if len(files) > 1 else [str(source)]
        with meter.section("parse"):
            tasks = spark.createDataFrame([(i,) for i in range(len(sources))], "file_idx int").repartition(
                max(1, len(sources)), "file_idx"
            )
            task = parse_files_task(reader_name, cfg.data, sources, cfg.id_salt(), scale, chunk_rows)
            raw_dir = stage / "raw"
            tasks.mapInArrow(task, TASK_DDL).write.parquet(str(raw_dir))  # parsed once, read by each step below
            raw = spark.read.parquet(str(raw_dir))
        with meter.section("dedup"):
            kept = _dedup_and_replay(raw, files, rejects, report)
        check_rejects(cfg, rejects, files, report, layout)
        with meter.section("kcore"):
            final = _kcore(kept, cfg, report)
        with meter.section("final_pass"):
            _write_outputs(final, stage, report)
            _write_outside(kept, final, stage, report)
        with meter.section("items"):
            keep_items = pa.array(sorted(r[0] for r in final.select("item_id").distinct().collect()), pa.string())
            write_items(reader, keep_items, stage / "items.parquet", report)
        report.rejects_by_reason = dict(rejects.by_reason)
        report.meta_rejected = sum(n for f, n in rejects.errors_by_file.items() if f not in set(files))
        report.elapsed_s = round(time.perf_counter() - started, 3)
        report.outputs = {name: str(path) for name, path in outputs.items()}
        meter.close()
        report.profile = meter.figures()
        report_path = stage / "ingest_report.json"
        report_path.write_text(json.dumps(asdict(report), indent=2, sort_keys=True))
        for name in ("interactions", "items", "users", "outside_interactions"):
            os.replace(stage / f"{name}.parquet", outputs[name])
        rejects.commit()
        os.replace(report_path, layout.ingest_report)
    except IngestError:
        rejects.commit()
        for name in ("interactions", "items", "users", "outside_interactions", "ingest_report"):
            outputs[name].unlink(missing_ok=True)
        raise
    except BaseException:
        rejects.discard()
        raise
    finally:
        meter.close()
        shutil.rmtree(stage, ignore_errors=True)
    echo(report.summary())
    return report


def _dedup_and_replay(raw: Any, files: list[str], rejects: RejectLog, report: IngestReport) -> Any:
    """Drop exact duplicates (earliest file/line kept), replay every reject into ``rejects`` in file/line
    order, and fill the first-pass counts of ``report`` as ``ingest.first_pass`` does."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    rows = raw.filter(F.col("kind") == ROW)
    ranked = rows.withColumn(
        "_rank", F.row_number().over(Window.partitionBy("digest").orderBy("file_idx", "line"))
    )
    ranked = ranked.persist()
    duplicates = ranked.filter(F.col("_rank") > 1).select(
        F.lit(REJECT).alias("kind"), "file_idx", "line", F.lit(None).cast("string").alias("r_file"),
        F.lit(None).cast("string").alias("r_field"), F.lit(DUPLICATE).alias("r_reason"),
        F.lit("exact duplicate of an earlier review").alias("r_detail"), F.lit(1).cast("long").alias("r_rows"),
    )
    reject_rows = raw.filter(F.col("kind") == REJECT).select(*duplicates.columns).unionByName(duplicates)
    for record in reject_rows.orderBy("file_idx", F.col("line").asc_nulls_first()).toLocalIterator():
        file = record["r_file"] if record["r_file"] is not None else files[record["file_idx"] if len(files) > 1 else 0]
        rejects.add(file, record["line"], record["r_field"], record["r_reason"], record["r_detail"] or "",
                    rows=int(record["r_rows"]))
    counts = {r["kind"]: int(r["n"]) for r in raw.filter(F.col("kind").isin(PARSED, INVALID))
              .groupBy("kind").agg(F.sum("r_rows").alias("n")).collect()}
    kept = ranked.filter(F.col("_rank") == 1).drop("_rank", "kind", "digest")
    kept = kept.select("file_idx", "line", *INTERACTIONS_SCHEMA.names).persist()
    report.duplicates = int(rejects.by_reason.get(DUPLICATE, 0))
    sizes = kept.agg(F.count(F.lit(1)), F.countDistinct("user_id"), F.countDistinct("item_id")).first()
    report.rows_accepted, report.users_before_filter, report.items_before_filter = (int(v) for v in sizes)
    file_set = set(files)
    report.rows_rejected = sum(n for f, n in rejects.errors_by_file.items() if f in file_set)
    report.rows_read = counts.get(PARSED, 0) + report.rows_rejected - counts.get(INVALID, 0)
    ranked.unpersist()
    return kept


def _kcore(kept: Any, cfg: GlomConfig, report: IngestReport) -> Any:
    """``ingest.kcore`` as Spark rounds: rows of users with < min_user and items with < min_item rows
    are dropped and the rest recounted until both hold (at most ``MAX_KCORE_ROUNDS`` rounds)."""
    from pyspark.sql import functions as F

    min_u, min_i = cfg.data.min_user_interactions, cfg.data.min_item_interactions
    current = kept
    rounds = 0
    while True:
        users = current.groupBy("user_id").count()
        items = current.groupBy("item_id").count()
        weak = bool(users.filter(F.col("count") < min_u).select(F.lit(1).alias("w")).limit(1).unionByName(
            items.filter(F.col("count") < min_i).select(F.lit(1).alias("w")).limit(1)).take(1))
        if not weak or rounds >= MAX_KCORE_ROUNDS:
            if weak:  # the local path applies the last round's keep lists once more
                current = _keep(current, users, items, min_u, min_i)
            break
        rounds += 1
        current = _keep(current, users, items, min_u, min_i).localCheckpoint()
    report.kcore_rounds = rounds
    return current.persist()


def _keep(rows: Any, users: Any, items: Any, min_u: int, min_i: int) -> Any:
    from pyspark.sql import functions as F

    strong_users = users.filter(F.col("count") >= min_u).select("user_id")
    strong_items = items.filter(F.col("count") >= min_i).select("item_id")
    return rows.join(strong_users, "user_id", "left_semi").join(strong_items, "item_id", "left_semi")


def _write_outputs(final: Any, stage: Path, report: IngestReport) -> None:
    """``interactions.parquet`` (file/line order) and ``users.parquet`` (sorted ids), with the counts
    of ``ingest.final_pass``."""
    from pyspark.sql import functions as F

    has_text = (F.col("text").isNotNull() & (F.length("text") > 0)).cast("long")
    sizes = final.agg(F.count(F.lit(1)), F.countDistinct("user_id"), F.sum(has_text)).first()
    report.n_interactions, report.n_users = int(sizes[0]), int(sizes[1])
    report.filtered_interactions = report.rows_accepted - report.n_interactions
    report.filtered_users = report.users_before_filter - report.n_users
    if report.n_interactions == 0:
        raise IngestError(
            f"no interaction survives min_user_interactions={report.min_user_interactions} and "
            f"min_item_interactions={report.min_item_interactions} ({report.rows_accepted:,} valid rows before filtering)"
        )
    report.share_with_text = round(int(sizes[2] or 0) / report.n_interactions, 6)
    write_single_parquet(final, stage / "interactions.parquet", INTERACTIONS_SCHEMA, order_by=["file_idx", "line"])
    users = final.groupBy("user_id").agg(
        F.count(F.lit(1)).alias("n_interactions"), F.sum(has_text).alias("n_with_text")
    )
    write_single_parquet(users, stage / "users.parquet", USERS_SCHEMA, order_by=["user_id"])


def _write_outside(kept: Any, final: Any, stage: Path, report: IngestReport) -> None:
    """``outside_interactions.parquet`` as ``ingest.final_pass`` writes it: accepted rows of users the
    k-core dropped with items it kept (file/line order)."""
    from pyspark.sql import functions as F

    outside = kept.join(final.select("user_id").distinct(), "user_id", "left_anti").join(
        final.select("item_id").distinct(), "item_id", "left_semi"
    ).persist()
    sizes = outside.agg(F.count(F.lit(1)), F.countDistinct("user_id")).first()
    report.outside_interactions, report.outside_users = int(sizes[0]), int(sizes[1])
    write_single_parquet(outside, stage / "outside_interactions.parquet", INTERACTIONS_SCHEMA,
                         order_by=["file_idx", "line"])
    outside.unpersist()
