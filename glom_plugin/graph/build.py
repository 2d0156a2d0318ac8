"""The ``LookalikeData`` bundle every model trains on, from polarity edges (§3.3) and Eq. 1 (§3.4).

``build_lookalike_data`` is pure and fast (no I/O, no sentiment model): the evaluator calls it once per
run on the *training* polarity edges only, so held-out purchases never reach similarity or the graph.
``lookalike_data_from_edges`` is the same from already integer-indexed edges, ``min_interactions_mask``
the minimum-interactions filter on integer codes, and ``graph_report`` / ``degenerate_graph_warnings``
describe a built graph. The stage that reads the ingested tables and writes the graph artifacts is
``glom_plugin.stages.graph``; ``load_lookalike_data`` reads those artifacts back without recomputing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from glom_plugin.config import GlomConfig
from glom_plugin.graph.dataset import LookalikeData, empty_outside_edges
from glom_plugin.layout import RunLayout

EDGE_COLUMNS = ["user_idx", "item_idx", "rating_norm", "sentiment", "polarity", "liked"]


def _index_of(ids: pd.Series, index: pd.Index, what: str) -> np.ndarray:
    positions = index.get_indexer(ids)
    if (positions < 0).any():
        unknown = ids[positions < 0].unique()[:3].tolist()
        raise ValueError(
            f"build_lookalike_data: {int((positions < 0).sum())} edges have a {what} not in the given "
            f"{what} list, e.g. {unknown}"
        )
    return positions.astype(np.int64)


def item_category_matrix(items: pd.DataFrame | None, item_ids: np.ndarray) -> tuple[sp.csr_matrix, list[str]]:
    """items × categories binary CSR from ``categories`` (list) and ``main_category``; items without
    metadata get an empty row. Category names are sorted for a stable column order."""
    n_items = len(item_ids)
    if items is None or len(items) == 0:
        return sp.csr_matrix((n_items, 0), dtype=np.float32), []
    position = pd.Index(item_ids).get_indexer(items["item_id"])
    present = position >= 0
    pairs = []
    if "categories" in items:
        exploded = pd.DataFrame(
            {"row": position[present], "category": items.loc[present, "categories"].to_numpy()}
        )
        exploded = exploded.explode("category")
        pairs.append(exploded)
    if "main_category" in items:
        pairs.append(
            pd.DataFrame(
                {"row": position[present], "category": items.loc[present, "main_category"].to_numpy()}
            )
        )
    if not pairs:
        return sp.csr_matrix((n_items, 0), dtype=np.float32), []
    frame = pd.concat(pairs, ignore_index=True)
    frame = frame[frame["category"].map(lambda c: isinstance(c, str) and bool(c.strip()))]
    frame = frame.drop_duplicates()
    names = sorted(frame["category"].unique().tolist())
    column = pd.Index(names).get_indexer(frame["category"])
    matrix = sp.csr_matrix(
        (np.ones(len(frame), dtype=np.float32), (frame["row"].to_numpy(dtype=np.int64), column)),
        shape=(n_items, len(names)),
    )
    return matrix, names


def _edges_frame(polarity_edges: pd.DataFrame, user_index: pd.Index, item_index: pd.Index) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_idx": _index_of(polarity_edges["user_id"], user_index, "user"),
            "item_idx": _index_of(polarity_edges["item_id"], item_index, "item"),
            "rating_norm": polarity_edges["rating_norm"].to_numpy(dtype=np.float64),
            "sentiment": polarity_edges["sentiment"].to_numpy(dtype=np.float64),
            "polarity": polarity_edges["polarity"].to_numpy(dtype=np.float64),
            "liked": polarity_edges["liked"].to_numpy(dtype=bool),
        }
    )


def build_lookalike_data(
    polarity_edges: pd.DataFrame,
    items: pd.DataFrame | None,
    cfg: GlomConfig,
    user_ids: np.ndarray | None = None,
    item_ids: np.ndarray | None = None,
) -> LookalikeData:
    """Index maps, edges, similarity (Eq. 1 via ``cfg.similarity``) and item categories.

    user_ids / item_ids fix the index order (e.g. the evaluator keeps every user, including those whose
    edges were all held out); by default they are the sorted distinct ids of ``polarity_edges``. Every
    edge's endpoints must be in them. No sentiment is computed here: ``polarity_edges`` already holds it.
    """
    if user_ids is None:
        user_ids = np.sort(polarity_edges["user_id"].unique()).astype(object)
    if item_ids is None:
        item_ids = np.sort(polarity_edges["item_id"].unique()).astype(object)
    user_ids = np.asarray(user_ids, dtype=object)
    item_ids = np.asarray(item_ids, dtype=object)
    edges = _edges_frame(polarity_edges, pd.Index(user_ids), pd.Index(item_ids))
    return lookalike_data_from_edges(edges, user_ids, item_ids, items, cfg)


def lookalike_data_from_edges(
    edges: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray, items: pd.DataFrame | None, cfg: GlomConfig
) -> LookalikeData:
    """``LookalikeData`` from integer-indexed edges (``EDGE_COLUMNS``) whose indices point into
    ``user_ids`` / ``item_ids``: similarity (Eq. 1) and item categories are computed here. The graph stage
    calls it with edges it indexed itself (no string lookups over millions of rows)."""
    from glom_plugin.graph.similarity import compute_similarity

    similarity = compute_similarity(edges, len(user_ids), cfg.similarity, n_items=len(item_ids))
    categories, names = item_category_matrix(items, item_ids)
    return LookalikeData(
        user_ids=user_ids,
        item_ids=item_ids,
        edges=edges,
        similarity=similarity,
        item_categories=categories,
        category_names=names,
    )


def outside_users(
    rows: pd.DataFrame | None, user_ids: np.ndarray, item_ids: np.ndarray
) -> tuple[np.ndarray, pd.DataFrame]:
    """Users outside the trained graph and their item rows: (sorted outside user ids, ``outside_edges``).

    ``rows`` are interactions (user_id, item_id, rating_norm) of any users; kept are those of users not in
    ``user_ids`` with items in ``item_ids`` (an item the graph does not know has no embedding to fold in).
    Repeat reviews of a pair become one row (mean rating), as the graph stage merges them."""
    if rows is None or not len(rows):
        return np.empty(0, dtype=object), empty_outside_edges()
    users = rows["user_id"].astype(str)
    items = rows["item_id"].astype(str)
    item_pos = pd.Index(np.asarray(item_ids).astype(str)).get_indexer(items)
    keep = ~users.isin(pd.Index(np.asarray(user_ids).astype(str))).to_numpy() & (item_pos >= 0)
    if not keep.any():
        return np.empty(0, dtype=object), empty_outside_edges()
    frame = pd.DataFrame({
        "user_id": users.to_numpy()[keep],
        "item_idx": item_pos[keep].astype(np.int64),
        "rating_norm": rows["rating_norm"].to_numpy(dtype=np.float64)[keep],
    }).groupby(["user_id", "item_idx"], sort=True, as_index=False)["rating_norm"].mean()
    ids = np.sort(frame["user_id"].unique()).astype(object)
    edges = pd.DataFrame({
        "user_idx": pd.Index(ids).get_indexer(frame["user_id"]).astype(np.int64),
        "item_idx": frame["item_idx"].to_numpy(dtype=np.int64),
        "rating_norm": frame["rating_norm"].to_numpy(dtype=np.float64),
    })
    return ids, edges


def with_outside_users(data: LookalikeData, rows: pd.DataFrame | None) -> LookalikeData:
    """``data`` with the users of ``rows`` that its graph does not hold as outside users (``outside_users``)."""
    from dataclasses import replace

    ids, edges = outside_users(rows, data.user_ids, data.item_ids)
    return replace(data, outside_user_ids=ids, outside_edges=edges)


OUTSIDE_COLUMNS = ["user_id", "item_id", "rating_norm"]


def read_outside_rows(layout: RunLayout) -> pd.DataFrame | None:
    """Interactions of users outside the graph: the ingest filter's ``outside_interactions`` table, plus
    the ingested rows of users the graph stage's own filter dropped (only read when it dropped some)."""
    frames = []
    if layout.outside_interactions.is_file():
        frames.append(pd.read_parquet(layout.outside_interactions, columns=OUTSIDE_COLUMNS))
    dropped = 0
    if layout.graph_report.is_file():
        import json

        dropped = int(json.loads(layout.graph_report.read_text()).get("min_interactions", {}).get("users_dropped", 0))
    if dropped and layout.interactions.is_file():
        frames.append(pd.read_parquet(layout.interactions, columns=OUTSIDE_COLUMNS))
    return pd.concat(frames, ignore_index=True) if frames else None


def min_interactions_mask(
    user_codes: np.ndarray, item_codes: np.ndarray, min_user: int, min_item: int
) -> np.ndarray:
    """Rows to keep so that every kept user has ≥ ``min_user`` and every kept item ≥ ``min_item`` distinct
    partners, repeating until both hold (dropping an item can push a user under the bar). Codes are
    non-negative integers (one per distinct id); repeat reviews of a pair count once."""
    user_codes = np.asarray(user_codes, dtype=np.int64)
    item_codes = np.asarray(item_codes, dtype=np.int64)
    keep = np.ones(len(user_codes), dtype=bool)
    if not len(user_codes):
        return keep
    n_items = int(item_codes.max()) + 1
    pair_key = user_codes * n_items + item_codes
    while True:
        pairs = np.unique(pair_key[keep])
        user_count = np.bincount(pairs // n_items)
        item_count = np.bincount(pairs % n_items, minlength=n_items)
        weak_user = (user_count > 0) & (user_count < min_user)
        weak_item = (item_count > 0) & (item_count < min_item)
        if not weak_user.any() and not weak_item.any():
            return keep
        weak_user = np.r_[weak_user, np.zeros(max(0, int(user_codes.max()) + 1 - len(weak_user)), dtype=bool)]
        keep &= ~weak_user[user_codes] & ~weak_item[item_codes]


def min_interactions_report(
    user_codes: np.ndarray, item_codes: np.ndarray, keep: np.ndarray
) -> dict[str, int]:
    """What ``min_interactions_mask`` removed, for the graph report: nothing leaves silently."""
    def distinct(codes: np.ndarray) -> int:
        return len(np.unique(codes))

    return {
        "interactions_dropped": int(len(keep) - keep.sum()),
        "users_dropped": distinct(user_codes) - distinct(user_codes[keep]),
        "items_dropped": distinct(item_codes) - distinct(item_codes[keep]),
    }


def apply_min_interactions(
    interactions: pd.DataFrame, cfg: GlomConfig
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop users / items with fewer distinct partners than ``data.min_user_interactions`` /
    ``min_item_interactions`` (``min_interactions_mask``). Counts are returned for the report."""
    user_codes = pd.factorize(interactions["user_id"])[0]
    item_codes = pd.factorize(interactions["item_id"])[0]
    keep = min_interactions_mask(
        user_codes, item_codes, cfg.data.min_user_interactions, cfg.data.min_item_interactions
    )
    return interactions.loc[keep].reset_index(drop=True), min_interactions_report(user_codes, item_codes, keep)


def _percentiles(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {}
    qs = np.percentile(values, [50, 90, 99])
    return {
        "p50": float(qs[0]),
        "p90": float(qs[1]),
        "p99": float(qs[2]),
        "max": float(values.max()),
        "mean": float(values.mean()),
    }


def graph_report(data: LookalikeData, graph: Any) -> dict[str, Any]:
    """Sizes and shapes of the KG: nodes and edges per type, degree percentiles, text share of polarity."""
    edges = data.edges
    similar_degree = np.bincount(
        np.r_[
            data.similarity["user_a"].to_numpy(dtype=np.int64),
            data.similarity["user_b"].to_numpy(dtype=np.int64),
        ],
        minlength=data.n_users,
    )
    return {
        "nodes": {ntype: int(graph.num_nodes(ntype)) for ntype in graph.ntypes},
        "edges": {etype[1]: int(graph.num_edges(etype)) for etype in graph.canonical_etypes},
        "degree": {
            "user_items": _percentiles(np.bincount(edges["user_idx"], minlength=data.n_users)),
            "item_users": _percentiles(np.bincount(edges["item_idx"], minlength=data.n_items)),
            "user_similar": _percentiles(similar_degree),
        },
        "users_without_similar": int((similar_degree == 0).sum()),
        "polarity_from_text_share": float(edges["sentiment"].notna().mean()) if len(edges) else 0.0,
        "liked_share": float(edges["liked"].mean()) if len(edges) else 0.0,
        "similarity": _percentiles(data.similarity["similarity"].to_numpy()),
        "categories": len(data.category_names),
    }


def degenerate_graph_warnings(data: LookalikeData, polarity: pd.DataFrame, cfg: GlomConfig) -> list[str]:
    """What makes a knowledge graph silently weaker than the paper's: no user-user edges (§3.4's Pearson
    is undefined on constant polarity vectors, e.g. implicit feedback with every rating 1 and no text),
    or one polarity value for every edge (the polarity relations then say nothing)."""
    warnings: list[str] = []
    if len(data.similarity) == 0:
        warnings.append(
            "0 user-user similarity edges: Pearson over co-rated items (§3.4) needs polarity that varies "
            f"on at least similarity.min_corated={cfg.similarity.min_corated} shared items; constant ratings without review "
            "text (implicit feedback) give none, so the graph has no 'similar' relation"
        )
    values = polarity["polarity"].to_numpy(dtype=np.float64) if len(polarity) else np.empty(0)
    if len(values) and np.nanmax(values) - np.nanmin(values) < 1e-9:
        warnings.append(
            f"every user-item polarity is {values[0]:.3g}: ratings (and sentiment) are constant, so "
            "liked/disliked polarity edges carry no preference (implicit feedback?)"
        )
    return warnings


def load_lookalike_data(layout: RunLayout) -> LookalikeData:
    """The bundle `glom graph` wrote, read back (no sentiment, no similarity recomputed), with the users
    outside the graph (``read_outside_rows``) as ``outside_user_ids`` / ``outside_edges``."""
    for path in (layout.polarity_edges, layout.similarity_edges, layout.user_index, layout.item_index):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run `glom graph` first")
    user_ids = pd.read_parquet(layout.user_index).sort_values("idx")["id"].to_numpy(dtype=object)
    item_ids = pd.read_parquet(layout.item_index).sort_values("idx")["id"].to_numpy(dtype=object)
    user_index, item_index = pd.Index(user_ids), pd.Index(item_ids)
    edges = _edges_frame(pd.read_parquet(layout.polarity_edges), user_index, item_index)
    stored = pd.read_parquet(layout.similarity_edges)
    a = _index_of(stored["user_a"], user_index, "user")
    b = _index_of(stored["user_b"], user_index, "user")
    similarity = pd.DataFrame(
        {
            "user_a": np.minimum(a, b),
            "user_b": np.maximum(a, b),
            "similarity": stored["similarity"].to_numpy(dtype=np.float64),
            "n_corated": stored["n_corated"].to_numpy(dtype=np.int64),
        }
    ).sort_values(["user_a", "user_b"], ignore_index=True)
    items = pd.read_parquet(layout.items) if layout.items.is_file() else None
    categories, names = item_category_matrix(items, item_ids)
    data = LookalikeData(
        user_ids=user_ids,
        item_ids=item_ids,
        edges=edges,
        similarity=similarity,
        item_categories=categories,
        category_names=names,
    )
    return with_outside_users(data, read_outside_rows(layout))
