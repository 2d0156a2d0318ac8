"""Bayesian Personalized Ranking on user–item edges: the unsupervised objective of the graph baselines.

LightGCN (He et al., SIGIR'20, Eq. 15), the GraphSAGE baseline's link-prediction objective and the
Pinterest baseline's global user embedding all learn from the same signal: an observed (user, item)
purchase should score above a random unobserved one. This module holds that objective and the
triple sampler; each model file holds only its encoder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from glom_plugin.graph.dataset import LookalikeData


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    r"""L_BPR = -1/|B| \sum_{(u,i,j) \in B} ln \sigma(\hat y_{ui} - \hat y_{uj})   (Rendle et al. 2009; LightGCN Eq. 15).

    ``softplus(-x) = -ln sigma(x)``, written so that large margins do not underflow.
    """
    return F.softplus(neg_scores - pos_scores).mean()


def l2_penalty(*tensors: torch.Tensor) -> torch.Tensor:
    r"""\lambda-less ||E^{(0)}_B||^2 / (2|B|): LightGCN regularizes only the batch's layer-0 embeddings."""
    batch = tensors[0].shape[0]
    return sum(t.pow(2).sum() for t in tensors) / (2.0 * batch)


@dataclass
class BprSampler:
    """Draws (user, positive item, negative item) triples; negatives are re-drawn when they hit a known purchase."""

    users: np.ndarray
    items: np.ndarray
    n_items: int
    rng: np.random.Generator
    redraws: int = 5

    @classmethod
    def from_data(cls, data: LookalikeData, rng: np.random.Generator) -> BprSampler:
        if len(data.edges) == 0:
            raise ValueError("the training graph has no user-item edges to learn from")
        return cls(
            users=data.edges["user_idx"].to_numpy(np.int64),
            items=data.edges["item_idx"].to_numpy(np.int64),
            n_items=data.n_items,
            rng=rng,
        )

    def __post_init__(self) -> None:
        self._known = np.unique(self.users * self.n_items + self.items)

    def epoch(self, batch_size: int):
        """Each observed edge once, in random order, with a fresh negative per edge."""
        order = self.rng.permutation(len(self.users))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            users, pos = self.users[idx], self.items[idx]
            neg = self.rng.integers(0, self.n_items, len(idx))
            for _ in range(self.redraws):
                clash = np.isin(users * self.n_items + neg, self._known, assume_unique=False)
                if not clash.any():
                    break
                neg[clash] = self.rng.integers(0, self.n_items, int(clash.sum()))
            yield users, pos, neg


def train_bpr(
    encode: Callable[[], tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]],
    parameters: list[torch.nn.Parameter],
    sampler: BprSampler,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    reg: float,
    device: torch.device,
    desc: str,
) -> list[float]:
    """Adam over BPR (+ reg * L2 of layer-0 embeddings). Returns the mean loss per epoch.

    ``encode()`` returns (final user emb, final item emb, layer-0 user emb, layer-0 item emb) for all
    nodes; the graphs here are small enough for a full-graph pass per batch, as in LightGCN's reference code.
    """
    optimizer = torch.optim.Adam(parameters, lr=lr)
    history: list[float] = []
    for _ in tqdm(range(epochs), desc=desc, leave=False):
        total, batches = 0.0, 0
        for users, pos, neg in sampler.epoch(batch_size):
            u = torch.from_numpy(users).to(device)
            i = torch.from_numpy(pos).to(device)
            j = torch.from_numpy(neg).to(device)
            user_emb, item_emb, user_emb0, item_emb0 = encode()
            pos_scores = (user_emb[u] * item_emb[i]).sum(-1)
            neg_scores = (user_emb[u] * item_emb[j]).sum(-1)
            loss = bpr_loss(pos_scores, neg_scores)
            if reg > 0:
                loss = loss + reg * l2_penalty(user_emb0[u], item_emb0[i], item_emb0[j])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            batches += 1
        history.append(total / max(batches, 1))
    return history
