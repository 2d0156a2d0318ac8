"""A small ``LookalikeData`` with planted communities, and campaigns whose answers are known.

Users belong to one of ``n_communities`` communities; every item belongs to one community (its only
category). Users buy mostly (85 %) from their own community, with a Zipf-like popularity inside it, and
rate own-community items higher — so a lookalike model that recovers the communities from interactions
alone should rank a campaign's held-out purchasers above non-purchasers. Nothing here is a model: it is
the ground truth the model tests measure against.

Campaigns follow the GLoM protocol (§4.1): a task is an item; half of its purchasers are the seeds, the
other half the positives to find, mixed with 10x non-purchasers; ``non_seeds`` are sampled at 1:10 for
models that train per campaign. ``training_view`` removes the positives' edges to their campaign item,
as the evaluator does before building ``LookalikeData`` (no model ever sees a held-out purchase).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.models.base import Campaign

OWN_COMMUNITY_SHARE = 0.85


def community_of_users(n_users: int, n_communities: int) -> np.ndarray:
    """The planted community of each user (round-robin, so sizes differ by at most one)."""
    return np.arange(n_users) % n_communities


def community_of_items(n_items: int, n_communities: int) -> np.ndarray:
    return np.arange(n_items) % n_communities


def make_planted_data(
    n_users: int = 300,
    n_communities: int = 4,
    n_items: int = 120,
    seed: int = 0,
    with_profiles: bool = False,
    items_per_user: tuple[int, int] = (6, 14),
    profile_dim: int = 16,
) -> LookalikeData:
    """Users x items purchases with planted communities (see module docstring)."""
    rng = np.random.default_rng(seed)
    user_comm = community_of_users(n_users, n_communities)
    item_comm = community_of_items(n_items, n_communities)
    items_by_comm = [np.flatnonzero(item_comm == c) for c in range(n_communities)]
    # Zipf-like popularity inside each community so some items have many purchasers (campaigns).
    popularity = [1.0 / np.arange(1, len(items) + 1) ** 0.8 for items in items_by_comm]
    popularity = [p / p.sum() for p in popularity]

    rows_u: list[np.ndarray] = []
    rows_i: list[np.ndarray] = []
    for u in range(n_users):
        k = int(rng.integers(items_per_user[0], items_per_user[1] + 1))
        n_own = int(rng.binomial(k, OWN_COMMUNITY_SHARE))
        c = user_comm[u]
        own = rng.choice(
            items_by_comm[c], size=min(n_own, len(items_by_comm[c])), replace=False, p=popularity[c]
        )
        other = rng.choice(np.flatnonzero(item_comm != c), size=k - len(own), replace=False)
        items = np.concatenate([own, other])
        rows_u.append(np.full(len(items), u, dtype=np.int64))
        rows_i.append(items.astype(np.int64))
    user_idx = np.concatenate(rows_u)
    item_idx = np.concatenate(rows_i)
    same = user_comm[user_idx] == item_comm[item_idx]
    rating_norm = np.clip(np.where(same, 0.8, 0.4) + rng.normal(0, 0.15, len(user_idx)), 0.0, 1.0)
    sentiment = np.clip(rating_norm + rng.normal(0, 0.1, len(user_idx)), 0.0, 1.0)
    polarity = 0.5 * rating_norm + 0.5 * sentiment  # §3.3 with alpha = 0.5
    edges = pd.DataFrame(
        {
            "user_idx": user_idx,
            "item_idx": item_idx,
            "rating_norm": rating_norm,
            "sentiment": sentiment,
            "polarity": polarity,
            "liked": polarity >= 0.5,
        }
    )

    # A few similarity edges, mostly within a community (as Pearson over co-rated items would give).
    n_pairs = max(n_users // 2, 1)
    a = rng.integers(0, n_users, n_pairs)
    b = a + n_communities * rng.integers(1, max(n_users // n_communities, 2), n_pairs)
    b = b % n_users
    keep = a != b
    pairs = np.unique(np.sort(np.stack([a[keep], b[keep]], axis=1), axis=1), axis=0)
    similarity = pd.DataFrame(
        {
            "user_a": pairs[:, 0].astype(np.int64),
            "user_b": pairs[:, 1].astype(np.int64),
            "similarity": rng.uniform(0.5, 1.0, len(pairs)),
        }
    )

    item_categories = sp.csr_matrix(
        (np.ones(n_items), (np.arange(n_items), item_comm)), shape=(n_items, n_communities)
    )
    data = LookalikeData(
        user_ids=np.array([f"u{u:06d}" for u in range(n_users)]),
        item_ids=np.array([f"i{i:06d}" for i in range(n_items)]),
        edges=edges,
        similarity=similarity,
        item_categories=item_categories,
        category_names=[f"community-{c}" for c in range(n_communities)],
    )
    if with_profiles:
        centers = rng.normal(size=(n_communities, profile_dim))
        user_prof = centers[user_comm] + rng.normal(0, 1.0, (n_users, profile_dim))
        item_prof = centers[item_comm] + rng.normal(0, 1.0, (n_items, profile_dim))
        data = data.with_profiles(_unit_rows(user_prof), _unit_rows(item_prof))
    return data


def without_categories(data: LookalikeData) -> LookalikeData:
    """The same data with no item categories (ratings-only datasets such as MovieLens)."""
    from dataclasses import replace

    empty = sp.csr_matrix((data.n_items, 0))
    return replace(data, item_categories=empty, category_names=[])


def make_campaigns(
    data: LookalikeData,
    n_campaigns: int,
    seed: int,
    min_purchasers: int = 10,
    negative_ratio: int = 10,
) -> list[tuple[Campaign, np.ndarray]]:
    """Campaigns on the most-bought items, each with its candidate labels (1 = held-out purchaser).

    Score the campaigns with a model fitted on ``training_view(data, campaigns)``.
    """
    rng = np.random.default_rng(seed)
    purchasers = data.user_item_matrix().tocsc()
    counts = np.diff(purchasers.indptr)
    eligible = np.flatnonzero(counts >= min_purchasers)
    if len(eligible) == 0:
        raise ValueError(f"no item has >= {min_purchasers} purchasers; make the planted data larger")
    chosen = rng.choice(eligible, size=min(n_campaigns, len(eligible)), replace=False)
    out: list[tuple[Campaign, np.ndarray]] = []
    for item in chosen:
        buyers = rng.permutation(purchasers.indices[purchasers.indptr[item] : purchasers.indptr[item + 1]])
        n_seeds = len(buyers) // 2
        seeds, positives = buyers[:n_seeds], buyers[n_seeds:]
        others = rng.permutation(np.setdiff1d(np.arange(data.n_users), buyers))
        n_neg = min(negative_ratio * len(positives), len(others) // 2)
        negatives = others[:n_neg]
        non_seeds = others[n_neg : n_neg + min(negative_ratio * len(seeds), len(others) - n_neg)]
        candidates = np.concatenate([positives, negatives])
        labels = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))])
        order = rng.permutation(len(candidates))
        campaign = Campaign(
            name=f"item-{data.item_ids[item]}",
            seeds=np.sort(seeds).astype(np.int64),
            non_seeds=np.sort(non_seeds).astype(np.int64),
            candidates=candidates[order].astype(np.int64),
            item_idx=int(item),
        )
        out.append((campaign, labels[order]))
    return out


def training_view(data: LookalikeData, campaigns: list[tuple[Campaign, np.ndarray]]) -> LookalikeData:
    """``data`` without the held-out purchases (positive candidate -> campaign item), as the evaluator builds it."""
    from dataclasses import replace

    held_out = set()
    for campaign, labels in campaigns:
        for user in campaign.candidates[labels == 1]:
            held_out.add((int(user), int(campaign.item_idx)))
    edges = data.edges
    keys = list(
        zip(edges["user_idx"].to_numpy().tolist(), edges["item_idx"].to_numpy().tolist(), strict=True)
    )
    keep = np.array([k not in held_out for k in keys], dtype=bool)
    return replace(data, edges=edges.loc[keep].reset_index(drop=True))


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    matrix = matrix.astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True).clip(min=1e-12)
