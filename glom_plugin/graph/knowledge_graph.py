"""The GLoM knowledge graph (§3.1): G = (V, E, R), triples (u, r, v).

Nodes: ``user`` (0..U−1) and ``item`` (0..I−1), indexed as in ``LookalikeData``.
Relations (canonical DGL edge types):

| relation          | direction     | weight (``edata["weight"]``)                       | source |
|-------------------|---------------|----------------------------------------------------|--------|
| ``interacted``    | user → item   | 1.0 (the interaction fact itself)                  | §3.1   |
| ``likes``         | user → item   | p_uv (polarity, the strength of the like)          | §3.3   |
| ``dislikes``      | user → item   | 1 − p_uv (the strength of the dislike)             | §3.3   |
| ``similar``       | user → user   | sim(u_a, u_b) (Eq. 1), both directions             | §3.4   |
| ``interacted_by`` / ``liked_by`` / ``disliked_by`` | item → user | as the forward edge | reverse, so messages reach users |

Every interaction is either a like or a dislike (``LookalikeData.edges.liked``). Weights always read
"how strongly this relation holds", so an aggregator can use them without knowing the relation.
Ablations (§4.4): ``GraphConfig.use_polarity_edges=False`` drops likes/dislikes (and their reverses)
from the schema entirely, ``use_similarity_edges=False`` drops ``similar`` — "GLoM w/o U/I Polarity" and
"GLoM w/o U/U Similarity".

Consumers that want plain triples (TransE-style pre-training, §3.5) use ``knowledge_graph_triples`` or
the homogeneous view ``to_homogeneous_triples`` (one id space: users 0..U−1, items U..U+I−1).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from glom_plugin.config import GraphConfig
from glom_plugin.data.schema import (
    RELATION_DISLIKES,
    RELATION_INTERACTED,
    RELATION_LIKES,
    RELATION_SIMILAR,
    TRIPLES_SCHEMA,
)
from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.storage import atomic_path

if TYPE_CHECKING:
    import dgl

USER = "user"
ITEM = "item"
# Forward user→item relation -> its item→user reverse.
REVERSE_RELATION = {
    RELATION_INTERACTED: "interacted_by",
    RELATION_LIKES: "liked_by",
    RELATION_DISLIKES: "disliked_by",
}
TRIPLE_COLUMNS = [field.name for field in TRIPLES_SCHEMA]


class Relation(NamedTuple):
    """One relation's edges: head/tail indices in their own node type's index space."""

    head_type: str
    name: str
    tail_type: str
    head: np.ndarray
    tail: np.ndarray
    weight: np.ndarray


class HomogeneousTriples(NamedTuple):
    """All forward triples in one node id space: users 0..U−1, items U..U+I−1.

    src, rel, dst: int64 arrays (rel indexes ``relation_names``); weight: float64, as in the KG.
    """

    src: np.ndarray
    rel: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    relation_names: list[str]
    n_users: int
    n_items: int


def knowledge_graph_relations(data: LookalikeData, graph_cfg: GraphConfig) -> list[Relation]:
    """The forward relations of the KG (no reverses), honouring the ablation switches.
    ``similar`` is listed in both directions, as the relation is symmetric."""
    edges = data.edges
    users = edges["user_idx"].to_numpy(dtype=np.int64)
    items = edges["item_idx"].to_numpy(dtype=np.int64)
    relations = [Relation(USER, RELATION_INTERACTED, ITEM, users, items, np.ones(len(edges)))]
    if graph_cfg.use_polarity_edges:
        liked = edges["liked"].to_numpy(dtype=bool)
        polarity = edges["polarity"].to_numpy(dtype=np.float64)
        relations.append(Relation(USER, RELATION_LIKES, ITEM, users[liked], items[liked], polarity[liked]))
        relations.append(
            Relation(USER, RELATION_DISLIKES, ITEM, users[~liked], items[~liked], 1.0 - polarity[~liked])
        )
    if graph_cfg.use_similarity_edges:
        a = data.similarity["user_a"].to_numpy(dtype=np.int64)
        b = data.similarity["user_b"].to_numpy(dtype=np.int64)
        sim = data.similarity["similarity"].to_numpy(dtype=np.float64)
        relations.append(Relation(USER, RELATION_SIMILAR, USER, np.r_[a, b], np.r_[b, a], np.r_[sim, sim]))
    return relations


def build_knowledge_graph(data: LookalikeData, graph_cfg: GraphConfig) -> dgl.DGLGraph:
    """The DGL heterograph with forward and reverse relations and float32 ``edata["weight"]``."""
    import torch

    from glom_plugin.dgl_compat import dgl

    graph_data: dict[tuple[str, str, str], tuple[torch.Tensor, torch.Tensor]] = {}
    weights: dict[tuple[str, str, str], np.ndarray] = {}
    for rel in knowledge_graph_relations(data, graph_cfg):
        head, tail = torch.from_numpy(rel.head), torch.from_numpy(rel.tail)
        graph_data[(rel.head_type, rel.name, rel.tail_type)] = (head, tail)
        weights[(rel.head_type, rel.name, rel.tail_type)] = rel.weight
        if rel.name in REVERSE_RELATION:
            reverse = (rel.tail_type, REVERSE_RELATION[rel.name], rel.head_type)
            graph_data[reverse] = (tail, head)
            weights[reverse] = rel.weight
    graph = dgl.heterograph(
        graph_data, num_nodes_dict={USER: data.n_users, ITEM: data.n_items}, idtype=torch.int64
    )
    for etype, weight in weights.items():
        graph.edges[etype].data["weight"] = torch.from_numpy(weight.astype(np.float32))
    return graph


def knowledge_graph_triples(
    data: LookalikeData, graph_cfg: GraphConfig, include_reverse: bool = False
) -> pd.DataFrame:
    """``TRIPLES_SCHEMA`` rows (head, head_type, relation, tail, tail_type, weight), indices per node type.
    Forward relations only unless ``include_reverse`` (TransE learns r and −r from the forward ones)."""
    frames = []
    for rel in knowledge_graph_relations(data, graph_cfg):
        forward = [(rel.head_type, rel.name, rel.tail_type, rel.head, rel.tail)]
        if include_reverse and rel.name in REVERSE_RELATION:
            forward.append((rel.tail_type, REVERSE_RELATION[rel.name], rel.head_type, rel.tail, rel.head))
        for head_type, name, tail_type, head, tail in forward:
            frames.append(
                pd.DataFrame(
                    {
                        "head": head,
                        "head_type": head_type,
                        "relation": name,
                        "tail": tail,
                        "tail_type": tail_type,
                        "weight": rel.weight,
                    }
                )
            )
    # `interacted` is always present, so there is at least one frame (possibly with zero rows).
    return pd.concat(frames, ignore_index=True)[TRIPLE_COLUMNS]


def to_homogeneous_triples(data: LookalikeData, graph_cfg: GraphConfig) -> HomogeneousTriples:
    """The forward triples in one id space (users 0..U−1, items U..U+I−1), for models that embed all
    entities in one table (the PM of §3.5). ``relation_names[rel[i]]`` names triple i's relation."""
    relations = knowledge_graph_relations(data, graph_cfg)
    names = [rel.name for rel in relations]
    offset = {USER: 0, ITEM: data.n_users}
    src = np.concatenate([rel.head + offset[rel.head_type] for rel in relations])
    dst = np.concatenate([rel.tail + offset[rel.tail_type] for rel in relations])
    rel_ids = np.concatenate([np.full(len(rel.head), i, dtype=np.int64) for i, rel in enumerate(relations)])
    weight = np.concatenate([rel.weight for rel in relations]).astype(np.float64)
    return HomogeneousTriples(
        src.astype(np.int64), rel_ids, dst.astype(np.int64), weight, names, data.n_users, data.n_items
    )


def save_knowledge_graph(graph: dgl.DGLGraph, path: str | Path) -> Path:
    """dgl.save_graphs, written then renamed."""
    from glom_plugin.dgl_compat import dgl

    with atomic_path(path) as tmp:
        dgl.save_graphs(str(tmp), [graph])
    return Path(path)


def load_knowledge_graph(path: str | Path) -> dgl.DGLGraph:
    from glom_plugin.dgl_compat import dgl

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"knowledge graph {path} not found; run `glom graph` first")
    graphs, _ = dgl.load_graphs(str(path))
    return graphs[0]
