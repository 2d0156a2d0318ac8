"""The fixed pyarrow schemas of the normalized tables every later stage reads.

Ids: ``user_id`` is always the salted hash of the raw identifier (raw ids are never written);
``item_id`` is the catalogue id as published (ASIN, anime id, movie id), since items are public.
``rating_norm`` maps the source's rating scale onto [0, 1] so polarity is comparable across datasets.
Missing review text is normal (ratings-only data): ``text`` and ``review_title`` are nullable.
"""

from __future__ import annotations

import pyarrow as pa

INTERACTIONS_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("rating", pa.float64(), nullable=False),
        pa.field("rating_norm", pa.float64(), nullable=False),
        pa.field("review_title", pa.string()),
        pa.field("text", pa.string()),
        pa.field("timestamp_ms", pa.int64()),
        pa.field("verified_purchase", pa.bool_()),
        pa.field("helpful_votes", pa.int64()),
    ]
)

ITEMS_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("title", pa.string()),
        pa.field("main_category", pa.string()),
        pa.field("categories", pa.list_(pa.string())),
        pa.field("description", pa.string()),
        pa.field("features", pa.string()),
        pa.field("store", pa.string()),
        pa.field("price", pa.float64()),
    ]
)

USERS_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("n_interactions", pa.int64(), nullable=False),
        pa.field("n_with_text", pa.int64(), nullable=False),
    ]
)

# Polarity edges (§3.3), written by glom_plugin.graph.polarity.
POLARITY_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("rating_norm", pa.float64(), nullable=False),
        pa.field("sentiment", pa.float64()),  # [0, 1]; null when the review has no text
        pa.field("polarity", pa.float64(), nullable=False),  # [0, 1]
        pa.field("liked", pa.bool_(), nullable=False),
        pa.field("polarity_source", pa.string(), nullable=False),  # "rating+sentiment" or "rating"
    ]
)

# User-user similarity edges (§3.4, Eq. 1), one row per unordered pair (user_a < user_b).
SIMILARITY_SCHEMA = pa.schema(
    [
        pa.field("user_a", pa.string(), nullable=False),
        pa.field("user_b", pa.string(), nullable=False),
        pa.field("similarity", pa.float64(), nullable=False),
        pa.field("n_corated", pa.int64(), nullable=False),
    ]
)

# Knowledge-graph triples (head, relation, tail, weight) for the pre-trained model (§3.5).
TRIPLES_SCHEMA = pa.schema(
    [
        pa.field("head", pa.int64(), nullable=False),
        pa.field("head_type", pa.string(), nullable=False),
        pa.field("relation", pa.string(), nullable=False),
        pa.field("tail", pa.int64(), nullable=False),
        pa.field("tail_type", pa.string(), nullable=False),
        pa.field("weight", pa.float64(), nullable=False),
    ]
)

# Relations of the knowledge graph (§3.1). Reverse relations are added by the graph builder.
RELATION_INTERACTED = "interacted"
RELATION_LIKES = "likes"
RELATION_DISLIKES = "dislikes"
RELATION_SIMILAR = "similar"
RELATIONS = (RELATION_INTERACTED, RELATION_LIKES, RELATION_DISLIKES, RELATION_SIMILAR)

# pandas datetimes end in 2262 (int64 nanoseconds): a millisecond stamp beyond that is corrupt, not a date.
MAX_TIMESTAMP_MS = (1 << 63) // 1_000_000
