"""Spark backend of the user–user similarity edges (§3.4, Eq. 1), for data that outgrows one machine.

Same contract and semantics as ``similarity.pearson_similarity_memory`` (registered as "spark" in
``SIMILARITY_BACKENDS``): Pearson over the co-rated items CM with means over CM, |CM| ≥ max(2,
min_corated), sim ≥ t_sim, each user keeps its top_k partners (ties: lower index) and a pair is an edge
when either user kept the other. The sums over CM come from one self-join of the polarity edges on
item (a < b) and one aggregation per pair, whose terms are added in ascending item order (the memory
backend's order, so both give the same doubles):

    cov = Σp_a p_b − Σp_a Σp_b / n,   var_a = Σp_a² − (Σp_a)² / n,   sim = cov / √(var_a var_b)

Polarity is shifted by +1 exactly as in the memory backend, so the "constant polarity → undefined"
floor (var ≤ 1e-10 · Σp²) decides identically.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from glom_plugin.config import SimilarityConfig
from glom_plugin.graph.similarity import _RELATIVE_VARIANCE_FLOOR, SIMILARITY_COLUMNS, empty_similarity


def pearson_similarity_spark(
    edges: pd.DataFrame, n_users: int, n_items: int, cfg: SimilarityConfig
) -> pd.DataFrame:
    """Eq. 1 on a local Spark session; returns user_a < user_b, similarity, n_corated (sorted)."""
    if len(edges) == 0 or n_users == 0:
        return empty_similarity()
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from glom_plugin.spark_session import get_spark_session

    table = pa.table(
        {
            "user_idx": edges["user_idx"].to_numpy(dtype=np.int64),
            "item_idx": edges["item_idx"].to_numpy(dtype=np.int64),
            "p": edges["polarity"].to_numpy(dtype=np.float64) + 1.0,
        }
    )
    spark = get_spark_session("glom-similarity")
    with tempfile.TemporaryDirectory(prefix="glom-sim-") as tmp:
        path = str(Path(tmp) / "polarity.parquet")
        pq.write_table(table, path)  # Parquet in, not Python lists (FACTS.md)
        pol = spark.read.parquet(path)
        duplicated = pol.groupBy("user_idx", "item_idx").count().filter("count > 1").limit(1).count()
        if duplicated:
            raise ValueError("similarity: a (user, item) pair occurs more than once in the polarity edges")
        a = pol.select(F.col("user_idx").alias("user_a"), "item_idx", F.col("p").alias("pa"))
        b = pol.select(F.col("user_idx").alias("user_b"), "item_idx", F.col("p").alias("pb"))
        # Each pair's co-rated terms, summed one by one in ascending item order from 0.0: the order in
        # which scipy's CSR product (SMMP, canonical rows) accumulates them in the memory backend, so
        # every sum — and so every similarity, threshold and top-k tie — is the same double, bit for bit.
        terms = F.array_sort(F.collect_list(F.struct("item_idx", "pa", "pb")))

        def total(expression):  # noqa: ANN001, ANN202 - a Column lambda for F.aggregate
            return F.aggregate("terms", F.lit(0.0), lambda acc, x: acc + expression(x))

        sums = (
            a.join(b, on="item_idx")
            .filter(F.col("user_a") < F.col("user_b"))
            .groupBy("user_a", "user_b")
            .agg(terms.alias("terms"))
            .withColumn("n", F.size("terms").cast("long"))
            .filter(F.col("n") >= max(2, cfg.min_corated))
            .select(
                "user_a", "user_b", "n",
                total(lambda x: x["pa"]).alias("sa"),
                total(lambda x: x["pb"]).alias("sb"),
                total(lambda x: x["pa"] * x["pa"]).alias("saa"),
                total(lambda x: x["pb"] * x["pb"]).alias("sbb"),
                total(lambda x: x["pa"] * x["pb"]).alias("sab"),
            )
        )
        n = F.col("n").cast("double")
        cov = F.col("sab") - F.col("sa") * F.col("sb") / n
        var_a = F.col("saa") - F.col("sa") * F.col("sa") / n
        var_b = F.col("sbb") - F.col("sb") * F.col("sb") / n
        pairs = (
            sums.withColumn("var_a", var_a)
            .withColumn("var_b", var_b)
            .withColumn("cov", cov)
            .filter(
                (F.col("var_a") > _RELATIVE_VARIANCE_FLOOR * F.col("saa"))
                & (F.col("var_b") > _RELATIVE_VARIANCE_FLOOR * F.col("sbb"))
            )
            .withColumn(
                "similarity",
                F.greatest(
                    F.lit(-1.0), F.least(F.lit(1.0), F.col("cov") / F.sqrt(F.col("var_a") * F.col("var_b")))
                ),
            )
            .filter(F.col("similarity") >= cfg.t_sim)
            .select("user_a", "user_b", "similarity", F.col("n").cast("long").alias("n_corated"))
        )
        if cfg.top_k > 0:
            directed = pairs.select(
                F.col("user_a").alias("user"), F.col("user_b").alias("other"), "similarity"
            ).unionByName(
                pairs.select(F.col("user_b").alias("user"), F.col("user_a").alias("other"), "similarity")
            )
            rank = F.row_number().over(
                Window.partitionBy("user").orderBy(F.desc("similarity"), F.asc("other"))
            )
            kept = (
                directed.withColumn("rank", rank)
                .filter(F.col("rank") <= cfg.top_k)
                .select(F.least("user", "other").alias("user_a"), F.greatest("user", "other").alias("user_b"))
                .distinct()
            )
            pairs = pairs.join(kept, on=["user_a", "user_b"], how="inner")
        result = pairs.toPandas()
    if len(result) == 0:
        return empty_similarity()
    result = result.astype(
        {"user_a": np.int64, "user_b": np.int64, "similarity": np.float64, "n_corated": np.int64}
    )
    return result.sort_values(["user_a", "user_b"], ignore_index=True)[SIMILARITY_COLUMNS]
