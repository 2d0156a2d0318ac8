"""The in-memory bundle every model trains on: integer-indexed users and items, polarity edges,
user–user similarity edges, item categories and (optionally) profile embeddings.

It is built by ``glom_plugin.graph.build.build_lookalike_data`` from the normalized tables — once for
the whole dataset by ``glom graph``, and once per evaluation run from the *training* interactions only,
so that no held-out purchase reaches any model (tested in tests/unit/test_leakage.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp


@dataclass
class LookalikeData:
    """Users are indexed 0..n_users-1 and items 0..n_items-1 everywhere below.

    edges: one row per observed (user, item) interaction with columns
        user_idx:int64, item_idx:int64, rating_norm:float64 in [0, 1], sentiment:float64 in [0, 1] or NaN,
        polarity:float64 in [0, 1], liked:bool.
    similarity: one row per unordered similar pair with columns user_a:int64, user_b:int64 (user_a < user_b),
        similarity:float64 (Pearson, Eq. 1, already above t_sim).
    item_categories: items x categories binary CSR matrix (empty columns when the data has none).
    user_profile_embeddings / item_profile_embeddings: float32 (n, d) arrays, L2-normalized, or None when
        profiles are disabled (ablation "w/o profiles") or not yet built.
    outside_user_ids / outside_edges: users *outside* the trained graph (dropped by the minimum-interactions
        filter, or arrived after training) that have at least one interaction with an item the graph
        knows. ``outside_edges`` has columns user_idx:int64 (into ``outside_user_ids``), item_idx:int64,
        rating_norm:float64. No graph model trains on them; a model scores them from their item rows
        (``LookalikeModel.covers_outside``). Scoring rows: graph users 0..n_users-1, then outside users
        n_users..n_users+n_outside-1 (``all_user_ids``).
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    edges: pd.DataFrame
    similarity: pd.DataFrame
    item_categories: sp.csr_matrix
    category_names: list[str] = field(default_factory=list)
    user_profile_embeddings: np.ndarray | None = None
    item_profile_embeddings: np.ndarray | None = None
    outside_user_ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    outside_edges: pd.DataFrame = field(default_factory=lambda: empty_outside_edges())

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_outside(self) -> int:
        return len(self.outside_user_ids)

    @property
    def all_user_ids(self) -> np.ndarray:
        """Graph users, then outside users: the rows a model that covers outside users scores."""
        if not self.n_outside:
            return self.user_ids
        return np.concatenate([np.asarray(self.user_ids, dtype=object), np.asarray(self.outside_user_ids, dtype=object)])

    def outside_item_matrix(self) -> sp.csr_matrix:
        """outside users x items CSR, 1.0 per interaction with an item of the graph."""
        edges = self.outside_edges
        return sp.csr_matrix(
            (np.ones(len(edges)), (edges["user_idx"].to_numpy(dtype=np.int64), edges["item_idx"].to_numpy(dtype=np.int64))),
            shape=(self.n_outside, self.n_items),
        )

    def all_user_item_matrix(self) -> sp.csr_matrix:
        """(n_users + n_outside) x items CSR, 1.0 per interaction: the raw item bag of every scorable user."""
        if not self.n_outside:
            return self.user_item_matrix()
        return sp.vstack([self.user_item_matrix(), self.outside_item_matrix()], format="csr")

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def user_item_matrix(self, values: str | None = None) -> sp.csr_matrix:
        """users x items CSR; 1.0 per interaction, or the given edge column (e.g. "polarity")."""
        data = np.ones(len(self.edges)) if values is None else self.edges[values].to_numpy(dtype=np.float64)
        return sp.csr_matrix(
            (data, (self.edges["user_idx"].to_numpy(), self.edges["item_idx"].to_numpy())),
            shape=(self.n_users, self.n_items),
        )

    def user_category_matrix(self) -> sp.csr_matrix:
        """users x categories counts: how often each user bought an item of each category."""
        return (self.user_item_matrix() @ self.item_categories).tocsr()

    def user_index(self) -> dict[str, int]:
        return {uid: i for i, uid in enumerate(self.user_ids)}

    def with_profiles(self, user_embeddings: np.ndarray | None, item_embeddings: np.ndarray | None) -> LookalikeData:
        return replace(self, user_profile_embeddings=user_embeddings, item_profile_embeddings=item_embeddings)


OUTSIDE_EDGE_COLUMNS = ("user_idx", "item_idx", "rating_norm")


def empty_outside_edges() -> pd.DataFrame:
    return pd.DataFrame({
        "user_idx": pd.Series(dtype=np.int64), "item_idx": pd.Series(dtype=np.int64),
        "rating_norm": pd.Series(dtype=np.float64),
    })
