"""The knowledge graph GLoM trains on, as integer triples (§3.1: G = (V, E, R), triples (u, r, v)).

Read from the graph stage's ``triples.parquet`` by the training stages (``load_knowledge_triples``), or
built from ``LookalikeData`` (``build_knowledge_triples``, through the same ``knowledge_graph_relations``
the graph stage writes, so the relations are defined in one place) where no artifact exists: the
evaluator builds it from each run's training interactions only, so no held-out edge enters here.

Nodes are indexed in one id space: users ``0 .. n_users-1``, then items ``n_users .. n_users+n_items-1``.
Relations (``glom_plugin.data.schema``):

- ``interacted``  user -> item, every observed interaction (§3.1)
- ``likes`` / ``dislikes``  user -> item by the polarity edge's ``liked`` flag (§3.3); off for the
  ablation "w/o polarity" (``graph.use_polarity_edges``)
- ``similar``  user <-> user, Pearson similarity above t_sim (§3.4, Eq. 1), both directions, one relation
  since the relation is symmetric; off for the ablation "w/o U/U similarity" (``graph.use_similarity_edges``)
- ``interacted_by`` / ``liked_by`` / ``disliked_by``  item -> user reverses, so in GLM (§3.6) users also
  receive knowledge queries from their items (a GCN on a directed KG would otherwise never update users).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from glom_plugin.config import GraphConfig
from glom_plugin.graph.dataset import LookalikeData

if TYPE_CHECKING:
    from glom_plugin.graph.knowledge_graph import Relation


@dataclass(frozen=True)
class KnowledgeTriples:
    """Directed triples (head, relation, tail) over the unified node index."""

    heads: np.ndarray  # int64 (E,)
    relations: np.ndarray  # int64 (E,)
    tails: np.ndarray  # int64 (E,)
    relation_names: tuple[str, ...]
    n_users: int
    n_items: int

    @property
    def n_nodes(self) -> int:
        return self.n_users + self.n_items

    @property
    def n_relations(self) -> int:
        return len(self.relation_names)

    def __len__(self) -> int:
        return len(self.heads)

    def relation_id(self, name: str) -> int:
        return self.relation_names.index(name)

    def reverse_of(self) -> np.ndarray:
        """For each relation, the id of the relation it reverses (``liked_by`` -> ``likes``), or -1."""
        from glom_plugin.graph.knowledge_graph import REVERSE_RELATION

        forward_of = {reverse: forward for forward, reverse in REVERSE_RELATION.items()}
        out = np.full(self.n_relations, -1, dtype=np.int64)
        for rid, name in enumerate(self.relation_names):
            if forward_of.get(name) in self.relation_names:
                out[rid] = self.relation_names.index(forward_of[name])
        return out

    def forward_only(self) -> KnowledgeTriples:
        """Triples whose relation is not a reverse: PM learns r, and a reverse relation is exactly -r."""
        return self.subset(self.reverse_of()[self.relations] < 0)

    def is_user(self, nodes: np.ndarray) -> np.ndarray:
        return np.asarray(nodes) < self.n_users

    def subset(self, mask: np.ndarray) -> KnowledgeTriples:
        return KnowledgeTriples(
            self.heads[mask],
            self.relations[mask],
            self.tails[mask],
            self.relation_names,
            self.n_users,
            self.n_items,
        )

    def triple_keys(self) -> np.ndarray:
        """One int64 per triple, (h * R + r) * N + t: lets the negative sampler test membership by search."""
        return triple_keys(self.heads, self.relations, self.tails, self.n_relations, self.n_nodes)

    def counts(self) -> dict[str, int]:
        return {name: int((self.relations == i).sum()) for i, name in enumerate(self.relation_names)}


def triple_keys(heads, relations, tails, n_relations: int, n_nodes: int):
    """Works on numpy arrays and torch tensors alike."""
    return (heads * n_relations + relations) * n_nodes + tails


def build_knowledge_triples(data: LookalikeData, graph: GraphConfig) -> KnowledgeTriples:
    """The KG of §3.1 in one id space, from the graph stage's relation list (``knowledge_graph_relations``,
    which honours the ablation switches) plus the item -> user reverse of each user -> item relation.
    For data that has no graph-stage artifact: the evaluation's leak-free training splits."""
    from glom_plugin.graph.knowledge_graph import knowledge_graph_relations

    return knowledge_triples(knowledge_graph_relations(data, graph), data.n_users, data.n_items)


def load_knowledge_triples(path: str | Path, data: LookalikeData, graph: GraphConfig) -> KnowledgeTriples:
    """The same ``KnowledgeTriples`` as ``build_knowledge_triples``, from the graph stage's ``triples.parquet``
    (checked to describe ``data`` under ``graph``; a stale file is refused), as the LightGCN reference
    reads its cached adjacency instead of recomputing it."""
    from glom_plugin.graph.knowledge_graph import read_knowledge_graph_relations

    return knowledge_triples(read_knowledge_graph_relations(path, data, graph), data.n_users, data.n_items)


def knowledge_triples(relations: Sequence[Relation], n_users: int, n_items: int) -> KnowledgeTriples:
    """Forward relations (per node type indices) -> triples in one id space, forward relations first in
    their order, then the item -> user reverse of each user -> item relation."""
    from glom_plugin.graph.knowledge_graph import ITEM, REVERSE_RELATION

    offset = {ITEM: n_users}
    names: list[str] = []
    heads: list[np.ndarray] = []
    tails: list[np.ndarray] = []
    rels: list[np.ndarray] = []

    def add(name: str, h: np.ndarray, t: np.ndarray) -> None:
        names.append(name)
        heads.append(h.astype(np.int64))
        tails.append(t.astype(np.int64))
        rels.append(np.full(len(h), len(names) - 1, dtype=np.int64))

    for rel in relations:
        add(rel.name, rel.head + offset.get(rel.head_type, 0), rel.tail + offset.get(rel.tail_type, 0))
    for rel in relations:
        if rel.name in REVERSE_RELATION:
            add(
                REVERSE_RELATION[rel.name],
                rel.tail + offset.get(rel.tail_type, 0),
                rel.head + offset.get(rel.head_type, 0),
            )
    triples = KnowledgeTriples(
        np.concatenate(heads),
        np.concatenate(rels),
        np.concatenate(tails),
        tuple(names),
        n_users,
        n_items,
    )
    _check_bounds(triples)
    return triples


def _check_bounds(triples: KnowledgeTriples) -> None:
    for label, nodes in (("head", triples.heads), ("tail", triples.tails)):
        if len(nodes) and (nodes.min() < 0 or nodes.max() >= triples.n_nodes):
            raise ValueError(
                f"LookalikeData has a {label} index outside 0..{triples.n_nodes - 1} "
                f"({triples.n_users} users + {triples.n_items} items); check edges.user_idx/item_idx and similarity"
            )
