"""`glom validate` and `glom graph` on real data in $GLOM_DATA_DIR: Amazon Digital Music 2014 (review
text -> VADER sentiment) and MovieLens (ratings only -> polarity from the rating)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr

from glom_plugin.config import GlomConfig
from glom_plugin.graph.build import load_lookalike_data
from glom_plugin.graph.knowledge_graph import load_knowledge_graph
from glom_plugin.layout import RunLayout
from glom_plugin.stages.graph import run_graph_stage
from glom_plugin.stages.ingest import run_ingest
from glom_plugin.stages.validate import run_validate

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("fmt", "folder", "has_text"),
    [("amazon2014", "amazon-digital-music-2014", True), ("movielens", "movielens-latest-small", False)],
)
def test_validate_and_graph_on_real_data(
    data_dir: Path, tmp_path: Path, fmt: str, folder: str, has_text: bool
) -> None:
    cfg = GlomConfig(run_dir=str(tmp_path)).with_overrides(
        **{"data.source_format": fmt, "data.source_path": str(data_dir / folder)}
    )
    layout = RunLayout.at(tmp_path)
    run_ingest(cfg, layout, echo=lambda _: None)

    validation = run_validate(cfg, layout)
    assert validation.success, validation.render()
    assert (layout.validation_dir / "ingest" / "data_docs" / "index.html").is_file()

    report = run_graph_stage(cfg, layout)
    interactions = pd.read_parquet(layout.interactions)
    kept_reviews = len(interactions) - report["min_interactions"]["interactions_dropped"]
    assert report["edges"]["interacted"] == kept_reviews - report["repeat_reviews_merged"]
    assert report["edges"]["likes"] + report["edges"]["dislikes"] == report["edges"]["interacted"]
    assert report["edges"]["similar"] > 0
    if has_text:
        assert report["polarity_from_text_share"] > 0.99
        assert 0.2 < report["liked_share"] < 0.9
    else:
        assert report["polarity_from_text_share"] == 0.0

    data = load_lookalike_data(layout)
    graph = load_knowledge_graph(layout.knowledge_graph)
    assert graph.num_nodes("user") == data.n_users and graph.num_edges("similar") == 2 * len(data.similarity)
    assert (data.similarity["similarity"] >= cfg.similarity.t_sim).all()

    # Eq. 1 spot check against scipy on the stored edges: the 5 strongest pairs.
    polarity = data.user_item_matrix("polarity").toarray()
    rated = data.user_item_matrix().toarray() > 0
    for a, b, sim, n in data.similarity.nlargest(5, "n_corated").itertuples(index=False):
        cm = rated[a] & rated[b]
        assert cm.sum() == n
        assert sim == pytest.approx(pearsonr(polarity[a, cm], polarity[b, cm])[0], abs=1e-9)
    assert np.isfinite(data.edges["polarity"]).all()
