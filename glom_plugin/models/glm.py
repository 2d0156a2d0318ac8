"""Graph Learning Model (GLM), GLoM §3.6–3.7: aggregate knowledge queries, update linearly, Eq. 9 loss.

Per layer l, over every KG edge (u, r, v) (§3.6.1)::

    Q^{l-1}_{(u,r,v)} = h_u^{l-1} + h_r^{l-1}                          knowledge query
    Mean   m_v = MEAN_{(u,r,v)} Q                                       Eq. 3
    Attn1  e = Q^T h_v^{l-1}                                            Eq. 6
    Attn2  e = LeakyReLU(a^T [Q || h_v^{l-1}])                          Eq. 7
           alpha = softmax of e over v's incoming queries,  m_v = sum alpha Q      Eq. 4–5
    Update h_v^l = W^l (h_v^{l-1} + m_v) + b^l,   r^l = W^l r^{l-1} + b^l          Eq. 8 (no non-linearity)

Two interchangeable message-passing backends implement the graph operations:

- ``DGLMessageGraph``: DGL's ``dgl.function`` built-ins and ``dgl.ops.edge_softmax`` on a homogeneous
  graph with an edge-type id per edge (the reference; the PyPI DGL build is CPU-only);
- ``TorchMessageGraph``: ``index_add_`` / ``scatter_reduce`` and a segment softmax, which runs on CUDA.

``tests/unit/test_glm.py`` checks both give the same outputs and gradients for every aggregator.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn

from glom_plugin.models.kg import KnowledgeTriples


class MessageGraph(Protocol):
    """The graph operations a GLM layer needs; edges are (src -> dst) with a relation id each."""

    n_nodes: int

    def knowledge_queries(self, h: Tensor, relation_table: Tensor) -> Tensor:
        """Q_(u,r,v) = h_u + h_r, one row per edge."""

    def dot_with_destination(self, values: Tensor, h: Tensor) -> Tensor:
        """<values_e, h_dst(e)> per edge."""

    def add_destination(self, edge_scalar: Tensor, node_scalar: Tensor) -> Tensor:
        """edge_scalar_e + node_scalar_dst(e) per edge."""

    def edge_softmax(self, logits: Tensor) -> Tensor:
        """Softmax of edge logits over each destination's incoming edges."""

    def sum_at_destination(self, values: Tensor) -> Tensor:
        """(N, d): sum of incoming edge rows per node (zeros where none)."""

    def mean_at_destination(self, values: Tensor) -> Tensor:
        """(N, d): mean of incoming edge rows per node (zeros where none)."""


class TorchMessageGraph:
    """Scatter-based message passing on any torch device."""

    def __init__(self, src: Tensor, dst: Tensor, etype: Tensor, n_nodes: int) -> None:
        self.src, self.dst, self.etype, self.n_nodes = src.long(), dst.long(), etype.long(), n_nodes
        self.in_degree = torch.bincount(self.dst, minlength=n_nodes)

    def knowledge_queries(self, h: Tensor, relation_table: Tensor) -> Tensor:
        return h[self.src] + relation_table[self.etype]

    def dot_with_destination(self, values: Tensor, h: Tensor) -> Tensor:
        return (values * h[self.dst]).sum(dim=-1)

    def add_destination(self, edge_scalar: Tensor, node_scalar: Tensor) -> Tensor:
        return edge_scalar + node_scalar[self.dst]

    def edge_softmax(self, logits: Tensor) -> Tensor:
        # segment softmax: subtract each destination's max for stability, then normalise by the segment sum
        seg_max = torch.full((self.n_nodes,), float("-inf"), dtype=logits.dtype, device=logits.device)
        seg_max = seg_max.scatter_reduce(0, self.dst, logits.detach(), reduce="amax", include_self=True)
        exp = torch.exp(logits - seg_max[self.dst])
        seg_sum = torch.zeros(self.n_nodes, dtype=logits.dtype, device=logits.device).index_add(
            0, self.dst, exp
        )
        return exp / seg_sum[self.dst]

    def sum_at_destination(self, values: Tensor) -> Tensor:
        out = torch.zeros(self.n_nodes, values.shape[1], dtype=values.dtype, device=values.device)
        return out.index_add(0, self.dst, values)

    def mean_at_destination(self, values: Tensor) -> Tensor:
        degree = self.in_degree.clamp(min=1).to(values.dtype).unsqueeze(1)
        return self.sum_at_destination(values) / degree


class DGLMessageGraph:
    """The same operations with DGL built-in message functions (CPU)."""

    def __init__(self, src: Tensor, dst: Tensor, etype: Tensor, n_nodes: int) -> None:
        from glom_plugin.dgl_compat import dgl

        self.dgl = dgl
        self.graph = dgl.graph((src.long().cpu(), dst.long().cpu()), num_nodes=n_nodes)
        self.graph.edata["etype"] = etype.long().cpu()
        self.n_nodes = n_nodes

    def knowledge_queries(self, h: Tensor, relation_table: Tensor) -> Tensor:
        fn = self.dgl.function
        with self.graph.local_scope():
            self.graph.ndata["h"] = h
            self.graph.edata["r"] = relation_table[self.graph.edata["etype"]]
            self.graph.apply_edges(fn.u_add_e("h", "r", "q"))
            return self.graph.edata["q"]

    def dot_with_destination(self, values: Tensor, h: Tensor) -> Tensor:
        fn = self.dgl.function
        with self.graph.local_scope():
            self.graph.ndata["h"] = h
            self.graph.edata["q"] = values
            self.graph.apply_edges(fn.e_dot_v("q", "h", "s"))
            return self.graph.edata["s"].squeeze(-1)

    def add_destination(self, edge_scalar: Tensor, node_scalar: Tensor) -> Tensor:
        fn = self.dgl.function
        with self.graph.local_scope():
            self.graph.ndata["n"] = node_scalar.unsqueeze(-1)
            self.graph.edata["e"] = edge_scalar.unsqueeze(-1)
            self.graph.apply_edges(fn.e_add_v("e", "n", "s"))
            return self.graph.edata["s"].squeeze(-1)

    def edge_softmax(self, logits: Tensor) -> Tensor:
        return self.dgl.ops.edge_softmax(self.graph, logits.unsqueeze(-1)).squeeze(-1)

    def _reduce(self, values: Tensor, reducer: str) -> Tensor:
        fn = self.dgl.function
        with self.graph.local_scope():
            self.graph.edata["m"] = values
            self.graph.update_all(fn.copy_e("m", "m"), getattr(fn, reducer)("m", "out"))
            return self.graph.ndata["out"]

    def sum_at_destination(self, values: Tensor) -> Tensor:
        return self._reduce(values, "sum")

    def mean_at_destination(self, values: Tensor) -> Tensor:
        return self._reduce(values, "mean")


MESSAGE_BACKENDS: dict[str, type] = {"torch": TorchMessageGraph, "dgl": DGLMessageGraph}


def resolve_backend(backend: str, device: str) -> str:
    """``auto`` = torch scatter ops on CUDA, DGL on CPU; DGL on CUDA is refused (the PyPI build is CPU-only)."""
    if backend == "auto":
        return "torch" if str(device).startswith("cuda") else "dgl"
    if backend not in MESSAGE_BACKENDS:
        raise ValueError(f"unknown glm.backend {backend!r}; choose auto, {', '.join(MESSAGE_BACKENDS)}")
    if backend == "dgl" and str(device).startswith("cuda"):
        raise ValueError(
            "glm.backend=dgl cannot run on CUDA: the PyPI DGL build is CPU-only; use torch or auto"
        )
    return backend


def build_message_graph(triples: KnowledgeTriples, backend: str, device: str | torch.device) -> MessageGraph:
    """Every KG triple (u, r, v) is an edge u -> v carrying relation r (queries flow head -> tail)."""
    src = torch.as_tensor(triples.heads, dtype=torch.long)
    dst = torch.as_tensor(triples.tails, dtype=torch.long)
    etype = torch.as_tensor(triples.relations, dtype=torch.long)
    if backend == "torch":
        src, dst, etype = src.to(device), dst.to(device), etype.to(device)
    return MESSAGE_BACKENDS[backend](src, dst, etype, triples.n_nodes)


# --- aggregators (§3.6.1), looked up by config name -------------------------------------------------


class MeanAggregator(nn.Module):
    """Eq. 3: the average of v's incoming knowledge queries."""

    def __init__(self, dim: int) -> None:
        super().__init__()

    def forward(self, graph: MessageGraph, queries: Tensor, h: Tensor) -> Tensor:
        return graph.mean_at_destination(queries)


class _AttentionAggregator(nn.Module):
    """Eq. 4–5: m_v = sum alpha_(u,r,v) Q_(u,r,v), alpha = softmax over v's incoming queries."""

    def logits(self, graph: MessageGraph, queries: Tensor, h: Tensor) -> Tensor:
        raise NotImplementedError

    def attention(self, graph: MessageGraph, queries: Tensor, h: Tensor) -> Tensor:
        return graph.edge_softmax(self.logits(graph, queries, h))

    def forward(self, graph: MessageGraph, queries: Tensor, h: Tensor) -> Tensor:
        alpha = self.attention(graph, queries, h)
        return graph.sum_at_destination(alpha.unsqueeze(-1) * queries)


class InnerProductAttention(_AttentionAggregator):
    """Attn1, Eq. 6: e = Q^T h_v (as in KGCN)."""

    def __init__(self, dim: int) -> None:
        super().__init__()

    def logits(self, graph: MessageGraph, queries: Tensor, h: Tensor) -> Tensor:
        return graph.dot_with_destination(queries, h)


class LearnedAttention(_AttentionAggregator):
    """Attn2, Eq. 7: e = LeakyReLU(a^T [Q || h_v]) with a trainable a in R^{2H}."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.empty(2 * dim))
        nn.init.normal_(self.a, std=1.0 / (2 * dim) ** 0.5)
        self.leaky_relu = nn.LeakyReLU(0.2)

    def logits(self, graph: MessageGraph, queries: Tensor, h: Tensor) -> Tensor:
        dim = queries.shape[1]
        # a^T [Q || h_v] = a_Q^T Q + a_h^T h_v: split so h_v's part is computed once per node
        return self.leaky_relu(graph.add_destination(queries @ self.a[:dim], h @ self.a[dim:]))


AGGREGATORS: dict[str, type[nn.Module]] = {
    "mean": MeanAggregator,
    "attn1": InnerProductAttention,
    "attn2": LearnedAttention,
}


class KnowledgeQueryLayer(nn.Module):
    """One GLM layer: knowledge queries -> aggregator -> linear update (Eq. 8)."""

    def __init__(self, dim: int, aggregator: str) -> None:
        super().__init__()
        if aggregator not in AGGREGATORS:
            raise ValueError(f"unknown glm.aggregator {aggregator!r}; choose one of {', '.join(AGGREGATORS)}")
        self.aggregator = AGGREGATORS[aggregator](dim)
        self.linear = nn.Linear(dim, dim)  # W^l, b^l
        # start at the identity so an untrained layer keeps PM's geometry instead of scrambling it
        nn.init.eye_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, graph: MessageGraph, h: Tensor, relation_table: Tensor) -> tuple[Tensor, Tensor]:
        knowledge_query = graph.knowledge_queries(h, relation_table)  # Q = h_u + h_r
        message = self.aggregator(graph, knowledge_query, h)  # m_Q^l, Eq. 3 / 4–7
        return self.linear(h + message), self.linear(relation_table)  # Eq. 8


class GraphLearningModel(nn.Module):
    """L knowledge-query layers over learnable initial node and relation embeddings (h^0 = PM's e)."""

    def __init__(
        self,
        n_nodes: int,
        n_relations: int,
        dim: int,
        layers: int,
        aggregator: str,
        norm: int = 2,
        initial_nodes: Tensor | np.ndarray | None = None,
        initial_relations: Tensor | np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.norm = int(norm)
        self.node = nn.Parameter(self._initial(initial_nodes, (n_nodes, dim)))
        self.relation = nn.Parameter(self._initial(initial_relations, (n_relations, dim)))
        self.layers = nn.ModuleList(KnowledgeQueryLayer(dim, aggregator) for _ in range(layers))

    @staticmethod
    def _initial(values: Tensor | np.ndarray | None, shape: tuple[int, int]) -> Tensor:
        if values is None:
            # ablation "w/o PM": random initialisation, on PM's scale (TransE uniform in the unit ball)
            bound = 6.0 / shape[1] ** 0.5
            x = torch.empty(shape).uniform_(-bound, bound)
            return x / torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp(min=1.0)
        values = torch.as_tensor(values, dtype=torch.float32).clone()
        if tuple(values.shape) != shape:
            raise ValueError(f"initial embeddings have shape {tuple(values.shape)}, expected {shape}")
        return values

    def forward(self, graph: MessageGraph) -> tuple[Tensor, Tensor]:
        """(h^L for every node, r^L for every relation)."""
        h, r = self.node, self.relation
        for layer in self.layers:
            h, r = layer(graph, h, r)
        return h, r

    def distance(self, h: Tensor, users: Tensor, items: Tensor) -> Tensor:
        """f(h_U, h_I) of Eq. 9: the distance between final user and item embeddings."""
        return torch.linalg.vector_norm(h[users] - h[items], ord=self.norm, dim=-1)

    def loss(
        self, h: Tensor, users: Tensor, positive_items: Tensor, negative_items: Tensor, margin: float
    ) -> Tensor:
        """Eq. 9: [gamma + f(h_U, h_I) - f(h_U, h_I')]_+ over observed pairs and random negatives."""
        return torch.relu(
            margin + self.distance(h, users, positive_items) - self.distance(h, users, negative_items)
        ).mean()
