"""On real reviews (Amazon Digital Music 2014, $GLOM_DATA_DIR): the graph stage's tables equal the plain
pandas composition's (tests/unit/test_graph_stage_identity.py), and ingestion on worker processes writes
what one process writes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import glom_plugin.data.parallel_ingest as parallel_ingest
from glom_plugin.config import GlomConfig
from glom_plugin.layout import RunLayout
from glom_plugin.stages.ingest import run_ingest
from tests.unit.test_graph_stage_identity import assert_stage_matches_reference

# Two ingests, the stage and the one-process reference over 64k real reviews: minutes on 2 shared cores.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


def test_digital_music_tables_equal_the_reference(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = data_dir / "amazon-digital-music-2014" / "reviews_Digital_Music_5.json.gz"
    cfg = GlomConfig(run_dir=str(tmp_path / "one")).with_overrides(
        **{"data.source_format": "amazon2014", "data.source_path": str(source)}
    )
    monkeypatch.setattr("glom_plugin.stages.ingest.available_cores", lambda: 2)
    monkeypatch.setattr(parallel_ingest, "MIN_PARALLEL_BYTES", 1 << 62)
    one = RunLayout.at(tmp_path / "one")
    run_ingest(cfg, one, echo=lambda _: None)
    monkeypatch.setattr(parallel_ingest, "MIN_PARALLEL_BYTES", 0)
    many = RunLayout.at(tmp_path / "many")
    run_ingest(cfg, many, echo=lambda _: None)
    for table in ("interactions", "items", "users"):
        pd.testing.assert_frame_equal(pd.read_parquet(getattr(many, table)), pd.read_parquet(getattr(one, table)))
    assert many.rejects.read_text() == one.rejects.read_text()

    report = assert_stage_matches_reference(one, cfg)
    assert report["sentiment_texts"]["texts"] > 5_000 and report["edges"]["similar"] > 0
