"""`glom graph` end to end on a tiny run directory: artifacts, the GX gate, reload, sentiment cache."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from glom_plugin.config import GlomConfig
from glom_plugin.data.schema import INTERACTIONS_SCHEMA, ITEMS_SCHEMA
from glom_plugin.graph.build import load_lookalike_data
from glom_plugin.graph.knowledge_graph import load_knowledge_graph
from glom_plugin.layout import RunLayout
from glom_plugin.platform.gx_gate import ValidationFailed
from glom_plugin.stages.graph import run_graph_stage
from glom_plugin.storage import write_parquet

POSITIVE = ["Great product, love it", "Excellent, works perfectly", "Really good value"]
NEGATIVE = ["Awful, broke immediately", "Terrible quality, very disappointed", "Bad, would not buy again"]


def write_ingested(layout: RunLayout, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(12):
        user = hashlib.sha256(f"user{u}".encode()).hexdigest()[:20]
        for item in rng.choice(8, size=4, replace=False):
            stars = int(rng.integers(1, 6))
            text = None if rng.random() < 0.3 else str(rng.choice(POSITIVE if stars >= 3 else NEGATIVE))
            rows.append(
                {
                    "user_id": user,
                    "item_id": f"I{item}",
                    "rating": float(stars),
                    "rating_norm": (stars - 1) / 4,
                    "review_title": None,
                    "text": text,
                    "timestamp_ms": 0,
                    "verified_purchase": True,
                    "helpful_votes": 0,
                }
            )
    # One repeat review (a repeat purchase): the stage averages it into the pair's single polarity edge.
    rows.append({**rows[0], "rating": 1.0, "rating_norm": 0.0, "text": NEGATIVE[0]})
    interactions = pd.DataFrame(rows)
    items = pd.DataFrame(
        {
            "item_id": [f"I{i}" for i in range(8)],
            "title": [f"t{i}" for i in range(8)],
            "main_category": ["Books"] * 8,
            "categories": [["Books", f"c{i % 3}"] for i in range(8)],
            "description": None,
            "features": None,
            "store": None,
            "price": 9.99,
        }
    )
    write_parquet(interactions, layout.interactions, schema=INTERACTIONS_SCHEMA)
    write_parquet(items, layout.items, schema=ITEMS_SCHEMA)
    return interactions


def test_graph_stage_writes_gated_artifacts_and_reloads(tmp_path) -> None:
    layout = RunLayout.at(tmp_path)
    interactions = write_ingested(layout)
    cfg = GlomConfig(run_dir=str(tmp_path)).with_overrides(
        **{"similarity.t_sim": 0.0, "similarity.min_corated": 2}
    )
    report = run_graph_stage(cfg, layout)

    for path in (
        layout.polarity_edges,
        layout.similarity_edges,
        layout.knowledge_graph,
        layout.triples,
        layout.user_index,
        layout.item_index,
        layout.graph_report,
    ):
        assert path.is_file(), path
    assert (layout.validation_dir / "graph" / "data_docs" / "index.html").is_file()
    assert report["nodes"] == {"item": 8, "user": 12}
    n_pairs = len(interactions) - 1
    assert report["repeat_reviews_merged"] == 1
    assert report["edges"]["interacted"] == n_pairs
    assert report["edges"]["likes"] + report["edges"]["dislikes"] == n_pairs
    assert report["edges"]["similar"] % 2 == 0 and report["edges"]["similar"] > 0
    has_text = interactions.groupby(["user_id", "item_id"])["text"].agg(lambda t: t.notna().any())
    assert report["polarity_from_text_share"] == pytest.approx(has_text.mean())
    assert json.loads(layout.graph_report.read_text())["validation"]["success"] is True

    data = load_lookalike_data(layout)
    assert data.n_users == 12 and data.n_items == 8 and len(data.edges) == n_pairs
    assert data.category_names == ["Books", "c0", "c1", "c2"]
    graph = load_knowledge_graph(layout.knowledge_graph)
    assert graph.num_edges("similar") == 2 * len(data.similarity)

    # A rerun takes every stored sentiment from the polarity-edges table instead of rescoring.
    again = run_graph_stage(cfg, layout)
    assert again["sentiment_cached_rows"] == n_pairs
    assert again["edges"] == report["edges"]


def test_graph_stage_gate_stops_before_the_graph(tmp_path) -> None:
    layout = RunLayout.at(tmp_path)
    interactions = write_ingested(layout)
    # A catalogue that lost one item: its edges would dangle, so the gate stops the stage.
    items = pd.read_parquet(layout.items)
    missing = interactions["item_id"].iloc[0]
    write_parquet(items[items["item_id"] != missing], layout.items, schema=ITEMS_SCHEMA)
    with pytest.raises(ValidationFailed) as caught:
        run_graph_stage(GlomConfig(run_dir=str(tmp_path)), layout)
    message = str(caught.value)
    assert "[polarity_edges] expect_column_values_to_be_in_set on column '_item_known'" in message
    assert f"'item_id': '{missing}'" in message
    assert not layout.knowledge_graph.exists() and not layout.polarity_edges.exists()


def test_implicit_feedback_graph_is_built_with_loud_warnings(tmp_path, capsys) -> None:
    """Found 7: every rating 1.0 and no text gave 0 similarity edges without a word."""
    layout = RunLayout.at(tmp_path)
    interactions = write_ingested(layout)
    implicit = interactions.assign(rating=1.0, rating_norm=1.0, text=None).drop_duplicates(["user_id", "item_id"])
    write_parquet(implicit, layout.interactions, schema=INTERACTIONS_SCHEMA)
    report = run_graph_stage(GlomConfig(run_dir=str(tmp_path)).with_overrides(**{"data.min_user_interactions": 1}), layout)
    assert report["edges"].get("similar", 0) == 0
    assert any("0 user-user similarity edges" in w for w in report["warnings"])
    assert any("polarity is 1" in w for w in report["warnings"])
    assert "WARNING: 0 user-user similarity edges" in capsys.readouterr().err
    assert json.loads(layout.graph_report.read_text())["warnings"] == report["warnings"]
