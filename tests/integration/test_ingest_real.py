"""Ingest each real dataset in $GLOM_DATA_DIR in its publisher's layout; counts are checked against
the data README (before the k-core filter, which the report counts separately)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from glom_plugin.config import GlomConfig
from glom_plugin.data.hashing import hash_user_id
from glom_plugin.layout import RunLayout
from glom_plugin.stages.ingest import run_ingest

pytestmark = pytest.mark.integration


def ingest(data_dir: Path, tmp_path: Path, fmt: str, folder: str):
    cfg = GlomConfig().with_overrides(**{"data.source_format": fmt, "data.source_path": str(data_dir / folder)})
    layout = RunLayout.at(tmp_path / fmt)
    return cfg, layout, run_ingest(cfg, layout, echo=lambda _: None)


def check_consistent(layout: RunLayout, report) -> None:
    inter = pq.read_table(layout.interactions, columns=["user_id", "item_id", "rating_norm"])
    assert inter.num_rows == report.n_interactions
    assert len(set(inter["user_id"].to_pylist())) == report.n_users == pq.read_table(layout.users).num_rows
    assert set(pq.read_table(layout.items)["item_id"].to_pylist()) == set(inter["item_id"].to_pylist())
    norm = inter["rating_norm"].to_numpy()
    assert norm.min() >= 0.0 and norm.max() <= 1.0
    assert report.rows_accepted - report.filtered_interactions == report.n_interactions


def test_amazon_digital_music_2014(data_dir: Path, tmp_path: Path) -> None:
    cfg, layout, report = ingest(data_dir, tmp_path, "amazon2014", "amazon-digital-music-2014")
    # README: 6,908 reviews · 2,490 users · 382 items (partial 5-core, cut at a complete record).
    assert report.rows_read == 6_908 and report.rows_rejected == 0 and report.duplicates == 0
    assert (report.users_before_filter, report.items_before_filter) == (2_490, 382)
    assert report.meta_file.endswith("meta_Digital_Music.json.gz") and report.meta_rejected == 0
    assert report.n_items_with_metadata == report.n_items
    assert report.share_with_text > 0.99
    check_consistent(layout, report)
    # No raw reviewer id anywhere in the outputs.
    with gzip.open(data_dir / "amazon-digital-music-2014" / "reviews_Digital_Music_5.json.gz", "rt") as fh:
        raw_ids = {json.loads(line)["reviewerID"] for line in fh}
    for path in layout.ingest_dir.iterdir():
        text = path.read_bytes().decode("utf-8", "replace")
        if path.suffix == ".parquet":
            text += pq.read_table(path).to_pandas().to_csv()
        # Reviewer ids are upper-case alphanumeric tokens: compare every such token with all of them.
        assert not set(re.findall(r"[A-Z0-9]{8,}", text)) & raw_ids, path
    users = set(pq.read_table(layout.users)["user_id"].to_pylist())
    assert hash_user_id("AZPWAXJG9OJXV", cfg.id_salt()) in users


def test_anime_mal(data_dir: Path, tmp_path: Path) -> None:
    _, layout, report = ingest(data_dir, tmp_path, "mal", "anime-mal")
    # README: 419,943 ratings 1-10 · 4,714 users · 7,157 items.
    assert report.rows_read == 419_943 and report.rows_rejected == 0
    assert (report.users_before_filter, report.items_before_filter) == (4_714, 7_157)
    assert (report.rating_min, report.rating_max) == (1.0, 10.0)
    assert report.share_with_text == 0.0 and report.n_items_with_metadata == report.n_items
    check_consistent(layout, report)


def test_movielens_latest_small(data_dir: Path, tmp_path: Path) -> None:
    _, layout, report = ingest(data_dir, tmp_path, "movielens", "movielens-latest-small")
    # README: 100,836 ratings 0.5-5 · 610 users · 9,724 rated movies.
    assert report.rows_read == 100_836 and report.rows_rejected == 0
    assert (report.users_before_filter, report.items_before_filter) == (610, 9_724)
    assert (report.rating_min, report.rating_max) == (0.5, 5.0)
    assert report.n_items_with_metadata == report.n_items
    check_consistent(layout, report)
