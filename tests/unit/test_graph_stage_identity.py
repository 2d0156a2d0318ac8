"""The graph stage's tables equal those of the plain pandas composition it replaced (issue 13).

``reference_tables`` is that composition, kept here as the oracle: the whole interactions table read with
pandas, the minimum-interactions filter by ``drop_duplicates`` / ``value_counts``, sentiment through
``score_review_sentiment`` (one text at a time, one process), then the same pure polarity and Eq. 1
functions, all on id strings. The stage works on integer codes, streams the text and scores distinct
texts once on several processes; every table it writes must be equal to the oracle's, row for row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glom_plugin.config import GlomConfig
from glom_plugin.graph.build import build_lookalike_data
from glom_plugin.graph.knowledge_graph import knowledge_graph_triples
from glom_plugin.graph.polarity import merge_repeat_reviews, polarity_from_sentiment, score_review_sentiment
from glom_plugin.graph.similarity import similarity_with_ids
from glom_plugin.layout import RunLayout
from glom_plugin.stages.graph import run_graph_stage
from glom_plugin.stages.ingest import run_ingest


def pandas_min_interactions(interactions: pd.DataFrame, cfg: GlomConfig) -> pd.DataFrame:
    """The filter as it was written before integer codes: distinct pairs, counts, repeat until stable."""
    frame = interactions
    while True:
        pairs = frame[["user_id", "item_id"]].drop_duplicates()
        user_counts = pairs["user_id"].value_counts()
        item_counts = pairs["item_id"].value_counts()
        weak_users = user_counts.index[user_counts < cfg.data.min_user_interactions]
        weak_items = item_counts.index[item_counts < cfg.data.min_item_interactions]
        if len(weak_users) == 0 and len(weak_items) == 0:
            return frame.reset_index(drop=True)
        frame = frame.loc[~frame["user_id"].isin(weak_users) & ~frame["item_id"].isin(weak_items)]


def reference_tables(layout: RunLayout, cfg: GlomConfig) -> dict[str, pd.DataFrame]:
    interactions = pandas_min_interactions(pd.read_parquet(layout.interactions), cfg)
    items = pd.read_parquet(layout.items)
    scored, _ = merge_repeat_reviews(score_review_sentiment(interactions, cfg))
    polarity = polarity_from_sentiment(scored, cfg)
    data = build_lookalike_data(polarity, items, cfg)
    return {
        "polarity_edges": polarity,
        "similarity_edges": similarity_with_ids(data.similarity, data.user_ids),
        "user_index": pd.DataFrame({"idx": np.arange(data.n_users), "id": data.user_ids}),
        "item_index": pd.DataFrame({"idx": np.arange(data.n_items), "id": data.item_ids}),
        "triples": knowledge_graph_triples(data, cfg.graph),
    }


def assert_stage_matches_reference(layout: RunLayout, cfg: GlomConfig) -> dict:
    report = run_graph_stage(cfg, layout)
    expected = reference_tables(layout, cfg)
    paths = {
        "polarity_edges": layout.polarity_edges,
        "similarity_edges": layout.similarity_edges,
        "user_index": layout.user_index,
        "item_index": layout.item_index,
        "triples": layout.triples,
    }
    for name, path in paths.items():
        written = pd.read_parquet(path)
        want = expected[name].reset_index(drop=True)
        assert list(written.columns) == list(want.columns), name
        assert len(written) == len(want), name
        for column in want.columns:
            got_values, want_values = written[column].to_numpy(), want[column].to_numpy()
            if want_values.dtype.kind == "f":
                # Equal bit for bit, NaN where the oracle has NaN (no review text).
                np.testing.assert_array_equal(got_values, want_values, err_msg=f"{name}.{column}", strict=True)
            else:
                assert (got_values.astype(object) == want_values.astype(object)).all(), f"{name}.{column}"
    return report


def test_stage_equals_reference_on_generated_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLOM_ID_SALT", "identity")
    ingest_cfg = GlomConfig(run_dir=str(tmp_path)).with_overrides(
        **{
            "data.source_format": "synthetic",
            "data.synthetic_reviews": 4_000,
            "data.synthetic_seed": 3,
            "data.min_user_interactions": 1,
            "data.min_item_interactions": 1,
        }
    )
    layout = RunLayout.at(tmp_path)
    run_ingest(ingest_cfg, layout, echo=lambda _: None)
    # Ingested without a k-core, so the graph stage's minimum (3) drops users and then items.
    cfg = ingest_cfg.with_overrides(
        **{
            "data.min_user_interactions": 3,
            "data.min_item_interactions": 3,
            "similarity.min_corated": 2,
            "similarity.t_sim": 0.0,
        }
    )
    report = assert_stage_matches_reference(layout, cfg)
    assert report["min_interactions"]["users_dropped"] > 0
    assert report["edges"]["similar"] > 0
    # Generated reviews repeat: fewer distinct texts were scored than texts seen.
    texts = report["sentiment_texts"]
    assert 0 < texts["distinct_texts_scored"] < texts["texts"]
    assert {"read", "sentiment", "similarity", "gx_gate", "dgl_graph", "triples"} <= set(report["profile"])
    assert all(figures["peak_mb"] > 0 for figures in report["profile"].values())


def test_sentiment_cache_rerun_gives_the_same_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLOM_ID_SALT", "identity")
    cfg = GlomConfig(run_dir=str(tmp_path)).with_overrides(
        **{"data.source_format": "synthetic", "data.synthetic_reviews": 2_000, "data.synthetic_seed": 5}
    )
    layout = RunLayout.at(tmp_path)
    run_ingest(cfg, layout, echo=lambda _: None)
    first = run_graph_stage(cfg, layout)
    polarity = pd.read_parquet(layout.polarity_edges)
    again = run_graph_stage(cfg, layout)
    assert again["sentiment_cached_rows"] == len(polarity)
    assert again["sentiment_texts"]["texts"] == 0  # every row with text came from the cache
    pd.testing.assert_frame_equal(pd.read_parquet(layout.polarity_edges), polarity)
    assert again["edges"] == first["edges"]
