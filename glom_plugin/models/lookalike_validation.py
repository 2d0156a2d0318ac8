"""Model selection on the task the user embeddings serve: small lookalike campaigns from held-out pairs.

GLM's loss (Eq. 9) is user->item link prediction, but GLoM uses the *user* embeddings for lookalike
retrieval (§3.7): candidates are ranked by similarity to a seed list. The two can disagree. On
MovieLens, every GLM-Mean epoch raised held-out link-prediction MRR (0.14 -> 0.53 in 5 epochs) while
the lookalike PR-AUC of the same embeddings fell (0.570 -> 0.494; benchmarks/results/
glm_selection_movielens.md): Eq. 9 pulls each user onto the items it touched and erases the user-user
structure PM had learnt. So GLM's early stopping measures lookalike retrieval itself, label-free, from
the training graph:

each held-out user-item pair (u, i), removed from everything the model trains on, becomes a campaign:
seeds = up to ``MAX_SEEDS`` other users who interacted with i in training, candidates = u plus
``CANDIDATES`` users who never interacted with i. Candidates are scored exactly as expansion scores
them (``expand.aggregation`` over the retrieval vectors, ``expand.center``); the metric is u's MRR
(and hits@10). Pairs whose item has fewer than ``MIN_SEEDS`` other purchasers are not campaigns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from glom_plugin.data.schema import RELATION_INTERACTED
from glom_plugin.expand.aggregation import aggregate_similarity, retrieval_vectors
from glom_plugin.models.kg import KnowledgeTriples
from glom_plugin.models.ranking import rank_metrics

CANDIDATES = 50
MIN_SEEDS = 3
MAX_SEEDS = 20


def _users_by_item(triples: KnowledgeTriples) -> dict[int, np.ndarray]:
    """item node id -> the user ids with an ``interacted`` triple to it."""
    rows = triples.relations == triples.relation_id(RELATION_INTERACTED)
    users, items = triples.heads[rows], triples.tails[rows]
    order = np.argsort(items, kind="stable")
    users, items = users[order], items[order]
    bounds = np.flatnonzero(np.diff(items)) + 1
    groups = zip(np.split(items, bounds), np.split(users, bounds), strict=True)
    return {int(group[0]): u for group, u in groups if len(group)}


@dataclass(frozen=True)
class LookalikeValidation:
    """One small campaign per usable held-out pair; ``score`` ranks each held-out user among its candidates."""

    seeds: list[np.ndarray]  # per campaign: user ids
    candidates: np.ndarray  # (B, 1 + CANDIDATES) user ids; column 0 is the held-out user
    valid: np.ndarray  # (B, CANDIDATES) False where fewer clean negatives could be drawn
    aggregation: str
    center: bool

    def __len__(self) -> int:
        return len(self.seeds)

    @classmethod
    def build(
        cls,
        users: np.ndarray,
        items: np.ndarray,
        train: KnowledgeTriples,
        full: KnowledgeTriples,
        rng: np.random.Generator,
        aggregation: str = "mean",
        center: bool = True,
    ) -> LookalikeValidation | None:
        """Campaigns from held-out pairs ``(users[k], items[k])``; None when none has enough seeds.

        ``train`` must not contain the held-out pairs (their seeds come from it); ``full`` decides who
        "never interacted" with the item, so a negative is never a hidden purchaser.
        """
        in_train, in_full = _users_by_item(train), _users_by_item(full)
        seeds, rows, valid = [], [], []
        for user, item in zip(np.asarray(users), np.asarray(items), strict=True):
            pool = in_train.get(int(item), np.empty(0, np.int64))
            pool = pool[pool != user]
            if len(pool) < MIN_SEEDS:
                continue
            chosen = rng.choice(pool, size=min(MAX_SEEDS, len(pool)), replace=False)
            draws = rng.integers(0, full.n_users, size=3 * CANDIDATES)
            clean = draws[~np.isin(draws, in_full.get(int(item), np.empty(0, np.int64))) & (draws != user)]
            negatives = np.full(CANDIDATES, user, dtype=np.int64)
            negatives[: min(CANDIDATES, len(clean))] = clean[:CANDIDATES]
            seeds.append(np.sort(chosen))
            rows.append(np.concatenate([[user], negatives]))
            valid.append(np.arange(CANDIDATES) < len(clean))
        if not seeds:
            return None
        return cls(seeds, np.asarray(rows, dtype=np.int64), np.asarray(valid), aggregation, center)

    def score(self, user_embeddings: np.ndarray) -> dict[str, float]:
        """MRR and hits@10 of each held-out user among its campaign's candidates (ties count half)."""
        vectors = retrieval_vectors(user_embeddings, self.center)
        scores = np.stack(
            [
                aggregate_similarity(vectors[row], vectors[seeds], self.aggregation)  # type: ignore[arg-type]
                for row, seeds in zip(self.candidates, self.seeds, strict=True)
            ]
        )
        # a higher similarity ranks first: negated, it is an energy
        energy = torch.from_numpy(-scores)
        return rank_metrics(energy[:, 0], energy[:, 1:], torch.from_numpy(self.valid))
