"""``glm.objective=seedset`` (beyond the paper): train GLM on the task expansion serves.

Eq. 9 teaches GLM user→item link prediction, yet GLoM ranks *users* by similarity to a seed list
(§3.7), and on real data every Eq. 9 epoch made that ranking worse (benchmarks/results/
glm_selection_*.md). The seed-set objective trains the same layers on episodes that look like
campaigns, built from the training graph's own item audiences:

1. per epoch, sample ``seedset_episodes`` items with at least ``2 * MIN_SIDE`` training buyers; split
   each item's buyers at random into pseudo-seeds S (≤ ``seedset_max_seeds``) and a pseudo-audience A
   (≤ ``seedset_max_audience``);
2. remove every (a, item) pair of the pseudo-audiences from the message graph of that epoch — in a real
   campaign the audience's purchase of the campaign's item is exactly what nobody knows, while the
   seeds keep theirs (as the evaluation's held-out positives do);
3. each step propagates the graph, takes the retrieval vectors (users centred on their mean when
   ``expand.center``, unit norm: what ``expand/aggregation.py`` compares), the query
   q = normalise(mean_{s∈S} v_s) (mean aggregation) and minimises InfoNCE, per audience member a,

       L = −log  exp(v_a·q/τ) / ( exp(v_a·q/τ) + Σ_{n∈N} exp(v_n·q/τ) )

   with N = ``seedset_negatives`` sampled users who never interacted with the item (in the full graph,
   so a negative is never a hidden buyer).

Why InfoNCE rather than a margin: the metric that matters is the audience's rank among many
non-buyers (PR-AUC over the whole population); a softmax over many negatives is a smooth surrogate of
that rank and, unlike a margin, keeps pushing once a pair is separated by a fixed gap (τ sets how
sharply it focuses on the hardest negatives). Only training rows are used: in the evaluation the
graph GLM trains on is already the leak-free training graph, and GLM's own validation pairs are held
out of the episodes as they are out of Eq. 9 (``train`` below).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional

from glom_plugin.config import GLMConfig
from glom_plugin.data.schema import RELATION_INTERACTED
from glom_plugin.models.glm import GraphLearningModel, build_message_graph
from glom_plugin.models.kg import KnowledgeTriples

MIN_SIDE = 2  # an item needs this many pseudo-seeds and this many pseudo-audience members


def users_by_item(triples: KnowledgeTriples) -> dict[int, np.ndarray]:
    """item node id -> sorted user ids with an ``interacted`` triple to it."""
    rows = triples.relations == triples.relation_id(RELATION_INTERACTED)
    users, items = triples.heads[rows], triples.tails[rows]
    order = np.lexsort((users, items))
    users, items = users[order], items[order]
    bounds = np.flatnonzero(np.diff(items)) + 1
    return {
        int(i[0]): np.unique(u)
        for i, u in zip(np.split(items, bounds), np.split(users, bounds), strict=True)
        if len(i)
    }


class SeedSetObjective:
    """Episodes and the InfoNCE step of the seed-set objective; one ``epoch`` call per GLM epoch."""

    def __init__(
        self,
        train: KnowledgeTriples,
        full: KnowledgeTriples,
        settings: GLMConfig,
        center: bool,
        backend: str,
        device: torch.device,
        rng: np.random.Generator,
        generator: torch.Generator,
    ) -> None:
        self.train, self.settings, self.center = train, settings, center
        self.backend, self.device, self.rng, self.generator = backend, device, rng, generator
        self.buyers = {i: u for i, u in users_by_item(train).items() if len(u) >= 2 * MIN_SIDE}
        self.everyone_who_bought = users_by_item(full)
        self.items = np.array(sorted(self.buyers), dtype=np.int64)
        if len(self.items) == 0:
            raise ValueError(
                f"glm.objective=seedset needs items with at least {2 * MIN_SIDE} buyers in the training graph"
            )

    def episodes(self) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """(item, pseudo-seeds, pseudo-audience) for this epoch's sampled items."""
        s = self.settings
        chosen = self.rng.choice(self.items, size=min(s.seedset_episodes, len(self.items)), replace=False)
        out = []
        for item in chosen:
            buyers = self.rng.permutation(self.buyers[int(item)])
            half = len(buyers) // 2
            out.append(
                (int(item), buyers[: min(half, s.seedset_max_seeds)], buyers[half:][: s.seedset_max_audience])
            )
        return out

    def epoch_graph(self, episodes: list[tuple[int, np.ndarray, np.ndarray]]):
        """The training message graph without any pseudo-audience member's edges to its episode's item."""
        n = self.train.n_nodes
        hidden = np.concatenate([a * n + item for item, _, a in episodes] + [np.empty(0, np.int64)])
        heads, tails = self.train.heads, self.train.tails
        keys = np.minimum(heads, tails) * n + np.maximum(heads, tails)  # users < items: key = user * n + item
        return build_message_graph(self.train.subset(~np.isin(keys, hidden)), self.backend, self.device)

    def negatives(self, item: int) -> tuple[np.ndarray, np.ndarray]:
        """``seedset_negatives`` users who never interacted with ``item`` (and a validity mask)."""
        k = self.settings.seedset_negatives
        draws = self.rng.integers(0, self.train.n_users, size=2 * k)
        clean = draws[~np.isin(draws, self.everyone_who_bought.get(item, np.empty(0, np.int64)))][:k]
        valid = np.arange(k) < len(clean)
        return np.resize(clean, k) if len(clean) else np.zeros(k, np.int64), valid

    def loss(self, h: torch.Tensor, batch: list[tuple[int, np.ndarray, np.ndarray]]) -> torch.Tensor:
        users = h[: self.train.n_users]
        if self.center:
            users = users - users.mean(dim=0, keepdim=True)
        vectors = functional.normalize(users, dim=1)
        dev = self.device
        queries = torch.stack(
            [
                functional.normalize(vectors[torch.as_tensor(seeds, device=dev)].mean(dim=0), dim=0)
                for _, seeds, _ in batch
            ]
        )
        drawn = [self.negatives(item) for item, _, _ in batch]
        neg = torch.as_tensor(np.stack([d[0] for d in drawn]), device=dev)
        valid = torch.as_tensor(np.stack([d[1] for d in drawn]), device=dev)
        tau = self.settings.seedset_temperature
        negative_logits = torch.einsum("bkd,bd->bk", vectors[neg], queries) / tau
        negative_logits = negative_logits.masked_fill(~valid, float("-inf"))
        episode = torch.as_tensor(
            np.concatenate([np.full(len(a), b) for b, (_, _, a) in enumerate(batch)]), device=dev
        )
        audience = torch.as_tensor(np.concatenate([a for _, _, a in batch]), device=dev)
        positive_logits = (vectors[audience] * queries[episode]).sum(dim=1) / tau
        logits = torch.cat([positive_logits.unsqueeze(1), negative_logits[episode]], dim=1)
        return (torch.logsumexp(logits, dim=1) - positive_logits).mean()

    def epoch(self, model: GraphLearningModel, optimizer: torch.optim.Optimizer) -> tuple[float, int]:
        """One pass over this epoch's episodes, ``seedset_batch`` episodes per step: (loss sum, steps)."""
        episodes = self.episodes()
        graph = self.epoch_graph(episodes)
        total, steps = 0.0, 0
        for begin in range(0, len(episodes), self.settings.seedset_batch):
            h, _ = model(graph)
            loss = self.loss(h, episodes[begin : begin + self.settings.seedset_batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            steps += 1
        return total, steps
