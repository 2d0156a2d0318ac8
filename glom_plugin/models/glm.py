"""Graph Learning Model (GLM), GLoM §3.6–3.7: aggregate knowledge queries, update linearly, Eq. 9 loss.

Per layer l, over every KG edge (u, r, v) (§3.6.1)::

    Q^{l-1}_{(u,r,v)} = h_u^{l-1} + h_r^{l-1}                          knowledge query
    Mean   m_v = MEAN_{(u,r,v)} Q                                       Eq. 3
    Attn1  e = Q^T h_v^{l-1}                                            Eq. 6
    Attn2  e = LeakyReLU(a^T [Q || h_v^{l-1}])                          Eq. 7
           alpha = softmax of e over v's incoming queries,  m_v = sum alpha Q      Eq. 4–5
    Update h_v^l = W^l (h_v^{l-1} + m_v) + b^l,   r^l = W^l r^{l-1} + b^l          Eq. 8 (no non-linearity)

The queries are never stored as an (E, d) tensor. A knowledge query is linear in its two parts, so

    sum_e w_e Q_e      = sum_e w_e h_u  +  sum_r (sum_{e of relation r} w_e) h_r
    Q_e^T h_v          = h_u^T h_v  +  (h_v^T h_r)
    a^T [Q_e || h_v]   = a_1^T h_u  +  a_1^T h_r  +  a_2^T h_v

and every aggregator reduces to a fused source->destination sum (DGL ``u_mul_e``/``copy_u`` + ``sum``),
a fused dot product (``u_dot_v``), per-edge scalars and an (N, R) table of per-relation weight sums:
O(E + N·R) memory instead of O(E·d), the same numbers (checked against the explicit formulas in
``tests/unit/test_glm.py``).

Two interchangeable message-passing backends implement the d-dimensional graph operations:

- ``DGLMessageGraph``: DGL's ``dgl.function`` built-ins and ``dgl.ops.edge_softmax`` on a homogeneous
  graph with an edge-type id per edge (the reference; the PyPI DGL build is CPU-only);
- ``TorchMessageGraph``: ``index_add`` / ``scatter_reduce`` and a segment softmax, which runs on CUDA.

``tests/unit/test_glm.py`` checks both give the same outputs and gradients for every aggregator.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from glom_plugin.models.kg import KnowledgeTriples


class MessageGraph:
    """Edges src -> dst with a relation id each. Scalar per-edge work is plain torch indexing, shared by
    both backends; subclasses implement the d-dimensional reductions and the edge softmax."""

    narrow_indices = False  # int32 edge arrays where they fit (``index_dtype``)

    def __init__(self, src: Tensor, dst: Tensor, etype: Tensor, n_nodes: int, n_relations: int) -> None:
        dtype = self.index_dtype(n_nodes, n_relations, len(src))
        self.src, self.dst, self.etype = src.to(dtype), dst.to(dtype), etype.to(dtype)
        self.n_nodes, self.n_relations = n_nodes, n_relations
        self.in_degree = torch.bincount(self.dst, minlength=n_nodes)
        self._relation_counts: Tensor | None = None

    @classmethod
    def index_dtype(cls, n_nodes: int, n_relations: int, n_edges: int) -> torch.dtype:
        """int32 when the backend takes it and every index (``dst * R + etype`` included) fits: it halves
        the edge arrays, the largest tensors of a training run (45M edges at 10M reviews)."""
        fits = max(n_nodes * max(n_relations, 1), n_edges) < 2**31
        return torch.int32 if cls.narrow_indices and fits else torch.int64

    def relation_sums(self, weight: Tensor | None) -> Tensor:
        """(N, R): per destination and relation, the sum of the edge weights (the edge count if None)."""
        if weight is None:
            if self._relation_counts is None:
                self._relation_counts = self._scatter_relation(
                    torch.ones(len(self.src), device=self.src.device)
                )
            return self._relation_counts
        return self._scatter_relation(weight)

    def _scatter_relation(self, weight: Tensor) -> Tensor:
        flat = torch.zeros(self.n_nodes * self.n_relations, dtype=weight.dtype, device=weight.device)
        flat = flat.index_add(0, self.dst * self.n_relations + self.etype, weight)
        return flat.view(self.n_nodes, self.n_relations)

    def at_src(self, node_values: Tensor) -> Tensor:
        return node_values[self.src]

    def at_dst(self, node_values: Tensor) -> Tensor:
        return node_values[self.dst]

    def at_relation(self, relation_values: Tensor) -> Tensor:
        return relation_values[self.etype]

    def at_dst_relation(self, table: Tensor) -> Tensor:
        """``table[dst, etype]`` for an (N, R) table."""
        return table.reshape(-1)[self.dst * self.n_relations + self.etype]

    def src_dot_dst(self, h: Tensor) -> Tensor:
        """h_u^T h_v per edge."""
        raise NotImplementedError

    def sum_from_src(self, h: Tensor, weight: Tensor | None) -> Tensor:
        """(N, d): sum over incoming edges of weight_e * h_src (weight 1 when None); zeros where none."""
        raise NotImplementedError

    def edge_softmax(self, logits: Tensor) -> Tensor:
        """Softmax of edge logits over each destination's incoming edges."""
        raise NotImplementedError


class TorchMessageGraph(MessageGraph):
    """Scatter-based message passing on any torch device."""

    def src_dot_dst(self, h: Tensor) -> Tensor:
        return (h[self.src] * h[self.dst]).sum(dim=-1)

    def sum_from_src(self, h: Tensor, weight: Tensor | None) -> Tensor:
        values = h[self.src] if weight is None else weight.unsqueeze(-1) * h[self.src]
        return torch.zeros(self.n_nodes, h.shape[1], dtype=h.dtype, device=h.device).index_add(
            0, self.dst, values
        )

    def edge_softmax(self, logits: Tensor) -> Tensor:
        # segment softmax: subtract each destination's max for stability, then normalise by the segment sum
        seg_max = torch.full((self.n_nodes,), float("-inf"), dtype=logits.dtype, device=logits.device)
        seg_max = seg_max.scatter_reduce(0, self.dst, logits.detach(), reduce="amax", include_self=True)
        exp = torch.exp(logits - seg_max[self.dst])
        seg_sum = torch.zeros(self.n_nodes, dtype=logits.dtype, device=logits.device).index_add(
            0, self.dst, exp
        )
        return exp / seg_sum[self.dst]


class DGLMessageGraph(MessageGraph):
    """The same operations with DGL's fused built-in message functions (CPU), on an int32 graph where the
    ids fit (DGL's ``idtype``: its COO and CSR arrays halve too)."""

    narrow_indices = True

    def __init__(self, src: Tensor, dst: Tensor, etype: Tensor, n_nodes: int, n_relations: int) -> None:
        from glom_plugin.dgl_compat import dgl

        super().__init__(src.cpu(), dst.cpu(), etype.cpu(), n_nodes, n_relations)
        self.dgl = dgl
        self.graph = dgl.graph((self.src, self.dst), num_nodes=n_nodes, idtype=self.src.dtype)
        self.graph.edata["etype"] = self.etype

    def src_dot_dst(self, h: Tensor) -> Tensor:
        with self.graph.local_scope():
            self.graph.ndata["h"] = h
            self.graph.apply_edges(self.dgl.function.u_dot_v("h", "h", "s"))
            return self.graph.edata["s"].squeeze(-1)

    def sum_from_src(self, h: Tensor, weight: Tensor | None) -> Tensor:
        fn = self.dgl.function
        with self.graph.local_scope():
            self.graph.ndata["h"] = h
            if weight is None:
                message = fn.copy_u("h", "m")
            else:
                self.graph.edata["w"] = weight.unsqueeze(-1)
                message = fn.u_mul_e("h", "w", "m")
            self.graph.update_all(message, fn.sum("m", "out"))
            return self.graph.ndata["out"]

    def edge_softmax(self, logits: Tensor) -> Tensor:
        return self.dgl.ops.edge_softmax(self.graph, logits.unsqueeze(-1)).squeeze(-1)


MESSAGE_BACKENDS: dict[str, type[MessageGraph]] = {"torch": TorchMessageGraph, "dgl": DGLMessageGraph}


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
    return MESSAGE_BACKENDS[backend](src, dst, etype, triples.n_nodes, triples.n_relations)


def knowledge_query_sum(
    graph: MessageGraph, h: Tensor, relation_table: Tensor, weight: Tensor | None
) -> Tensor:
    """(N, d): sum over v's incoming edges of weight_e * Q_(u,r,v), with Q = h_u + h_r (§3.6.1)."""
    return graph.sum_from_src(h, weight) + graph.relation_sums(weight).to(h.dtype) @ relation_table


# --- aggregators (§3.6.1), looked up by config name -------------------------------------------------


class MeanAggregator(nn.Module):
    """Eq. 3: the average of v's incoming knowledge queries (zero for a node without any)."""

    def __init__(self, dim: int) -> None:
        super().__init__()

    def forward(self, graph: MessageGraph, h: Tensor, relation_table: Tensor) -> Tensor:
        degree = graph.in_degree.clamp(min=1).to(h.dtype).unsqueeze(1)
        return knowledge_query_sum(graph, h, relation_table, None) / degree


class _AttentionAggregator(nn.Module):
    """Eq. 4–5: m_v = sum alpha_(u,r,v) Q_(u,r,v), alpha = softmax over v's incoming queries."""

    def logits(self, graph: MessageGraph, h: Tensor, relation_table: Tensor) -> Tensor:
        raise NotImplementedError

    def attention(self, graph: MessageGraph, h: Tensor, relation_table: Tensor) -> Tensor:
        return graph.edge_softmax(self.logits(graph, h, relation_table))

    def forward(self, graph: MessageGraph, h: Tensor, relation_table: Tensor) -> Tensor:
        alpha = self.attention(graph, h, relation_table)
        return knowledge_query_sum(graph, h, relation_table, alpha)


class InnerProductAttention(_AttentionAggregator):
    """Attn1, Eq. 6: e = Q^T h_v = h_u^T h_v + h_r^T h_v (as in KGCN)."""

    def __init__(self, dim: int) -> None:
        super().__init__()

    def logits(self, graph: MessageGraph, h: Tensor, relation_table: Tensor) -> Tensor:
        return graph.src_dot_dst(h) + graph.at_dst_relation(h @ relation_table.T)


class LearnedAttention(_AttentionAggregator):
    """Attn2, Eq. 7: e = LeakyReLU(a^T [Q || h_v]) with a trainable a in R^{2H}."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.empty(2 * dim))
        nn.init.normal_(self.a, std=1.0 / (2 * dim) ** 0.5)
        self.leaky_relu = nn.LeakyReLU(0.2)

    def logits(self, graph: MessageGraph, h: Tensor, relation_table: Tensor) -> Tensor:
        dim = h.shape[1]
        a_query, a_destination = self.a[:dim], self.a[dim:]
        # a^T [Q || h_v] = a_Q^T h_u + a_Q^T h_r + a_h^T h_v: three scalars per node / relation, gathered
        score = graph.at_src(h @ a_query) + graph.at_relation(relation_table @ a_query)
        return self.leaky_relu(score + graph.at_dst(h @ a_destination))


AGGREGATORS: dict[str, type[nn.Module]] = {
    "mean": MeanAggregator,
    "attn1": InnerProductAttention,
    "attn2": LearnedAttention,
}


class KnowledgeQueryLayer(nn.Module):
    """One GLM layer: aggregate knowledge queries -> linear update (Eq. 8)."""

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
        message = self.aggregator(graph, h, relation_table)  # m_Q^l over Q = h_u + h_r, Eq. 3 / 4–7
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
