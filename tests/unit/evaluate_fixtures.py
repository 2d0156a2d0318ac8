"""Tiny synthetic data for the evaluation-harness tests: users in taste communities buy mostly their
community's items, so a collaborative model beats chance and leakage would be visible.

Tables have the normalized-schema columns the ingest and graph stages write (interactions, items,
polarity edges); polarity comes from the real ``polarity_from_sentiment``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from glom_plugin.config import GlomConfig
from glom_plugin.layout import RunLayout
from glom_plugin.storage import write_parquet


def make_tables(
    n_users: int = 90, n_items: int = 24, n_communities: int = 3, per_user: int = 6, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(interactions, items, polarity) for a community-structured purchase log."""
    from glom_plugin.graph.polarity import polarity_from_sentiment

    rng = np.random.default_rng(seed)
    item_ids = np.array([f"i{j:03d}" for j in range(n_items)], dtype=object)
    item_comm = np.arange(n_items) % n_communities
    # Zipf-like popularity inside each community, so tasks have a spread of sizes.
    popularity = 1.0 / (1.0 + np.arange(n_items) // n_communities)
    rows = []
    for u in range(n_users):
        comm = u % n_communities
        own = np.flatnonzero(item_comm == comm)
        other = np.flatnonzero(item_comm != comm)
        n_own = per_user - 1
        chosen = list(
            rng.choice(
                own, size=min(n_own, len(own)), replace=False, p=popularity[own] / popularity[own].sum()
            )
        )
        chosen.append(int(rng.choice(other)))
        for j in chosen:
            liked = item_comm[j] == comm
            rating = int(rng.integers(4, 6)) if liked else int(rng.integers(1, 3))
            has_text = rng.random() < 0.7
            rows.append(
                {
                    "user_id": f"u{u:03d}",
                    "item_id": item_ids[j],
                    "rating": float(rating),
                    "rating_norm": (rating - 1) / 4.0,
                    "review_title": "ok" if has_text else None,
                    "text": ("great, loved it" if liked else "bad, disappointing") if has_text else None,
                    "timestamp_ms": 1_700_000_000_000 + len(rows),
                    "verified_purchase": True,
                    "helpful_votes": 0,
                    "sentiment": (0.9 if liked else 0.1) if has_text else np.nan,
                }
            )
    frame = pd.DataFrame(rows).drop_duplicates(["user_id", "item_id"], ignore_index=True)
    polarity = polarity_from_sentiment(
        frame[["user_id", "item_id", "rating_norm", "sentiment"]], GlomConfig()
    )
    interactions = frame.drop(columns=["sentiment"])
    items = pd.DataFrame(
        {
            "item_id": item_ids,
            "title": [f"item {j}" for j in range(n_items)],
            "main_category": [f"c{c}" for c in item_comm],
            "categories": [[f"c{c}"] for c in item_comm],
            "description": None,
            "features": None,
            "store": None,
            "price": None,
        }
    )
    return interactions, items, polarity


def write_run(root: Path, **kwargs: int) -> RunLayout:
    """A run directory holding the ingest and graph outputs the evaluator reads."""
    layout = RunLayout.at(root)
    interactions, items, polarity = make_tables(**kwargs)
    write_parquet(interactions, layout.interactions)
    write_parquet(items, layout.items)
    write_parquet(polarity, layout.polarity_edges)
    return layout


def small_config(root: Path, **overrides: object) -> GlomConfig:
    """Evaluation settings small enough for a unit test; profiles off unless asked (no text model)."""
    base = {
        "run_dir": str(root),
        "evaluate.runs": 2,
        "evaluate.min_purchasers": 6,
        "evaluate.max_tasks": 4,
        "evaluate.negative_ratio": 2,
        "evaluate.seed_sizes": [1, 3],
        "evaluate.embedding_sizes": [4, 8],
        "pm.use_profiles": False,
        "similarity.min_corated": 2,
        "tracking.tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
        "tracking.experiment": "glom-eval-test",
    }
    base.update(overrides)
    return GlomConfig().with_overrides(**base)
