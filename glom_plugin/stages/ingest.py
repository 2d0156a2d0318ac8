"""`glom ingest`, the stage: a publisher's files -> interactions / items / users tables of the run.

The passes themselves (validate, hash, dedup, k-core, items) are ``glom_plugin.data.ingest``; this module
resolves the source (generating the synthetic default once per size and seed), stages every output in a
temporary directory beside the real ones and renames them into place together, the report last (its
presence marks a complete ingest). A failure leaves no partial table behind; when it is the reject ratio
that fails, the rejects file (the thing to look at) is the one file written. The report carries seconds
and peak memory per part of the work (``profile``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from glom_plugin.config import GlomConfig
from glom_plugin.data.ingest import (
    IngestError,
    IngestReport,
    check_rejects,
    final_pass,
    first_pass,
    kcore,
    write_items,
)
from glom_plugin.data.parallel_ingest import available_cores
from glom_plugin.data.readers import create_reader
from glom_plugin.data.readers.base import DEFAULT_CHUNK_ROWS
from glom_plugin.data.rejects import RejectLog
from glom_plugin.layout import RunLayout
from glom_plugin.stages.meter import StageMeter


def resolve_source(cfg: GlomConfig, layout: RunLayout) -> tuple[str, Path]:
    """(reader name, path). ``synthetic`` generates the default dataset into ``layout.raw_dir`` (once
    per size and seed) and reads it as Amazon 2023 — the layout of the paper's data."""
    if cfg.data.source_format == "synthetic":
        from glom_plugin.data.synthetic import ensure_synthetic

        dataset = ensure_synthetic(layout.raw_dir, cfg.data.synthetic_reviews, cfg.data.synthetic_seed)
        return "amazon2023", dataset.reviews_path
    if not cfg.data.source_path:
        raise IngestError(f"data.source_path is required for data.source_format={cfg.data.source_format!r}")
    return cfg.data.source_format, Path(cfg.data.source_path)


def run_ingest(
    cfg: GlomConfig, layout: RunLayout, chunk_rows: int = DEFAULT_CHUNK_ROWS, echo: Any = print
) -> IngestReport:
    """Read ``cfg.data.source_path`` with the ``cfg.data.source_format`` reader and write
    ``layout.interactions`` / ``items`` / ``users`` / ``outside_interactions`` / ``rejects`` / ``ingest_report``.

    Raises ``IngestError`` when the share of bad rows exceeds ``cfg.data.max_reject_ratio`` (the
    message names the file(s), the counts by reason and the first offending file:line:field) or when
    no interaction survives. Memory: the dedup digests (8 bytes per distinct row), per-user and
    per-item counters, one chunk of rows; never the whole file.
    """
    started = time.perf_counter()
    meter = StageMeter()
    with meter.section("source"):
        reader_name, source = resolve_source(cfg, layout)
    outputs = {
        "interactions": layout.interactions,
        "items": layout.items,
        "users": layout.users,
        "outside_interactions": layout.outside_interactions,
        "rejects": layout.rejects,
        "ingest_report": layout.ingest_report,
    }
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
        all_rows = stage / "accepted.parquet"
        with meter.section("first_pass"):
            counts = first_pass(reader, scale, cfg.id_salt(), rejects, all_rows, report, section=meter.section,
                                workers=available_cores())
        check_rejects(cfg, rejects, files, report, layout)
        with meter.section("kcore"):
            keep_users, keep_items = kcore(all_rows, *counts, cfg, report)
            del counts  # per-user / per-item counters: the largest O(users) structures, done with
        with meter.section("final_pass"):
            final_pass(all_rows, keep_users, keep_items, stage, report)
        with meter.section("items"):
            write_items(reader, keep_items, stage / "items.parquet", report)
        # Metadata rejects are known only now; they are reported but not part of the reject ratio.
        report.rejects_by_reason = dict(rejects.by_reason)
        report.meta_rejected = sum(n for f, n in rejects.errors_by_file.items() if f not in set(files))
        report.elapsed_s = round(time.perf_counter() - started, 3)
        report.outputs = {name: str(path) for name, path in outputs.items()}
        meter.close()
        report.profile = meter.figures()
        report_path = stage / "ingest_report.json"
        report_path.write_text(json.dumps(asdict(report), indent=2, sort_keys=True))
        # Commit: tables first, the report last (its presence marks a complete ingest).
        for name in ("interactions", "items", "users", "outside_interactions"):
            os.replace(stage / f"{name}.parquet", outputs[name])
        rejects.commit()
        os.replace(report_path, layout.ingest_report)
    except IngestError:
        # The rejects file is what the message points to; stale tables from an earlier run must not
        # be mistaken for this run's output.
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
