"""Binary user features f_u ∈ {0, 1}^K shared by every Yahoo look-alike system (Ma et al. 2016, §2).

The Yahoo paper describes users by binary features ("use of a certain mobile app or not";
continuous features bucketized). Here, from what ``LookalikeData`` holds:

- ``item:<id>``      the user interacted with (bought / rated) the item — always present, so the
                     systems work on ratings-only data;
- ``liked:<id>``     the interaction's ``liked`` flag (polarity above the liking cut, GLoM §3.3) —
                     a bucketized rating, only when some edge is liked;
- ``category:<c>``   the user bought at least one item of category c (``user_category_matrix() > 0``)
                     — only when the data has item categories.

Columns that no user has are dropped, so K counts only observed features.

``with_outside=True`` appends rows for the users outside the trained graph (``LookalikeData.outside_edges``)
in the same columns: their items and categories; no ``liked`` flags (polarity is defined over the graph's
edges). Which columns exist is decided by the graph's users alone, so adding outside users changes no
graph user's features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from glom_plugin.graph.dataset import LookalikeData


@dataclass(frozen=True)
class UserFeatures:
    """``matrix``: users x K binary CSR (float32, entries exactly 1.0); ``names[k]`` describes column k."""

    matrix: sp.csr_matrix
    names: np.ndarray

    @property
    def n_features(self) -> int:
        return self.matrix.shape[1]

    def sizes(self) -> np.ndarray:
        """|f_u|: the number of features each user has (row sums of a binary matrix)."""
        return np.asarray(self.matrix.sum(axis=1)).ravel()


def _binary(matrix: sp.spmatrix) -> sp.csr_matrix:
    out = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    out.sum_duplicates()
    out.eliminate_zeros()
    out.data[:] = 1.0
    return out


def build_user_features(
    data: LookalikeData, use_liked: bool = True, use_categories: bool = True, with_outside: bool = False
) -> UserFeatures:
    """Stack the binary feature blocks described in the module docstring (empty blocks are skipped)."""
    n_rows = data.n_users + (data.n_outside if with_outside else 0)
    user_items = data.all_user_item_matrix() if with_outside else data.user_item_matrix()
    blocks = [_binary(user_items)]
    names = [np.char.add("item:", data.item_ids.astype(str))]
    if use_liked and "liked" in data.edges and bool(data.edges["liked"].any()):
        liked = data.edges[data.edges["liked"].astype(bool)]
        blocks.append(
            _binary(
                sp.csr_matrix(
                    (np.ones(len(liked)), (liked["user_idx"].to_numpy(), liked["item_idx"].to_numpy())),
                    shape=(n_rows, data.n_items),
                )
            )
        )
        names.append(np.char.add("liked:", data.item_ids.astype(str)))
    n_categories = data.item_categories.shape[1]
    if use_categories and n_categories > 0 and data.item_categories.nnz > 0:
        blocks.append(_binary((user_items @ data.item_categories) > 0))
        category_names = (
            np.asarray(data.category_names, dtype=str)
            if len(data.category_names) == n_categories
            else np.arange(n_categories).astype(str)
        )
        names.append(np.char.add("category:", category_names))
    matrix = sp.hstack(blocks, format="csr", dtype=np.float32)
    all_names = np.concatenate(names)
    observed = np.flatnonzero(np.diff(matrix[: data.n_users].tocsc().indptr) > 0)  # by the graph's users
    return UserFeatures(matrix=matrix[:, observed].tocsr(), names=all_names[observed])


def build_user_features_from_config(data: LookalikeData, yahoo_config, with_outside: bool = False) -> UserFeatures:  # noqa: ANN001
    """The feature set a Yahoo model is configured for (``cfg.yahoo.use_liked_features`` / ``use_category_features``)."""
    return build_user_features(
        data, use_liked=yahoo_config.use_liked_features, use_categories=yahoo_config.use_category_features,
        with_outside=with_outside,
    )
