"""`glom graph` on Spark (``--set backend=spark``): the artifacts of ``stages/graph.py``, computed by Spark.

    interactions ─► polarity (§3.3, graph/polarity_spark.py) ─► id maps ─► Eq. 1 (§3.4, similarity_spark.py)
                 ─► GX gate on the Spark tables (platform/gx_spark.py) ─► triples (§3.1) ─► DGL graph

Same inputs, same outputs (names, Parquet schemas, row order, report keys), so PM, GLM, profiles and
evaluation read a Spark-prepared run unchanged; tests/integration/test_spark_prepare.py checks the tables
against the local backend's on every shared dataset. What stays on the driver, and why: the DGL
knowledge graph (one binary file that training loads whole) and the report's degree percentiles are
built from the integer-indexed edges, which the driver collects once (16 bytes of indices + 3 floats per
edge); everything per review (sentiment, the filter, merging, means, triples) runs in Spark tasks.
Not done on Spark: reusing a previous run's stored sentiment (the local stage's cache) — every review is
scored again.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from glom_plugin.config import GlomConfig
from glom_plugin.data.schema import POLARITY_SCHEMA, SIMILARITY_SCHEMA, TRIPLES_SCHEMA
from glom_plugin.graph.build import degenerate_graph_warnings, graph_report, lookalike_data_from_edges
from glom_plugin.layout import RunLayout
from glom_plugin.parquet_spark import write_single_parquet
from glom_plugin.stages.graph import INDEX_SCHEMA, SENTIMENT_BACKEND_METADATA, _index_table
from glom_plugin.stages.meter import StageMeter
from glom_plugin.storage import write_json, write_parquet


def index_spark(frame: Any, column: str) -> Any:
    """(idx, id): the sorted distinct values of ``column`` numbered 0..n-1 — the local id maps' order.
    One ordered pass (a global sort, then ``zipWithIndex``), never a collect of the ids."""
    from pyspark.sql import functions as F

    ids = frame.select(F.col(column).alias("id")).distinct().orderBy("id")
    spark = frame.sparkSession
    pairs = ids.rdd.zipWithIndex().map(lambda row: (int(row[1]), row[0][0]))
    return spark.createDataFrame(pairs, "idx long, id string")


def triples_spark(edges: Any, similarity: Any, graph_cfg: Any) -> Any:
    """``knowledge_graph.knowledge_graph_triples`` on Spark: forward relations in the local order
    (interacted, likes, dislikes over the edges in polarity order; similar a→b then b→a), sortable by
    ``_rel``, ``_dir``, ``_pos``."""
    from pyspark.sql import functions as F

    from glom_plugin.data.schema import (
        RELATION_DISLIKES,
        RELATION_INTERACTED,
        RELATION_LIKES,
        RELATION_SIMILAR,
    )

    def user_item(frame: Any, rel: int, name: str, weight: Any) -> Any:
        return frame.select(
            F.col("user_idx").alias("head"), F.lit("user").alias("head_type"), F.lit(name).alias("relation"),
            F.col("item_idx").alias("tail"), F.lit("item").alias("tail_type"), weight.cast("double").alias("weight"),
            F.lit(rel).alias("_rel"), F.lit(0).alias("_dir"), F.col("_order").alias("_pos"),
        )

    parts = [user_item(edges, 0, RELATION_INTERACTED, F.lit(1.0))]
    if graph_cfg.use_polarity_edges:
        parts.append(user_item(edges.filter(F.col("liked")), 1, RELATION_LIKES, F.col("polarity")))
        parts.append(user_item(edges.filter(~F.col("liked")), 2, RELATION_DISLIKES, F.lit(1.0) - F.col("polarity")))
    if graph_cfg.use_similarity_edges:
        for direction, (head, tail) in enumerate((("user_a", "user_b"), ("user_b", "user_a"))):
            parts.append(similarity.select(
                F.col(head).alias("head"), F.lit("user").alias("head_type"), F.lit(RELATION_SIMILAR).alias("relation"),
                F.col(tail).alias("tail"), F.lit("user").alias("tail_type"), F.col("similarity").alias("weight"),
                F.lit(3).alias("_rel"), F.lit(direction).alias("_dir"), F.col("_order").alias("_pos"),
            ))
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out


def run_graph_stage_spark(cfg: GlomConfig, layout: RunLayout) -> dict[str, Any]:
    """The graph stage on Spark; writes what ``stages.graph.run_graph_stage`` writes. Raises
    ``ValidationFailed`` (and writes no graph) when the edges break a suite."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from glom_plugin.graph.knowledge_graph import build_knowledge_graph, save_knowledge_graph
    from glom_plugin.graph.polarity_spark import ORDER_COLUMNS, polarity_edges_spark
    from glom_plugin.graph.similarity import similarity_with_ids
    from glom_plugin.platform.gx_spark import validate_spark_tables
    from glom_plugin.spark_session import get_spark_session
    from glom_plugin.text.sentiment import sentiment_backend_key

    for path in (layout.interactions, layout.items):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run `glom ingest` first")
    meter = StageMeter()
    spark = get_spark_session("glom-graph")
    with meter.section("polarity"):
        interactions = spark.read.parquet(str(layout.interactions))
        items_spark = spark.read.parquet(str(layout.items))
        polarity, dropped, repeats_merged = polarity_edges_spark(interactions, cfg)
        polarity = polarity.withColumn("_order", F.row_number().over(Window.orderBy(*ORDER_COLUMNS)) - 1)
        polarity = polarity.drop(*ORDER_COLUMNS).localCheckpoint()
        n_text = int(polarity.filter(F.col("sentiment").isNotNull()).count())
    with meter.section("index"):
        users, items_index = index_spark(polarity, "user_id").persist(), index_spark(polarity, "item_id").persist()
        edges = (
            polarity.join(users.select(F.col("id").alias("user_id"), F.col("idx").alias("user_idx")), "user_id")
            .join(items_index.select(F.col("id").alias("item_id"), F.col("idx").alias("item_idx")), "item_id")
            .select("_order", "user_idx", "item_idx", "rating_norm", "sentiment", "polarity", "liked")
            .persist()
        )
        edges_local = edges.orderBy("_order").drop("_order").toPandas()
        edges_local["sentiment"] = edges_local["sentiment"].astype(np.float64)  # null -> NaN, as locally
        user_ids = _ids(users)
        item_ids = _ids(items_index)
        items = pd.read_parquet(layout.items)
    with meter.section("similarity"):
        spark_cfg = cfg.with_overrides(**{"similarity.backend": "spark"})
        data = lookalike_data_from_edges(edges_local, user_ids, item_ids, items, spark_cfg)
        similarity = similarity_with_ids(data.similarity, data.user_ids)
        similarity_spark = spark.createDataFrame(pa.Table.from_pandas(similarity, preserve_index=False))
    with meter.section("gx_gate"):
        validation = validate_spark_tables(
            {"polarity_edges": polarity, "similarity_edges": similarity_spark, "items": items_spark},
            layout.validation_dir / "graph",
            cfg,
        )
    backend_key = sentiment_backend_key(cfg.polarity)
    with meter.section("write_tables"):
        write_single_parquet(polarity, layout.polarity_edges, POLARITY_SCHEMA, order_by=["_order"],
                             metadata={SENTIMENT_BACKEND_METADATA: backend_key.encode()})
        write_parquet(similarity, layout.similarity_edges, schema=SIMILARITY_SCHEMA)
        write_parquet(_index_table(data.user_ids), layout.user_index)
        write_parquet(_index_table(data.item_ids), layout.item_index)
        warnings = degenerate_graph_warnings(data, edges_local[["polarity"]], cfg)
    with meter.section("dgl_graph"):
        graph = build_knowledge_graph(data, cfg.graph)
        save_knowledge_graph(graph, layout.knowledge_graph)
    with meter.section("triples"):
        indexed_similarity = spark.createDataFrame(
            pa.Table.from_pandas(data.similarity[["user_a", "user_b", "similarity"]], preserve_index=False)
        ).withColumn("_order", F.monotonically_increasing_id())
        triples = triples_spark(edges, indexed_similarity, cfg.graph)
        write_single_parquet(triples, layout.triples, TRIPLES_SCHEMA, order_by=["_rel", "_dir", "_pos"])
    edges.unpersist()
    users.unpersist()
    items_index.unpersist()

    report = graph_report(data, graph)
    report["warnings"] = warnings
    for warning in warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    meter.close()
    profile = meter.figures()
    report.update(
        {
            "backend": "spark",
            "min_interactions": dropped,
            "repeat_reviews_merged": repeats_merged,
            "sentiment_backend": backend_key,
            "sentiment_cached_rows": 0,
            "sentiment_texts": {"texts": n_text},
            "validation": {"success": validation.success, "data_docs": validation.data_docs_index},
            "seconds": {name: figures["s"] for name, figures in profile.items()},
            "profile": profile,
        }
    )
    write_json(report, layout.graph_report)
    return report


def _ids(index: Any) -> np.ndarray:
    """The id column of an (idx, id) Spark index, in idx order, as the object array the id maps use."""
    table = index.orderBy("idx").select("id").toArrow()
    return np.asarray(table.column("id").to_pylist(), dtype=object)


__all__ = ["INDEX_SCHEMA", "index_spark", "run_graph_stage_spark", "triples_spark"]
