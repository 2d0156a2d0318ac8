"""Ingestion on worker processes writes what one process writes: the same tables, the same rejects
(file, line, field, reason, detail), the same counts (glom_plugin/data/parallel_ingest.py)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

import glom_plugin.data.parallel_ingest as parallel_ingest
from glom_plugin.config import GlomConfig
from glom_plugin.layout import RunLayout
from glom_plugin.stages.ingest import run_ingest


def raw_file(path: Path) -> Path:
    """~3,000 reviews with every kind of bad line the JSON-lines reader and validation reject, spread
    over several chunks, plus exact duplicates across chunks."""
    lines: list[bytes] = []
    for i in range(3_000):
        record = {"rating": 1 + i % 5, "title": f"t{i % 7}", "text": f"review {i % 50}", "parent_asin": f"I{i % 40}",
                  "user_id": f"U{i % 300}", "timestamp": 1_700_000_000_000 + i, "helpful_vote": i % 3,
                  "verified_purchase": True}
        if i % 97 == 0:
            record["rating"] = 9  # out of range
        if i % 131 == 0:
            record.pop("user_id")  # missing id
        lines.append(json.dumps(record).encode())
        if i % 211 == 0:
            lines.append(b"{not json")
        if i % 307 == 0:
            lines.append(b"\xff\xfe bad utf-8")
        if i % 401 == 0:
            lines.append(b"[1, 2]")
        if i % 500 == 0:
            lines.append(b"")
        if i % 251 == 0:
            lines.append(json.dumps(record).encode())  # exact duplicate, sometimes in the next chunk
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    return path


def ingest(source: Path, run: Path, parallel: bool, monkeypatch: pytest.MonkeyPatch) -> RunLayout:
    monkeypatch.setattr(parallel_ingest, "MIN_PARALLEL_BYTES", 0 if parallel else 1 << 62)
    monkeypatch.setattr("glom_plugin.stages.ingest.available_cores", lambda: 2)
    cfg = GlomConfig().with_overrides(**{"data.source_format": "amazon2023", "data.source_path": str(source),
                                         "data.max_reject_ratio": 0.5})
    layout = RunLayout.at(run)
    run_ingest(cfg, layout, chunk_rows=400, echo=lambda _: None)
    return layout


def test_workers_write_what_one_process_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLOM_ID_SALT", "parallel")
    source = raw_file(tmp_path / "reviews.jsonl.gz")
    one = ingest(source, tmp_path / "one", parallel=False, monkeypatch=monkeypatch)
    many = ingest(source, tmp_path / "many", parallel=True, monkeypatch=monkeypatch)

    for table in ("interactions", "items", "users"):
        pd.testing.assert_frame_equal(pd.read_parquet(getattr(many, table)), pd.read_parquet(getattr(one, table)))
    rejects_one = [json.loads(line) for line in one.rejects.read_text().splitlines()]
    rejects_many = [json.loads(line) for line in many.rejects.read_text().splitlines()]
    assert rejects_many == rejects_one
    reasons = {r["reason"] for r in rejects_one}
    assert {"malformed json", "bad encoding", "rating out of range", "missing field", "duplicate"} <= reasons
    report_one, report_many = (json.loads(layout.ingest_report.read_text()) for layout in (one, many))
    for volatile in ("elapsed_s", "profile", "outputs"):
        report_one.pop(volatile), report_many.pop(volatile)
    assert report_many == report_one
    profile = json.loads(many.ingest_report.read_text())["profile"]
    assert "wait_workers" in profile and "validate_rows" not in profile  # the per-row work ran in workers
