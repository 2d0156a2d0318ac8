"""`glom graph`, the stage: ingested tables → sentiment → polarity (§3.3) → Eq. 1 (§3.4) → GX gate → KG (§3.1).

It reads ``layout.interactions`` / ``layout.items``, writes polarity_edges, similarity_edges, the user and
item index, knowledge_graph.bin, triples and graph_report.json under ``layout.graph_dir`` (each written
then renamed), and the GX results under ``layout.validation_dir / "graph"``; a failed gate writes no graph.

Why it is shaped this way (10M reviews on 2 cores, issue 13): ids become integer codes once, at the read
(Arrow dictionary encoding, then ranked so code order is the sorted-id order the index maps use), and
everything after — the minimum-interactions filter, repeat-review merging, polarity, Eq. 1 — runs on
those codes; only the gate and the written tables see id strings again. Review text is never held
whole: it is streamed from the Parquet file a row group at a time into ``SentimentScorer`` (each distinct
text scored once, on every core). The tables written are the same, row for row, as those of the
pandas version of this stage this replaced (tests/unit/test_graph_stage_identity.py).
``graph_report.json`` carries seconds and peak memory per sub-stage (``profile``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from glom_plugin.config import GlomConfig
from glom_plugin.data.schema import POLARITY_SCHEMA, SIMILARITY_SCHEMA, TRIPLES_SCHEMA
from glom_plugin.graph.build import (
    degenerate_graph_warnings,
    graph_report,
    lookalike_data_from_edges,
    min_interactions_mask,
    min_interactions_report,
)
from glom_plugin.graph.polarity import merge_repeat_reviews, polarity_from_sentiment, review_text_values
from glom_plugin.layout import RunLayout
from glom_plugin.stages.meter import StageMeter
from glom_plugin.storage import atomic_path, write_json, write_parquet

INDEX_SCHEMA = pa.schema(
    [pa.field("idx", pa.int64(), nullable=False), pa.field("id", pa.string(), nullable=False)]
)
# Parquet key-value metadata on polarity_edges naming the scorer of its ``sentiment`` column.
SENTIMENT_BACKEND_METADATA = b"glom.sentiment_backend"
TEXT_BATCH_ROWS = 1 << 18


def sorted_codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(int64 code per row, sorted distinct values as an object array): ``values[codes]`` is the column.
    Codes follow the sorted order of the values (numpy's object sort, as ``np.sort(unique)`` orders the
    index maps), so a code's rank among kept codes is the row's index in the final id map."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = column.dictionary_encode()
    dictionary = encoded.dictionary.to_numpy(zero_copy_only=False)
    order = np.argsort(dictionary, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    return rank[encoded.indices.to_numpy(zero_copy_only=False)], dictionary[order]


def compact(codes: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber ``codes`` to 0..k-1 over the codes present, keeping order; returns (indices, ids)."""
    present = np.unique(codes)
    return np.searchsorted(present, codes).astype(np.int64), values[present]


def _read_sentiment_cache(layout: RunLayout, backend_key: str) -> pd.DataFrame | None:
    """The stored sentiment of a previous run, only when the same backend produced it."""
    path = layout.polarity_edges
    if not path.is_file():
        return None
    metadata = pq.read_schema(path).metadata or {}
    if metadata.get(SENTIMENT_BACKEND_METADATA, b"").decode() != backend_key:
        return None
    return pd.read_parquet(path, columns=["user_id", "item_id", "sentiment"])


def cached_sentiment(
    cache: pd.DataFrame | None,
    user_codes: np.ndarray,
    item_codes: np.ndarray,
    users: np.ndarray,
    items: np.ndarray,
) -> np.ndarray:
    """Per row, the sentiment a previous polarity-edges table holds for its (user, item) pair; NaN where
    it holds none (or no text score)."""
    out = np.full(len(user_codes), np.nan, dtype=np.float64)
    if cache is None or not len(cache) or not len(user_codes):
        return out
    known = cache.loc[cache["sentiment"].notna()]
    cache_user = pd.Index(users).get_indexer(known["user_id"])
    cache_item = pd.Index(items).get_indexer(known["item_id"])
    found = (cache_user >= 0) & (cache_item >= 0)
    n_items = len(items)
    keys = cache_user[found].astype(np.int64) * n_items + cache_item[found]
    values = known["sentiment"].to_numpy(dtype=np.float64)[found]
    if len(np.unique(keys)) != len(keys):
        raise ValueError(f"{len(keys) - len(np.unique(keys))} (user_id, item_id) pairs repeat in the cached polarity edges")
    order = np.argsort(keys)
    keys, values = keys[order], values[order]
    row_keys = user_codes * n_items + item_codes
    position = np.minimum(np.searchsorted(keys, row_keys), max(len(keys) - 1, 0))
    hit = (keys[position] == row_keys) if len(keys) else np.zeros(len(row_keys), dtype=bool)
    out[hit] = values[position[hit]]
    return out


def score_rows(layout: RunLayout, rows: np.ndarray, cfg: GlomConfig) -> tuple[np.ndarray, dict[str, int]]:
    """Sentiment of the interactions at the given row positions (sorted), NaN where a row has no text.
    The title and body columns are streamed a batch at a time; nothing holds all texts at once."""
    from glom_plugin.text.sentiment_scorer import SentimentScorer

    scores = np.full(len(rows), np.nan, dtype=np.float64)
    parquet = pq.ParquetFile(layout.interactions)
    offset = 0
    with SentimentScorer(cfg.polarity) as scorer:
        for batch in parquet.iter_batches(batch_size=TEXT_BATCH_ROWS, columns=["review_title", "text"]):
            lo, hi = np.searchsorted(rows, [offset, offset + batch.num_rows])
            if hi > lo:
                local = rows[lo:hi] - offset
                titles = batch.column("review_title").take(pa.array(local)).to_numpy(zero_copy_only=False)
                bodies = batch.column("text").take(pa.array(local)).to_numpy(zero_copy_only=False)
                scores[lo:hi] = scorer.score(review_text_values(titles, bodies))
            offset += batch.num_rows
        counts = {"texts": scorer.texts_seen, "distinct_texts_scored": scorer.texts_scored,
                  "workers": scorer.workers}
    return scores, counts


def _write_polarity(polarity: pd.DataFrame, layout: RunLayout, backend_key: str) -> None:
    table = pa.Table.from_pandas(polarity, schema=POLARITY_SCHEMA, preserve_index=False)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), SENTIMENT_BACKEND_METADATA: backend_key.encode()}
    )
    write_parquet(table, layout.polarity_edges)


def _index_table(ids: np.ndarray) -> pa.Table:
    return pa.table({"idx": pa.array(np.arange(len(ids), dtype=np.int64)), "id": pa.array(ids, pa.string())},
                    schema=INDEX_SCHEMA)


def write_triples(relations: list[Any], path: Path) -> None:
    """``knowledge_graph_triples``' table (forward relations in KG order), written one relation at a time
    as Arrow columns: the constant type and relation columns are never millions of Python strings."""
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, TRIPLES_SCHEMA) as writer:
        for rel in relations:
            n = len(rel.head)
            writer.write_table(pa.table({
                "head": pa.array(rel.head, pa.int64()),
                "head_type": pa.repeat(pa.scalar(rel.head_type, pa.string()), n),
                "relation": pa.repeat(pa.scalar(rel.name, pa.string()), n),
                "tail": pa.array(rel.tail, pa.int64()),
                "tail_type": pa.repeat(pa.scalar(rel.tail_type, pa.string()), n),
                "weight": pa.array(np.asarray(rel.weight, dtype=np.float64), pa.float64()),
            }, schema=TRIPLES_SCHEMA))


def run_graph_stage(cfg: GlomConfig, layout: RunLayout) -> dict[str, Any]:
    """The stage (see the module docstring). Raises ``ValidationFailed`` (and writes no graph) when the
    edges break a suite; ``FileNotFoundError`` when ingestion has not run."""
    from glom_plugin.graph.knowledge_graph import (
        build_knowledge_graph,
        knowledge_graph_relations,
        save_knowledge_graph,
    )
    from glom_plugin.graph.similarity import similarity_with_ids
    from glom_plugin.platform.gx_gate import validate_tables
    from glom_plugin.text.sentiment import sentiment_backend_key

    for path in (layout.interactions, layout.items):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run `glom ingest` first")
    meter = StageMeter()
    with meter.section("read"):
        table = pq.read_table(layout.interactions, columns=["user_id", "item_id", "rating_norm"])
        user_codes, all_users = sorted_codes(table.column("user_id"))
        item_codes, all_items = sorted_codes(table.column("item_id"))
        rating_norm = table.column("rating_norm").to_numpy()
        del table
        items = pd.read_parquet(layout.items)
    with meter.section("min_interactions"):
        keep = min_interactions_mask(user_codes, item_codes, cfg.data.min_user_interactions,
                                     cfg.data.min_item_interactions)
        dropped = min_interactions_report(user_codes, item_codes, keep)
        rows = np.flatnonzero(keep)
        user_codes, item_codes, rating_norm = user_codes[rows], item_codes[rows], rating_norm[rows]
        del keep

    with meter.section("sentiment"):
        backend_key = sentiment_backend_key(cfg.polarity)
        cache = _read_sentiment_cache(layout, backend_key)
        sentiment = cached_sentiment(cache, user_codes, item_codes, all_users, all_items)
        todo = np.isnan(sentiment)
        sentiment[todo], sentiment_counts = score_rows(layout, rows[todo], cfg)
        del todo, rows
    with meter.section("polarity"):
        scored = pd.DataFrame(
            {"user_id": user_codes, "item_id": item_codes, "rating_norm": rating_norm, "sentiment": sentiment}
        )
        del user_codes, item_codes, rating_norm, sentiment
        scored, repeats_merged = merge_repeat_reviews(scored)
        polarity = polarity_from_sentiment(scored, cfg)
        del scored
        user_idx, user_ids = compact(polarity["user_id"].to_numpy(dtype=np.int64), all_users)
        item_idx, item_ids = compact(polarity["item_id"].to_numpy(dtype=np.int64), all_items)
        del all_users, all_items
        edges = pd.DataFrame({
            "user_idx": user_idx, "item_idx": item_idx,
            "rating_norm": polarity["rating_norm"].to_numpy(dtype=np.float64),
            "sentiment": polarity["sentiment"].to_numpy(dtype=np.float64),
            "polarity": polarity["polarity"].to_numpy(dtype=np.float64),
            "liked": polarity["liked"].to_numpy(dtype=bool),
        })
        # The written table names users and items by id (shared str objects, one per distinct id).
        polarity["user_id"] = user_ids[user_idx]
        polarity["item_id"] = item_ids[item_idx]
        del user_idx, item_idx
    with meter.section("similarity"):
        data = lookalike_data_from_edges(edges, user_ids, item_ids, items, cfg)
        similarity = similarity_with_ids(data.similarity, data.user_ids)
    with meter.section("gx_gate"):
        validation = validate_tables(
            {"polarity_edges": polarity, "similarity_edges": similarity, "items": items},
            layout.validation_dir / "graph",
            cfg,
        )
    with meter.section("write_tables"):
        _write_polarity(polarity, layout, backend_key)
        write_parquet(similarity, layout.similarity_edges, schema=SIMILARITY_SCHEMA)
        write_parquet(_index_table(data.user_ids), layout.user_index)
        write_parquet(_index_table(data.item_ids), layout.item_index)
        warnings = degenerate_graph_warnings(data, polarity, cfg)
        del polarity, similarity
    with meter.section("dgl_graph"):
        graph = build_knowledge_graph(data, cfg.graph)
        save_knowledge_graph(graph, layout.knowledge_graph)
    with meter.section("triples"):
        write_triples(knowledge_graph_relations(data, cfg.graph), layout.triples)

    report = graph_report(data, graph)
    report["warnings"] = warnings
    for warning in warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    meter.close()
    profile = meter.figures()
    report.update(
        {
            "min_interactions": dropped,
            "repeat_reviews_merged": repeats_merged,
            "sentiment_backend": backend_key,
            "sentiment_cached_rows": int(len(cache)) if cache is not None else 0,
            "sentiment_texts": sentiment_counts,
            "validation": {"success": validation.success, "data_docs": validation.data_docs_index},
            "seconds": {name: figures["s"] for name, figures in profile.items()},
            "profile": profile,
        }
    )
    write_json(report, layout.graph_report)
    return report
