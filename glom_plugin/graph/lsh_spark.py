"""Spark backend of Phase I candidate generation (Yahoo §3.1): ``pyspark.ml.feature.MinHashLSH``.

Registered as "spark" in ``lsh.CANDIDATE_BACKENDS``; ``lsh.build_user_graph`` then verifies and prunes the
pairs exactly as for the numpy backend, so both backends yield the same kind of graph.

Spark's MinHashLSH only ORs its hash tables (each table is one MinHash, i.e. rows = 1): a pair with
Jaccard J collides with probability 1 − (1 − J)^tables. We use ``bands`` tables (more collisions than
numpy's bands × rows banding, hence higher recall and more work) and ``approxSimilarityJoin`` with a
distance threshold of 1 − min_similarity, which already drops pairs below the edge threshold.
Features travel as Parquet (list of feature indices) and become SparseVectors inside the JVM with
``CountVectorizer(binary=True)`` — no Python UDF, no large Python lists (FACTS.md).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp


def spark_minhash_candidate_pairs(
    features: sp.csr_matrix,
    bands: int,
    rows: int = 1,
    seed: int = 0,
    min_similarity: float = 0.0,
    n_tables: int | None = None,
    **_: object,
) -> np.ndarray:
    """Candidate pairs (P, 2) int64, a < b, with Jaccard ≥ min_similarity among MinHash collisions."""
    from pyspark.ml.feature import CountVectorizer, MinHashLSH
    from pyspark.sql import functions as F

    from glom_plugin.spark_session import get_spark_session

    features = sp.csr_matrix(features)
    users = np.flatnonzero(np.diff(features.indptr) > 0)  # MinHashLSH rejects empty vectors
    if len(users) < 2:
        return np.empty((0, 2), dtype=np.int64)
    sub = features[users]
    table = pa.table(
        {
            "user_idx": pa.array(users.astype(np.int64)),
            "feature_idx": pa.ListArray.from_arrays(
                pa.array(sub.indptr.astype(np.int32)), pa.array(sub.indices.astype(np.int64))
            ),
        }
    )
    spark = get_spark_session("glom-lsh")
    with tempfile.TemporaryDirectory(prefix="glom-lsh-") as tmp:
        path = str(Path(tmp) / "user_features.parquet")
        pq.write_table(table, path)
        df = spark.read.parquet(path).withColumn(
            "tokens", F.transform("feature_idx", lambda x: x.cast("string"))
        )
        vectors = (
            CountVectorizer(
                inputCol="tokens", outputCol="features", binary=True, minDF=1.0, vocabSize=1 << 30
            )
            .fit(df)
            .transform(df)
            .select("user_idx", "features")
            .cache()
        )
        model = MinHashLSH(
            inputCol="features", outputCol="hashes", numHashTables=int(n_tables or bands), seed=int(seed)
        ).fit(vectors)
        threshold = 1.0 - float(min_similarity) + 1e-9  # Spark keeps distance < threshold (strict)
        joined = (
            model.approxSimilarityJoin(vectors, vectors, threshold, distCol="jaccard_distance")
            .select(F.col("datasetA.user_idx").alias("a"), F.col("datasetB.user_idx").alias("b"))
            .filter(F.col("a") < F.col("b"))
            .distinct()
        )
        result = joined.toPandas()
        vectors.unpersist()
    if len(result) == 0:
        return np.empty((0, 2), dtype=np.int64)
    pairs = result[["a", "b"]].to_numpy(dtype=np.int64)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
