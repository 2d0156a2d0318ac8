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
the homogeneous view ``to_homogeneous_triples`` (one id space: users 0..U−1, items U..U+I−1). The graph
stage writes the former to ``triples.parquet``; ``read_knowledge_graph_relations`` reads it back (checked
against the run's ``LookalikeData``) so PM and GLM train on the artifact, not on a rebuild beside it.
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


def relation_schema(graph_cfg: GraphConfig) -> list[tuple[str, str, str]]:
    """(head type, relation, tail type) of each forward relation the config puts in the KG, in KG order."""
    schema = [(USER, RELATION_INTERACTED, ITEM)]
    if graph_cfg.use_polarity_edges:
        schema += [(USER, RELATION_LIKES, ITEM), (USER, RELATION_DISLIKES, ITEM)]
    if graph_cfg.use_similarity_edges:
        schema.append((USER, RELATION_SIMILAR, USER))
    return schema


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


def read_knowledge_graph_relations(path: str | Path, data: LookalikeData, graph_cfg: GraphConfig) -> list[Relation]:
    """The forward relations the graph stage wrote to ``triples.parquet``, read back instead of rebuilt.

    The file must describe ``data`` under ``graph_cfg``: the relations the config asks for and no other,
    each endpoint of its declared type and inside ``data``'s user / item index, and per relation exactly
    the pairs ``data`` holds (the interactions, likes / dislikes by ``liked``, each similar pair in both
    directions). A file from an earlier graph run or other ``graph.*`` settings is refused with the
    first difference; rerunning ``glom graph`` rewrites it. Rows keep their file order.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `glom graph` first")
    labels = ["relation", "head_type", "tail_type"]
    table = pq.read_table(path, read_dictionary=labels)  # three labels per row: codes, not 1M strings
    missing = [c for c in TRIPLE_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; has {table.column_names}")
    codes, vocab = {}, {}
    for column in labels:
        chunked = table.column(column).combine_chunks()
        codes[column] = chunked.indices.to_numpy(zero_copy_only=False)
        vocab[column] = [str(v) for v in chunked.dictionary.to_pylist()]
    schema = relation_schema(graph_cfg)
    names = [name for _, name, _ in schema]
    relation_of_row = np.asarray(vocab["relation"], dtype=object)
    used = np.unique(codes["relation"])
    extra = [vocab["relation"][c] for c in used if vocab["relation"][c] not in names]
    if extra:
        row = int(np.flatnonzero(relation_of_row[codes["relation"]] == extra[0])[0])
        raise ValueError(
            f"{path}: row {row}: relation {extra[0]!r} is not in this config's knowledge graph {names} "
            "(written with other graph.* settings); rerun `glom graph`"
        )
    heads = table.column("head").to_numpy()
    tails = table.column("tail").to_numpy()
    weights = table.column("weight").to_numpy()
    sizes = {USER: data.n_users, ITEM: data.n_items}
    expected = _expected_pairs(data, graph_cfg)
    out = []
    for head_type, name, tail_type in schema:
        code = vocab["relation"].index(name) if name in vocab["relation"] else -1
        rows = np.flatnonzero(codes["relation"] == code)
        for column, node_type in (("head_type", head_type), ("tail_type", tail_type)):
            types = np.asarray(vocab[column], dtype=object)[codes[column][rows]] if len(rows) else np.empty(0)
            wrong = np.flatnonzero(types != node_type)
            if len(wrong):
                raise ValueError(
                    f"{path}: row {int(rows[wrong[0]])}: field {column} of relation {name!r} is "
                    f"{types[wrong[0]]!r}, expected {node_type!r}"
                )
        head, tail = heads[rows].astype(np.int64), tails[rows].astype(np.int64)
        for column, nodes, node_type in (("head", head, head_type), ("tail", tail, tail_type)):
            outside = np.flatnonzero((nodes < 0) | (nodes >= sizes[node_type]))
            if len(outside):
                raise ValueError(
                    f"{path}: row {int(rows[outside[0]])}: field {column} = {int(nodes[outside[0]])} is outside "
                    f"the {sizes[node_type]} {node_type}s of the graph stage's index: stale triples, rerun `glom graph`"
                )
        if not np.array_equal(np.sort(head * sizes[tail_type] + tail), expected[name]):
            raise ValueError(
                f"{path}: relation {name!r} holds {len(head)} triples that are not the {len(expected[name])} "
                "pairs of the graph stage's edges (stale triples from another graph run); rerun `glom graph`"
            )
        out.append(Relation(head_type, name, tail_type, head, tail, weights[rows].astype(np.float64)))
    return out


def _expected_pairs(data: LookalikeData, graph_cfg: GraphConfig) -> dict[str, np.ndarray]:
    """Per forward relation, the sorted pair keys ``head * n_tail_type + tail`` that ``data`` implies."""
    edges = data.edges
    users = edges["user_idx"].to_numpy(dtype=np.int64)
    items = edges["item_idx"].to_numpy(dtype=np.int64)
    keys = users * data.n_items + items
    out = {RELATION_INTERACTED: np.sort(keys)}
    if graph_cfg.use_polarity_edges:
        liked = edges["liked"].to_numpy(dtype=bool)
        out[RELATION_LIKES], out[RELATION_DISLIKES] = np.sort(keys[liked]), np.sort(keys[~liked])
    if graph_cfg.use_similarity_edges:
        a = data.similarity["user_a"].to_numpy(dtype=np.int64)
        b = data.similarity["user_b"].to_numpy(dtype=np.int64)
        out[RELATION_SIMILAR] = np.sort(np.r_[a * data.n_users + b, b * data.n_users + a])
    return out


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
