"""Feast definitions of the GLoM features (declarations only; the pipeline computes the Parquet files).

Sources are the tables ``glom_plugin.platform.feast_features.export_feature_tables`` writes into a run's
``features/`` directory. Which run: ``$GLOM_FEATURES_DIR``, default ``../runs/default/features`` relative to
this repo, so ``feast apply`` works right after ``glom quickstart``. The path is resolved when Feast reads
this file and stored in the registry, so apply again after pointing at another run.

- user_profile_embedding / item_profile_embedding: §3.2.4, the sentence-transformer vectors of the
  LLM (or offline) profiles.
- user_polarity_stats / item_polarity_stats: §3.3, aggregates of p_uv = alpha*rating + (1-alpha)*sentiment.
- user_glom_embedding: §3.7, the trained GLM user vectors lookalikes are retrieved by.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Array, Float32, Float64, Int64

from glom_plugin.platform.feast_features import FEATURE_TABLE_FILES

FEATURES_DIR = Path(
    os.environ.get("GLOM_FEATURES_DIR", str(Path(__file__).resolve().parent / ".." / "runs" / "default" / "features"))
).resolve()

# ttl 0 = never expires: profiles and statistics are as of the run that wrote them.
NO_EXPIRY = timedelta(0)

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING, description="hashed user id")
item = Entity(name="item", join_keys=["item_id"], value_type=ValueType.STRING, description="catalogue item id")


def _source(table: str) -> FileSource:
    return FileSource(
        name=f"{table}_source",
        path=str(FEATURES_DIR / FEATURE_TABLE_FILES[table]),
        timestamp_field="event_timestamp",
    )


def _polarity_fields() -> list[Field]:
    return [
        Field(name="mean_polarity", dtype=Float64, description="mean p_uv over the entity's interactions (§3.3)"),
        Field(name="likes", dtype=Int64, description="interactions with liked = true (polarity above threshold)"),
        Field(name="dislikes", dtype=Int64, description="interactions with liked = false"),
        Field(name="interactions", dtype=Int64, description="number of interactions"),
    ]


user_profile_embedding = FeatureView(
    name="user_profile_embedding",
    entities=[user],
    ttl=NO_EXPIRY,
    schema=[Field(name="embedding", dtype=Array(Float32), description="L2-normalized profile vector (§3.2.4)")],
    source=_source("user_profile_embedding"),
    online=True,
)

item_profile_embedding = FeatureView(
    name="item_profile_embedding",
    entities=[item],
    ttl=NO_EXPIRY,
    schema=[Field(name="embedding", dtype=Array(Float32), description="L2-normalized profile vector (§3.2.4)")],
    source=_source("item_profile_embedding"),
    online=True,
)

user_polarity_stats = FeatureView(
    name="user_polarity_stats",
    entities=[user],
    ttl=NO_EXPIRY,
    schema=_polarity_fields(),
    source=_source("user_polarity_stats"),
    online=True,
)

item_polarity_stats = FeatureView(
    name="item_polarity_stats",
    entities=[item],
    ttl=NO_EXPIRY,
    schema=_polarity_fields(),
    source=_source("item_polarity_stats"),
    online=True,
)

user_glom_embedding = FeatureView(
    name="user_glom_embedding",
    entities=[user],
    ttl=NO_EXPIRY,
    schema=[Field(name="embedding", dtype=Array(Float32), description="trained GLM user vector (§3.7)")],
    source=_source("user_glom_embedding"),
    online=True,
)
