"""GraphSAGE (Hamilton et al., NeurIPS'17) — the GLoM paper's §4.2 end-to-end GraphSAGE baseline.

Users and items are nodes of one graph (user–item purchases, both directions). Each layer samples a
fixed number of neighbours per node and aggregates them with DGL's ``SAGEConv``:

    h_N(v)^{k} = AGG({h_u^{k-1} : u in sample(N(v))}),   h_v^{k} = sigma(W^k [h_v^{k-1} || h_N(v)^{k}])   (GraphSAGE Alg. 1)

Trained unsupervised, as GraphSAGE's link-prediction variant: a purchased item's representation
should have a larger inner product with the user's than a random item's (BPR, ``models/bpr.py``).
Input features x_v are a learnable ID embedding plus, when the data carries them, a linear projection
of the node's profile embedding (GraphSAGE is the one §4.2 graph baseline defined over node features).
The final user representations score campaigns by sim(u, S).

Neighbour sampling is done per training step in numpy (seeded, hence deterministic) and the sampled
graph covers all nodes, so each step is one full-graph pass; inference uses full neighbourhoods.
DGL's PyPI build is CPU-only, so this baseline always runs on CPU.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from glom_plugin.config import GlomConfig
from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.models.base import EmbeddingLookalikeModel
from glom_plugin.models.bpr import BprSampler, train_bpr


class NeighbourSampler:
    """Keeps at most ``fanout`` random in-edges per node (GraphSAGE's fixed-size uniform sample)."""

    def __init__(self, src: np.ndarray, dst: np.ndarray, n_nodes: int, rng: np.random.Generator) -> None:
        order = np.argsort(dst, kind="stable")
        self.src, self.dst, self.n_nodes, self.rng = src[order], dst[order], n_nodes, rng
        counts = np.bincount(self.dst, minlength=n_nodes)
        self._group_start = np.concatenate([[0], np.cumsum(counts)[:-1]])

    def full(self):
        return self._graph(np.ones(len(self.src), dtype=bool))

    def sample(self, fanout: int):
        keys = self.rng.random(len(self.src))
        order = np.lexsort((keys, self.dst))  # random order inside each destination's group
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order)) - self._group_start[self.dst[order]]
        return self._graph(rank < fanout)

    def _graph(self, keep: np.ndarray):
        from glom_plugin.dgl_compat import dgl

        return dgl.graph(
            (torch.from_numpy(self.src[keep]), torch.from_numpy(self.dst[keep])), num_nodes=self.n_nodes
        )


class GraphSage(nn.Module):
    """x_v = ID embedding (+ W_p profile_v) -> ``layers`` SAGEConv layers (ReLU between)."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        dim: int,
        layers: int,
        aggregator: str,
        profile_features: torch.Tensor | None,
    ) -> None:
        super().__init__()
        from glom_plugin.dgl_compat import dgl

        self.n_users, self.n_items = n_users, n_items
        self.embedding = nn.Embedding(n_users + n_items, dim)
        nn.init.normal_(self.embedding.weight, std=0.1)
        self.register_buffer("profile_features", profile_features)
        self.profile_projection = (
            nn.Linear(profile_features.shape[1], dim, bias=False) if profile_features is not None else None
        )
        self.convs = nn.ModuleList(dgl.nn.SAGEConv(dim, dim, aggregator) for _ in range(layers))

    def forward(self, blocks: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(final user emb, final item emb, input user emb, input item emb); one graph per layer."""
        x = self.embedding.weight
        if self.profile_projection is not None:
            x = x + self.profile_projection(self.profile_features)
        h = x
        for layer, (conv, graph) in enumerate(zip(self.convs, blocks, strict=True)):
            h = conv(graph, h)
            if layer < len(self.convs) - 1:
                h = torch.relu(h)
        u, i = self.n_users, self.n_items
        return h[:u], h[u : u + i], x[:u], x[u : u + i]


def _profile_features(data: LookalikeData) -> torch.Tensor | None:
    """Users' then items' profile vectors (zeros for the side that has none); None when neither has any."""
    users, items = data.user_profile_embeddings, data.item_profile_embeddings
    if users is None and items is None:
        return None
    dim = (users if users is not None else items).shape[1]
    users = users if users is not None else np.zeros((data.n_users, dim), np.float32)
    items = items if items is not None else np.zeros((data.n_items, dim), np.float32)
    if users.shape[1] != items.shape[1]:
        raise ValueError(f"user profile dim {users.shape[1]} != item profile dim {items.shape[1]}")
    return torch.from_numpy(np.concatenate([users, items]).astype(np.float32))


class GraphSageModel(EmbeddingLookalikeModel):
    """GLoM §4.2 GraphSAGE baseline: unsupervised SAGEConv user embeddings, campaigns scored by sim(u, S)."""

    name = "graphsage"

    def __init__(self, config: GlomConfig, seed: int = 0) -> None:
        super().__init__(config, seed)
        self.settings = config.baselines.graphsage
        self.loss_history: list[float] = []

    def _fit(self, data: LookalikeData) -> None:
        settings = self.settings
        if settings.layers < 1:
            raise ValueError("baselines.graphsage.layers must be >= 1")
        fanouts = list(settings.fanouts) or [10]
        fanouts = (fanouts + [fanouts[-1]] * settings.layers)[: settings.layers]
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        pairs = np.unique(
            np.stack(
                [data.edges["user_idx"].to_numpy(np.int64), data.edges["item_idx"].to_numpy(np.int64)], 1
            ),
            axis=0,
        )
        item_nodes = pairs[:, 1] + data.n_users
        neighbours = NeighbourSampler(
            np.concatenate([pairs[:, 0], item_nodes]),
            np.concatenate([item_nodes, pairs[:, 0]]),
            data.n_users + data.n_items,
            rng,
        )
        profiles = _profile_features(data) if settings.use_profiles else None
        model = GraphSage(
            data.n_users, data.n_items, settings.dim, settings.layers, settings.aggregator, profiles
        )
        self.loss_history = train_bpr(
            lambda: model([neighbours.sample(f) for f in fanouts]),
            list(model.parameters()),
            BprSampler.from_data(data, rng),
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            lr=settings.lr,
            reg=settings.reg,
            device=torch.device("cpu"),
            desc="graphsage",
        )
        model.eval()
        with torch.no_grad():
            full = neighbours.full()
            self.embeddings = model([full] * settings.layers)[0].numpy().astype(np.float32)
