"""The embedded default dataset: Amazon 2023 layout, deterministic under its seed, with the planted
community structure lookalike expansion must recover."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glom_plugin.config import GlomConfig
from glom_plugin.data.synthetic import ensure_synthetic, generate_amazon2023, sizes
from glom_plugin.layout import RunLayout
from glom_plugin.stages.ingest import run_ingest

REVIEW_FIELDS = {"rating", "title", "text", "images", "asin", "parent_asin", "user_id", "timestamp", "helpful_vote", "verified_purchase"}
META_FIELDS = {"main_category", "title", "features", "description", "price", "store", "categories", "parent_asin"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):
    return generate_amazon2023(tmp_path_factory.mktemp("syn"), 12_000, seed=3)


@pytest.fixture(scope="module")
def reviews(dataset) -> pd.DataFrame:
    with gzip.open(dataset.reviews_path, "rt") as fh:
        frame = pd.DataFrame([json.loads(line) for line in fh])
    communities = pd.read_parquet(dataset.communities_path)
    return frame.merge(communities, on="user_id", how="left")


def test_layout_and_sizes(dataset, reviews: pd.DataFrame) -> None:
    assert set(reviews.columns) - {"community"} == REVIEW_FIELDS
    assert len(reviews) == dataset.n_reviews == 12_000
    assert (dataset.n_users, dataset.n_items, dataset.n_communities) == sizes(12_000)
    assert reviews.user_id.nunique() == dataset.n_users and reviews.community.notna().all()
    assert reviews.user_id.str.match(r"^A[A-Z0-9]{27}$").all()
    assert reviews.rating.between(1, 5).all() and (reviews.parent_asin == reviews.asin).all()
    assert reviews.timestamp.gt(1_400_000_000_000).all()  # milliseconds, as in the 2023 release
    assert 0.12 < (reviews.text == "").mean() < 0.18
    with gzip.open(dataset.meta_path, "rt") as fh:
        meta = [json.loads(line) for line in fh]
    assert len(meta) == dataset.n_items and META_FIELDS <= set(meta[0])
    assert {m["parent_asin"] for m in meta} >= set(reviews.parent_asin)
    # Items are category-coherent: an item's meta categories hold its ground-truth category.
    truth = pd.read_parquet(dataset.item_communities_path).set_index("item_id")
    assert all(truth.loc[m["parent_asin"], "category"] in m["categories"] for m in meta[:200])


def test_deterministic_under_seed(tmp_path: Path, dataset) -> None:
    again = generate_amazon2023(tmp_path / "a", 12_000, seed=3)
    other = generate_amazon2023(tmp_path / "b", 12_000, seed=4)
    read = lambda p: gzip.decompress(Path(p).read_bytes())  # noqa: E731
    assert read(again.reviews_path) == read(dataset.reviews_path)
    assert read(again.meta_path) == read(dataset.meta_path)
    assert read(other.reviews_path) != read(dataset.reviews_path)


def test_planted_communities_are_recoverable(reviews: pd.DataFrame) -> None:
    """Campaign = item: its purchasers are mostly one community (what a community-aware model finds);
    a random ranking would see the community shares, far lower."""
    buyers = reviews.groupby("parent_asin")
    size = buyers.size()
    majority = buyers["community"].agg(lambda s: s.value_counts(normalize=True).iloc[0])[size >= 10]
    assert len(majority) >= 200
    assert majority.median() > 0.75 and majority.mean() > 0.7
    largest_community = reviews.drop_duplicates("user_id").community.value_counts(normalize=True).iloc[0]
    assert largest_community < 0.25  # so the majority share is structure, not one giant community


def test_ratings_and_sentiment_follow_membership(reviews: pd.DataFrame, dataset) -> None:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    items = pd.read_parquet(dataset.item_communities_path).rename(columns={"community": "item_community"})
    merged = reviews.merge(items, left_on="parent_asin", right_on="item_id")
    inside = merged.community == merged.item_community
    assert 0.75 < inside.mean() < 0.92  # ~15 % out-of-community noise (minus lucky hits)
    assert merged[inside].rating.mean() > merged[~inside].rating.mean() + 1.0
    analyzer = SentimentIntensityAnalyzer()
    sample = merged[merged.text != ""].sample(600, random_state=0)
    compound = np.array([analyzer.polarity_scores(t)["compound"] for t in sample.text])
    assert np.corrcoef(sample.rating, compound)[0, 1] > 0.7
    assert compound[sample.rating.to_numpy() == 5].mean() > 0.5 > -0.5 > compound[sample.rating.to_numpy() == 1].mean()


def test_synthetic_source_generates_once_and_ingests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLOM_ID_SALT", "s")
    cfg = GlomConfig().with_overrides(**{"data.source_format": "synthetic", "data.synthetic_reviews": 3_000, "data.synthetic_seed": 1})
    layout = RunLayout.at(tmp_path / "run")
    report = run_ingest(cfg, layout, echo=lambda _: None)
    assert report.rows_read == 3_000 and report.rows_rejected == 0 and report.n_items_with_metadata == report.n_items
    assert 0.8 < report.share_with_text < 0.9
    stamp = (layout.raw_dir / "reviews.jsonl.gz").stat().st_mtime_ns
    assert ensure_synthetic(layout.raw_dir, 3_000, 1).n_reviews == 3_000
    assert (layout.raw_dir / "reviews.jsonl.gz").stat().st_mtime_ns == stamp  # reused, not regenerated
    raw_ids = set(pd.read_parquet(layout.raw_dir / "communities.parquet").user_id)
    assert not raw_ids & set(pd.read_parquet(layout.interactions).user_id)
