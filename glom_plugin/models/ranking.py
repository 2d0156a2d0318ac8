"""Rank metrics of held-out positives among sampled negatives, shared by every validation in training:
PM's and GLM's link prediction (energies) and GLM's lookalike retrieval (similarities, negated)."""

from __future__ import annotations

import torch


def rank_metrics(positive_energy: torch.Tensor, negative_energy: torch.Tensor, valid: torch.Tensor) -> dict:
    """MRR and hits@10 of each positive among its valid negatives (lower energy = better; ties count half)."""
    better = ((negative_energy < positive_energy.unsqueeze(1)) & valid).sum(dim=1).double()
    ties = ((negative_energy == positive_energy.unsqueeze(1)) & valid).sum(dim=1).double()
    rank = 1.0 + better + 0.5 * ties
    return {"mrr": float((1.0 / rank).mean()), "hits_at_10": float((rank <= 10).double().mean())}
