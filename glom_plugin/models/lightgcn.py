"""LightGCN (He et al., SIGIR'20) — the GLoM paper's §4.2 "end-to-end LightGCN" baseline.

Users and items are nodes of one bipartite graph; there are no feature transforms and no
non-linearities: each layer is the symmetric-normalized neighbourhood sum

    e^{(k+1)} = (D^{-1/2} A D^{-1/2}) e^{(k)}                          (LightGCN Eq. 3 / matrix form Eq. 8)

and the final representation is the layer mean e = 1/(K+1) sum_{k=0..K} e^{(k)} (Eq. 4, alpha_k = 1/(K+1)).
Trained with BPR (Eq. 15, ``glom_plugin.models.bpr``). Campaigns are scored by sim(u, S) over the final
user embeddings (``EmbeddingLookalikeModel``). LightGCN is ID-based: profile embeddings are not used.

Propagation runs on DGL (``update_all`` with ``u_mul_e`` / ``sum``) on CPU. DGL's PyPI build is
CPU-only, so on CUDA the same normalized adjacency is a torch sparse matrix (``backend="torch"``);
``tests/unit/test_baselines_glom_paper.py`` checks the two give the same propagation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from glom_plugin.config import GlomConfig, LinkPredictionConfig
from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.models.base import EmbeddingLookalikeModel
from glom_plugin.models.bpr import BprSampler, train_bpr


def resolve_backend(backend: str, device: torch.device) -> str:
    """Backend "auto" = DGL on CPU (the reference), torch sparse on CUDA (DGL graphs cannot move to a GPU)."""
    if backend == "auto":
        return "torch" if device.type == "cuda" else "dgl"
    if backend == "dgl" and device.type == "cuda":
        raise ValueError(
            "backend 'dgl' cannot run on CUDA: the PyPI DGL build is CPU-only; use 'torch' or 'auto'"
        )
    return backend


@dataclass
class NormalizedAdjacency:
    r"""\hat A = D^{-1/2} A D^{-1/2} of the user–item graph (users 0..U-1, items U..U+I-1), both directions."""

    n_nodes: int
    backend: str
    graph: Any = None  # dgl.DGLGraph with edata["w"] (backend "dgl")
    matrix: torch.Tensor | None = None  # sparse (N, N) (backend "torch")

    @classmethod
    def from_edges(
        cls,
        user_idx: np.ndarray,
        item_idx: np.ndarray,
        n_users: int,
        n_items: int,
        backend: str,
        device: torch.device,
    ) -> NormalizedAdjacency:
        pairs = np.unique(np.stack([user_idx, item_idx + n_users], axis=1), axis=0)
        src = np.concatenate([pairs[:, 0], pairs[:, 1]])
        dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
        n_nodes = n_users + n_items
        degree = np.bincount(dst, minlength=n_nodes).astype(np.float64)
        inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1.0)), 0.0)
        weight = torch.from_numpy((inv_sqrt[src] * inv_sqrt[dst]).astype(np.float32))
        src_t, dst_t = torch.from_numpy(src), torch.from_numpy(dst)
        if backend == "dgl":
            from glom_plugin.dgl_compat import dgl

            graph = dgl.graph((src_t, dst_t), num_nodes=n_nodes)
            graph.edata["w"] = weight.unsqueeze(1)
            return cls(n_nodes=n_nodes, backend=backend, graph=graph)
        matrix = torch.sparse_coo_tensor(
            torch.stack([dst_t, src_t]), weight, (n_nodes, n_nodes), check_invariants=True
        ).coalesce()
        return cls(n_nodes=n_nodes, backend=backend, matrix=matrix.to(device))

    def propagate(self, h: torch.Tensor) -> torch.Tensor:
        """One layer: h'_v = sum_{u in N(v)} h_u / sqrt(|N(u)| |N(v)|)."""
        if self.backend == "dgl":
            from glom_plugin.dgl_compat import dgl

            with self.graph.local_scope():
                self.graph.ndata["h"] = h
                self.graph.update_all(dgl.function.u_mul_e("h", "w", "m"), dgl.function.sum("m", "h"))
                return self.graph.ndata["h"]
        return torch.sparse.mm(self.matrix, h)


class LightGCN(nn.Module):
    """Layer-0 ID embeddings for users and items, propagated ``layers`` times and averaged (Eq. 4)."""

    def __init__(self, n_users: int, n_items: int, dim: int, layers: int) -> None:
        super().__init__()
        self.n_users, self.n_items, self.layers = n_users, n_items, layers
        self.embedding = nn.Embedding(n_users + n_items, dim)
        nn.init.normal_(self.embedding.weight, std=0.1)  # as the reference implementation

    def forward(
        self, adjacency: NormalizedAdjacency
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(final user emb, final item emb, layer-0 user emb, layer-0 item emb)."""
        e0 = self.embedding.weight
        layer_sum, e = e0, e0
        for _ in range(self.layers):
            e = adjacency.propagate(e)  # Eq. 8
            layer_sum = layer_sum + e
        final = layer_sum / (self.layers + 1)  # Eq. 4, alpha_k = 1 / (K + 1)
        u, i = self.n_users, self.n_items
        return final[:u], final[u : u + i], e0[:u], e0[u : u + i]


def fit_lightgcn_embeddings(
    data: LookalikeData, settings: LinkPredictionConfig, device: torch.device, seed: int, desc: str
) -> tuple[np.ndarray, list[float]]:
    """Train LightGCN with BPR on ``data``'s user–item edges; return final user embeddings and the loss curve."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    backend = resolve_backend(settings.backend, device)
    adjacency = NormalizedAdjacency.from_edges(
        data.edges["user_idx"].to_numpy(np.int64),
        data.edges["item_idx"].to_numpy(np.int64),
        data.n_users,
        data.n_items,
        backend,
        device,
    )
    model = LightGCN(data.n_users, data.n_items, settings.dim, settings.layers).to(device)
    history = train_bpr(
        lambda: model(adjacency),
        list(model.parameters()),
        BprSampler.from_data(data, rng),
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        reg=settings.reg,
        device=device,
        desc=desc,
    )
    with torch.no_grad():
        user_emb = model(adjacency)[0]
    return user_emb.cpu().numpy().astype(np.float32), history


class LightGCNModel(EmbeddingLookalikeModel):
    """GLoM §4.2 LightGCN baseline: BPR-trained LightGCN user embeddings, campaigns scored by sim(u, S)."""

    name = "lightgcn"

    def __init__(self, config: GlomConfig, seed: int = 0) -> None:
        super().__init__(config, seed)
        self.settings = config.baselines.lightgcn
        self.loss_history: list[float] = []

    def _fit(self, data: LookalikeData) -> None:
        device = torch.device(self.config.resolved_device())
        self.embeddings, self.loss_history = fit_lightgcn_embeddings(
            data, self.settings, device, self.seed, "lightgcn"
        )
