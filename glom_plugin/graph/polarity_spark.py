"""Polarity edges (§3.3) on Spark: the rows ``graph/polarity.py`` computes, as Spark columns.

    p_uv = α·r̃_uv + (1 − α)·s̃_uv   (with review text; r̃_uv without)

Each step is the local one expressed over a Spark table, in the same order with the same arithmetic:

1. **minimum interactions** on distinct (user, item) pairs, repeated until stable
   (``graph.build.min_interactions_mask``);
2. **sentiment** per review through a pandas UDF that calls the same scorer as the local stage
   (``text.sentiment_scorer.SentimentScorer`` over ``polarity.review_text_values``), one scorer per
   Python worker; no text -> null;
3. **repeat reviews** of a pair averaged (``polarity.merge_repeat_reviews``: rating_norm and the
   null-skipping sentiment mean), single reviews kept as they are;
4. **polarity and like/dislike** (``polarity.polarity_from_sentiment``): the item's mean sentiment and the
   user's mean rating are window averages over the rows of this table, ties within ``_TIE_TOLERANCE``.

The table keeps ``_group`` / ``_pos`` so that, sorted on them, its rows are in the local order (single
reviews in interaction order, then merged pairs in order of their first review).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from glom_plugin.config import GlomConfig, PolarityConfig
from glom_plugin.graph.polarity import (
    _TIE_TOLERANCE,
    FAVOURABLE_RATING,
    SOURCE_RATING,
    SOURCE_RATING_AND_SENTIMENT,
    review_text_values,
)

ORDER_COLUMNS = ["_group", "_pos"]
_SCORERS: dict[str, Any] = {}


def _scorer(cfg: PolarityConfig) -> Any:
    """One ``SentimentScorer`` per Python worker and backend (its model loads once, its memo is reused)."""
    from glom_plugin.text.sentiment import sentiment_backend_key
    from glom_plugin.text.sentiment_scorer import SentimentScorer

    key = sentiment_backend_key(cfg)
    if key not in _SCORERS:
        _SCORERS[key] = SentimentScorer(cfg, workers=1)  # Spark already runs one worker per core
    return _SCORERS[key]


def sentiment_column(cfg: PolarityConfig) -> Any:
    """A pandas UDF (review_title, text) -> sentiment in [0, 1], null where the review has no text."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("double")  # type: ignore[misc]
    def sentiment(titles: pd.Series, bodies: pd.Series) -> pd.Series:
        texts = review_text_values(titles.astype(object).where(titles.notna(), None).tolist(),
                                   bodies.astype(object).where(bodies.notna(), None).tolist())
        scores = _scorer(cfg).score(texts) if texts else np.empty(0)
        return pd.Series(np.asarray(scores, dtype=np.float64))

    def column(title: Any, text: Any) -> Any:
        from pyspark.sql import functions as F

        value = sentiment(title, text)
        return F.when(F.isnan(value), F.lit(None).cast("double")).otherwise(value)

    return column


def min_interactions_spark(rows: Any, min_user: int, min_item: int) -> tuple[Any, dict[str, int]]:
    """``graph.build.min_interactions_mask`` + ``min_interactions_report`` on a Spark table of rows."""
    from pyspark.sql import functions as F

    current = rows
    while True:
        pairs = current.select("user_id", "item_id").distinct()
        users = pairs.groupBy("user_id").count()
        items = pairs.groupBy("item_id").count()
        weak_users = users.filter(F.col("count") < min_user).select("user_id")
        weak_items = items.filter(F.col("count") < min_item).select("item_id")
        # one job answers both "any weak user?" and "any weak item?"
        weak = weak_users.select(F.lit(1).alias("w")).limit(1).unionByName(
            weak_items.select(F.lit(1).alias("w")).limit(1)
        )
        if not weak.take(1):
            break
        current = (current.join(weak_users, "user_id", "left_anti").join(weak_items, "item_id", "left_anti")
                   .localCheckpoint())
    before = rows.agg(F.count(F.lit(1)), F.countDistinct("user_id"), F.countDistinct("item_id")).first()
    after = current.agg(F.count(F.lit(1)), F.countDistinct("user_id"), F.countDistinct("item_id")).first()
    dropped = {
        "interactions_dropped": int(before[0] - after[0]),
        "users_dropped": int(before[1] - after[1]),
        "items_dropped": int(before[2] - after[2]),
    }
    return current, dropped


def polarity_edges_spark(interactions: Any, cfg: GlomConfig) -> tuple[Any, dict[str, int], int]:
    """(polarity table in ``POLARITY_SCHEMA`` columns + ``ORDER_COLUMNS``, min-interactions report,
    repeat reviews merged) from the ingested interactions table (read in file order)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    rows = interactions.select("user_id", "item_id", "rating_norm", "review_title", "text").withColumn(
        "_order", F.monotonically_increasing_id()  # file order: partitions follow row groups in order
    )
    rows, dropped = min_interactions_spark(rows, cfg.data.min_user_interactions, cfg.data.min_item_interactions)
    scored = rows.withColumn("sentiment", sentiment_column(cfg.polarity)("review_title", "text")).drop(
        "review_title", "text"
    )
    scored = scored.localCheckpoint()  # the UDF runs once per review
    pair = Window.partitionBy("user_id", "item_id")
    counted = scored.withColumn("_n", F.count(F.lit(1)).over(pair))
    single = counted.filter(F.col("_n") == 1).select(
        "user_id", "item_id", "rating_norm", "sentiment", F.lit(0).alias("_group"), F.col("_order").alias("_pos")
    )
    repeated = counted.filter(F.col("_n") > 1)
    merged = repeated.groupBy("user_id", "item_id").agg(
        F.avg("rating_norm").alias("rating_norm"), F.avg("sentiment").alias("sentiment"),
        F.min("_order").alias("_pos"),
    ).select("user_id", "item_id", "rating_norm", "sentiment", F.lit(1).alias("_group"), "_pos")
    sizes = scored.agg(F.count(F.lit(1)), F.countDistinct("user_id", "item_id")).first()
    repeats_merged = int(sizes[0] - sizes[1])  # rows folded into another review of the same pair
    frame = single.unionByName(merged)

    alpha = cfg.polarity.alpha
    rating, sentiment = F.col("rating_norm"), F.col("sentiment")
    has_text = sentiment.isNotNull()
    polarity = F.when(has_text, F.lit(alpha) * rating + F.lit(1.0 - alpha) * sentiment).otherwise(rating)
    item_mean_sentiment = F.avg("sentiment").over(Window.partitionBy("item_id"))
    user_mean_rating = F.avg("rating_norm").over(Window.partitionBy("user_id"))
    favourable = rating >= F.lit(FAVOURABLE_RATING)
    liked_text = (sentiment >= item_mean_sentiment - F.lit(_TIE_TOLERANCE)) & favourable
    liked_rating = (rating >= user_mean_rating - F.lit(_TIE_TOLERANCE)) & favourable
    edges = frame.select(
        "user_id", "item_id", "rating_norm", "sentiment",
        F.greatest(F.lit(0.0), F.least(F.lit(1.0), polarity)).alias("polarity"),
        F.when(has_text, liked_text).otherwise(liked_rating).alias("liked"),
        F.when(has_text, F.lit(SOURCE_RATING_AND_SENTIMENT)).otherwise(F.lit(SOURCE_RATING)).alias("polarity_source"),
        *ORDER_COLUMNS,
    )
    return edges, dropped, repeats_merged
