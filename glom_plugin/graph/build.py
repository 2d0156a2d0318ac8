"""`glom graph`: polarity (§3.3) → similarity (§3.4) → GX gate → knowledge graph (§3.1), and the
``LookalikeData`` bundle every model trains on.

``build_lookalike_data`` is pure and fast (no I/O, no sentiment model): the evaluator calls it once per
run on the *training* polarity edges only, so held-out purchases never reach similarity or the graph.
``run_graph_stage`` is the stage: it reads the ingested tables, scores sentiment (reusing the sentiment
already stored in a previous polarity-edges table), gates the edges with Great Expectations, then
writes the graph artifacts. ``load_lookalike_data`` reads them back without recomputing anything.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from glom_plugin.config import GlomConfig
from glom_plugin.data.schema import POLARITY_SCHEMA, SIMILARITY_SCHEMA, TRIPLES_SCHEMA
from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.layout import RunLayout
from glom_plugin.storage import write_json, write_parquet

EDGE_COLUMNS = ["user_idx", "item_idx", "rating_norm", "sentiment", "polarity", "liked"]
INDEX_SCHEMA = pa.schema(
    [pa.field("idx", pa.int64(), nullable=False), pa.field("id", pa.string(), nullable=False)]
)
# Parquet key-value metadata on polarity_edges naming the scorer of its ``sentiment`` column.
SENTIMENT_BACKEND_METADATA = b"glom.sentiment_backend"


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
    from glom_plugin.graph.similarity import compute_similarity

    if user_ids is None:
        user_ids = np.sort(polarity_edges["user_id"].unique()).astype(object)
    if item_ids is None:
        item_ids = np.sort(polarity_edges["item_id"].unique()).astype(object)
    user_ids = np.asarray(user_ids, dtype=object)
    item_ids = np.asarray(item_ids, dtype=object)
    edges = _edges_frame(polarity_edges, pd.Index(user_ids), pd.Index(item_ids))
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


def apply_min_interactions(
    interactions: pd.DataFrame, cfg: GlomConfig
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop users / items with fewer distinct partners than ``data.min_user_interactions`` /
    ``min_item_interactions``, repeatedly until both hold (dropping an item can push a user under the
    bar). Counts are returned for the report: nothing leaves silently."""
    min_user, min_item = cfg.data.min_user_interactions, cfg.data.min_item_interactions
    frame = interactions
    before_users, before_items = frame["user_id"].nunique(), frame["item_id"].nunique()
    while True:
        pairs = frame[["user_id", "item_id"]].drop_duplicates()
        user_counts = pairs["user_id"].value_counts()
        item_counts = pairs["item_id"].value_counts()
        weak_users = user_counts.index[user_counts < min_user]
        weak_items = item_counts.index[item_counts < min_item]
        if len(weak_users) == 0 and len(weak_items) == 0:
            break
        frame = frame.loc[~frame["user_id"].isin(weak_users) & ~frame["item_id"].isin(weak_items)]
    frame = frame.reset_index(drop=True)
    return frame, {
        "interactions_dropped": len(interactions) - len(frame),
        "users_dropped": before_users - frame["user_id"].nunique(),
        "items_dropped": before_items - frame["item_id"].nunique(),
    }


def _read_sentiment_cache(layout: RunLayout, backend_key: str) -> pd.DataFrame | None:
    """The stored sentiment of a previous run, only when the same backend produced it."""
    path = layout.polarity_edges
    if not path.is_file():
        return None
    metadata = pq.read_schema(path).metadata or {}
    if metadata.get(SENTIMENT_BACKEND_METADATA, b"").decode() != backend_key:
        return None
    return pd.read_parquet(path, columns=["user_id", "item_id", "sentiment"])


def _write_polarity(polarity: pd.DataFrame, layout: RunLayout, backend_key: str) -> None:
    table = pa.Table.from_pandas(polarity, schema=POLARITY_SCHEMA, preserve_index=False)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), SENTIMENT_BACKEND_METADATA: backend_key.encode()}
    )
    write_parquet(table, layout.polarity_edges)


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


def run_graph_stage(cfg: GlomConfig, layout: RunLayout) -> dict[str, Any]:
    """The stage. Writes polarity_edges, similarity_edges, user/item index, knowledge_graph.bin, triples and
    graph_report.json under ``layout.graph_dir``; GX results under ``layout.validation_dir / "graph"``.
    Raises ``ValidationFailed`` (and writes no graph) when the edges break a suite."""
    from glom_plugin.graph.knowledge_graph import (
        build_knowledge_graph,
        knowledge_graph_triples,
        save_knowledge_graph,
    )
    from glom_plugin.graph.polarity import (
        merge_repeat_reviews,
        polarity_from_sentiment,
        score_review_sentiment,
    )
    from glom_plugin.graph.similarity import similarity_with_ids
    from glom_plugin.platform.gx_gate import validate_tables
    from glom_plugin.text.sentiment import sentiment_backend_key

    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 3)
        clock = now

    for path in (layout.interactions, layout.items):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run `glom ingest` first")
    interactions = pd.read_parquet(layout.interactions)
    items = pd.read_parquet(layout.items)
    interactions, dropped = apply_min_interactions(interactions, cfg)
    lap("read")

    backend_key = sentiment_backend_key(cfg.polarity)
    cache = _read_sentiment_cache(layout, backend_key)
    scored = score_review_sentiment(interactions, cfg, cache=cache)
    lap("sentiment")
    scored, repeats_merged = merge_repeat_reviews(scored)
    polarity = polarity_from_sentiment(scored, cfg)
    lap("polarity")
    data = build_lookalike_data(polarity, items, cfg)
    similarity = similarity_with_ids(data.similarity, data.user_ids)
    lap("similarity")

    validation = validate_tables(
        {"polarity_edges": polarity, "similarity_edges": similarity, "items": items},
        layout.validation_dir / "graph",
        cfg,
    )
    lap("validation")

    _write_polarity(polarity, layout, backend_key)
    write_parquet(similarity, layout.similarity_edges, schema=SIMILARITY_SCHEMA)
    write_parquet(
        pd.DataFrame({"idx": np.arange(data.n_users), "id": data.user_ids}), layout.user_index, INDEX_SCHEMA
    )
    write_parquet(
        pd.DataFrame({"idx": np.arange(data.n_items), "id": data.item_ids}), layout.item_index, INDEX_SCHEMA
    )
    graph = build_knowledge_graph(data, cfg.graph)
    save_knowledge_graph(graph, layout.knowledge_graph)
    write_parquet(knowledge_graph_triples(data, cfg.graph), layout.triples, schema=TRIPLES_SCHEMA)
    lap("knowledge_graph")

    report = graph_report(data, graph)
    report["warnings"] = degenerate_graph_warnings(data, polarity, cfg)
    for warning in report["warnings"]:
        print(f"WARNING: {warning}", file=sys.stderr)
    report.update(
        {
            "min_interactions": dropped,
            "repeat_reviews_merged": repeats_merged,
            "sentiment_backend": backend_key,
            "sentiment_cached_rows": int(len(cache)) if cache is not None else 0,
            "validation": {"success": validation.success, "data_docs": validation.data_docs_index},
            "seconds": seconds,
        }
    )
    write_json(report, layout.graph_report)
    return report


def load_lookalike_data(layout: RunLayout) -> LookalikeData:
    """The bundle `glom graph` wrote, read back (no sentiment, no similarity recomputed)."""
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
    return LookalikeData(
        user_ids=user_ids,
        item_ids=item_ids,
        edges=edges,
        similarity=similarity,
        item_categories=categories,
        category_names=names,
    )
