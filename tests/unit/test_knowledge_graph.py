"""§3.1 knowledge graph: relations, reverse edges, ablation switches, save/load, triples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from glom_plugin.config import GlomConfig, GraphConfig
from glom_plugin.data.schema import TRIPLES_SCHEMA
from glom_plugin.graph.build import build_lookalike_data, item_category_matrix
from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.graph.knowledge_graph import (
    build_knowledge_graph,
    knowledge_graph_triples,
    load_knowledge_graph,
    save_knowledge_graph,
    to_homogeneous_triples,
)


@pytest.fixture()
def data() -> LookalikeData:
    # 3 users, 2 items; 4 interactions (3 liked, 1 disliked); one similar pair (0, 2).
    edges = pd.DataFrame(
        {
            "user_idx": [0, 0, 1, 2],
            "item_idx": [0, 1, 0, 1],
            "rating_norm": [1.0, 0.25, 0.75, 1.0],
            "sentiment": [0.9, np.nan, 0.6, 0.8],
            "polarity": [0.95, 0.25, 0.675, 0.9],
            "liked": [True, False, True, True],
        }
    )
    similarity = pd.DataFrame({"user_a": [0], "user_b": [2], "similarity": [0.8], "n_corated": [2]})
    return LookalikeData(
        user_ids=np.array(["a", "b", "c"], dtype=object),
        item_ids=np.array(["X", "Y"], dtype=object),
        edges=edges,
        similarity=similarity,
        item_categories=sp.csr_matrix((2, 0)),
    )


def test_relations_counts_weights_and_reverses(data: LookalikeData) -> None:
    g = build_knowledge_graph(data, GraphConfig())
    assert g.num_nodes("user") == 3 and g.num_nodes("item") == 2
    counts = {etype[1]: g.num_edges(etype) for etype in g.canonical_etypes}
    assert counts == {
        "interacted": 4,
        "interacted_by": 4,
        "likes": 3,
        "liked_by": 3,
        "dislikes": 1,
        "disliked_by": 1,
        "similar": 2,
    }
    src, dst = g.edges(etype="similar")
    assert sorted(zip(src.tolist(), dst.tolist(), strict=False)) == [(0, 2), (2, 0)]
    assert g.edges["similar"].data["weight"].tolist() == pytest.approx([0.8, 0.8])
    # dislikes weight = 1 - polarity; the reverse edge mirrors the forward one
    s, d = g.edges(etype="dislikes")
    assert (s.item(), d.item()) == (0, 1)
    assert g.edges["dislikes"].data["weight"].item() == pytest.approx(0.75)
    rs, rd = g.edges(etype="liked_by")
    fs, fd = g.edges(etype="likes")
    assert rs.tolist() == fd.tolist() and rd.tolist() == fs.tolist()
    assert g.edges["likes"].data["weight"].tolist() == pytest.approx([0.95, 0.675, 0.9])


@pytest.mark.parametrize(
    ("polarity", "similarity", "expected"),
    [
        (False, True, {"interacted", "interacted_by", "similar"}),
        (True, False, {"interacted", "interacted_by", "likes", "liked_by", "dislikes", "disliked_by"}),
        (False, False, {"interacted", "interacted_by"}),
    ],
)
def test_ablation_switches(data: LookalikeData, polarity: bool, similarity: bool, expected: set[str]) -> None:
    cfg = GraphConfig(use_polarity_edges=polarity, use_similarity_edges=similarity)
    assert set(build_knowledge_graph(data, cfg).etypes) == expected
    assert set(knowledge_graph_triples(data, cfg)["relation"]) == {
        r for r in expected if not r.endswith("_by")
    }


def test_save_load_round_trip(data: LookalikeData, tmp_path) -> None:
    g = build_knowledge_graph(data, GraphConfig())
    path = save_knowledge_graph(g, tmp_path / "kg.bin")
    loaded = load_knowledge_graph(path)
    assert loaded.canonical_etypes == g.canonical_etypes
    for etype in g.canonical_etypes:
        assert [t.tolist() for t in loaded.edges(etype=etype)] == [t.tolist() for t in g.edges(etype=etype)]
        assert loaded.edges[etype].data["weight"].tolist() == g.edges[etype].data["weight"].tolist()
    with pytest.raises(FileNotFoundError, match="glom graph"):
        load_knowledge_graph(tmp_path / "missing.bin")


def test_triples_and_homogeneous_view(data: LookalikeData) -> None:
    triples = knowledge_graph_triples(data, GraphConfig())
    assert list(triples.columns) == [f.name for f in TRIPLES_SCHEMA]
    assert triples["relation"].value_counts().to_dict() == {
        "interacted": 4,
        "likes": 3,
        "similar": 2,
        "dislikes": 1,
    }
    with_reverse = knowledge_graph_triples(data, GraphConfig(), include_reverse=True)
    assert len(with_reverse) == len(triples) + 8

    homo = to_homogeneous_triples(data, GraphConfig())
    assert homo.relation_names == ["interacted", "likes", "dislikes", "similar"]
    assert len(homo.src) == len(triples)
    names = np.array(homo.relation_names)[homo.rel]
    # users 0..2, items 3..4: user 0 dislikes item 1 -> (0, "dislikes", 4)
    assert list(zip(homo.src[names == "dislikes"], homo.dst[names == "dislikes"], strict=False)) == [(0, 4)]
    assert set(homo.dst[names == "similar"]) == {0, 2}


def test_build_lookalike_data_indexes_and_categories() -> None:
    polarity = pd.DataFrame(
        {
            "user_id": ["u2", "u1", "u1", "u2", "u3", "u3"],
            "item_id": ["B", "A", "B", "A", "A", "B"],
            "rating_norm": [1.0, 0.5, 1.0, 0.25, 0.75, 0.5],
            "sentiment": [0.9, np.nan, 0.8, 0.3, np.nan, 0.6],
            "polarity": [0.95, 0.5, 0.9, 0.275, 0.75, 0.55],
            "liked": [True, True, True, False, True, False],
            "polarity_source": [
                "rating+sentiment",
                "rating",
                "rating+sentiment",
                "rating+sentiment",
                "rating",
                "rating+sentiment",
            ],
        }
    )
    items = pd.DataFrame(
        {
            "item_id": ["A", "B", "C"],
            "main_category": ["Books", None, "Toys"],
            "categories": [["Books", "SciFi"], [], None],
        }
    )
    cfg = GlomConfig().with_overrides(**{"similarity.t_sim": -1.0, "similarity.min_corated": 2})
    data = build_lookalike_data(polarity, items, cfg)
    assert data.user_ids.tolist() == ["u1", "u2", "u3"] and data.item_ids.tolist() == ["A", "B"]
    assert data.edges[["user_idx", "item_idx"]].values.tolist() == [
        [1, 1],
        [0, 0],
        [0, 1],
        [1, 0],
        [2, 0],
        [2, 1],
    ]
    assert data.category_names == ["Books", "SciFi"]
    assert data.item_categories.toarray().tolist() == [[1.0, 1.0], [0.0, 0.0]]
    # Every pair co-rates A and B; u1 vs u2: (0.5, 0.9) vs (0.275, 0.95) -> Pearson +1.
    pairs = {(a, b): s for a, b, s, _ in data.similarity.itertuples(index=False)}
    assert pairs[(0, 1)] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not in the given user list"):
        build_lookalike_data(polarity, items, cfg, user_ids=np.array(["u1", "u2"], dtype=object))


def test_category_matrix_without_catalogue() -> None:
    matrix, names = item_category_matrix(None, np.array(["A", "B"], dtype=object))
    assert matrix.shape == (2, 0) and names == []
