"""User–item polarity edges (§3.3): p_uv = α·r̃_uv + (1 − α)·s̃_uv, and the like/dislike decision.

Two steps, kept apart on purpose:

1. ``score_review_sentiment`` — the expensive, per-review part (a sentiment model over every review).
   Its output is stored in the ``sentiment`` column of the polarity-edges table, and a rerun passes that
   table back as ``cache`` so no review is ever scored twice.
2. ``polarity_from_sentiment`` — cheap, and depends on *which rows are given*: the item averages used for
   like/dislike are recomputed from the frame passed in. The evaluator calls it on training rows only,
   so a held-out review never moves an average a model sees.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from glom_plugin.config import GlomConfig, PolarityConfig
from glom_plugin.data.schema import POLARITY_SCHEMA
from glom_plugin.text.sentiment import score_sentiment

SOURCE_RATING_AND_SENTIMENT = "rating+sentiment"
SOURCE_RATING = "rating"
# A rating on at least this normalized value counts as favourable (3 of 5 stars is 0.5 under the
# (r − min) / (max − min) normalization ingestion applies).
FAVOURABLE_RATING = 0.5

_TIE_TOLERANCE = 1e-9

POLARITY_COLUMNS = [field.name for field in POLARITY_SCHEMA]
_SOURCES = np.array([SOURCE_RATING, SOURCE_RATING_AND_SENTIMENT], dtype=object)


def _polarity_cfg(cfg: PolarityConfig | GlomConfig) -> PolarityConfig:
    return cfg.polarity if isinstance(cfg, GlomConfig) else cfg


def review_texts(interactions: pd.DataFrame) -> list[str | None]:
    """The text a sentiment model reads: ``"title. body"`` — Amazon titles ("Waste of money") often carry
    the verdict — or whichever of the two exists; None when neither has any non-blank text."""
    n = len(interactions)
    titles = interactions["review_title"] if "review_title" in interactions else pd.Series([None] * n)
    bodies = interactions["text"] if "text" in interactions else pd.Series([None] * n)
    return review_text_values(titles.tolist(), bodies.tolist())


def review_text_values(titles: Sequence[object], bodies: Sequence[object]) -> list[str | None]:
    """``review_texts`` over two aligned sequences of titles and bodies (str or None each)."""
    texts: list[str | None] = []
    for title, body in zip(titles, bodies, strict=True):
        parts = [part.strip() for part in (title, body) if isinstance(part, str) and part.strip()]
        texts.append(". ".join(parts) if parts else None)
    return texts


def score_review_sentiment(
    interactions: pd.DataFrame, cfg: PolarityConfig | GlomConfig, cache: pd.DataFrame | None = None
) -> pd.DataFrame:
    """``interactions`` plus a ``sentiment`` column in [0, 1] (NaN where there is no review text).

    ``cache``: a previous polarity-edges table (user_id, item_id, sentiment) scored by the same backend;
    rows found there with a sentiment keep it and only the rest are scored.
    """
    pcfg = _polarity_cfg(cfg)
    out = interactions.copy()
    sentiment = np.full(len(out), np.nan, dtype=np.float64)
    todo = np.ones(len(out), dtype=bool)
    if cache is not None and len(cache) and len(out):
        known = cache.loc[cache["sentiment"].notna(), ["user_id", "item_id", "sentiment"]]
        merged = out[["user_id", "item_id"]].merge(
            known, on=["user_id", "item_id"], how="left", validate="m:1"
        )
        cached = merged["sentiment"].to_numpy(dtype=np.float64)
        hit = ~np.isnan(cached)
        sentiment[hit] = cached[hit]
        todo = ~hit
    if todo.any():
        texts = review_texts(out.loc[todo])
        sentiment[todo] = score_sentiment(texts, pcfg)
    out["sentiment"] = sentiment
    return out


def merge_repeat_reviews(scored: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One row per (user, item): repeat reviews of the same item (repeat purchases, kept by ingestion as
    real data has them) are averaged — rating_norm and sentiment (NaN-skipping; NaN only when no review
    of the pair has text) — because the KG has one polarity edge per pair and Eq. 1 one p_uv per item.
    The first row's other columns are kept. Returns the merged frame and how many rows were folded in."""
    keys = ["user_id", "item_id"]
    repeated = scored.duplicated(keys, keep=False).to_numpy()
    if not repeated.any():
        return scored, 0
    group = scored.loc[repeated]
    means = group.groupby(keys, sort=False)[["rating_norm", "sentiment"]].mean()
    first = group.drop_duplicates(keys).drop(columns=["rating_norm", "sentiment"])
    merged = first.merge(means, left_on=keys, right_index=True, how="left")[scored.columns]
    out = pd.concat([scored.loc[~repeated], merged], ignore_index=True)
    return out, len(scored) - len(out)


def polarity_from_sentiment(frame: pd.DataFrame, cfg: PolarityConfig | GlomConfig) -> pd.DataFrame:
    """Polarity edges (``POLARITY_SCHEMA`` columns) from rows holding user_id, item_id, rating_norm, sentiment.

    Polarity (§3.3): with review text, p_uv = α·r̃ + (1 − α)·s̃; without it the rating is all we know, so
    p_uv = r̃ and ``polarity_source`` says "rating". (With α = 1 the sentiment does not enter p_uv, but it
    still decides like/dislike, so such rows keep the "rating+sentiment" source.)

    Like / dislike — the rule, and why:

    * With text, the paper's rule: the user likes the item when the review's sentiment is at least the
      item's average sentiment (over the item's reviews *in this frame*), which separates an outlier
      opinion from the general one. We add the rating as a guard: the rating must also be favourable
      (r̃ ≥ 0.5), so a 1-star review of a widely panned item is not a "like" merely for being less angry
      than the others — the paper combines sentiment "with the user rating" for exactly this context.
    * Without text there is no sentiment to compare; the rating plays its part, compared with the
      *user's* own average rating in this frame (people use the scale differently, and in Amazon data
      most ratings are 5, so a fixed cut would make nearly every edge a like): liked iff r̃ ≥ 0.5 and
      r̃ ≥ the user's mean r̃.
    Ties (≥) count as likes, as in the paper.
    """
    pcfg = _polarity_cfg(cfg)
    missing = [c for c in ("user_id", "item_id", "rating_norm", "sentiment") if c not in frame.columns]
    if missing:
        raise ValueError(f"polarity_from_sentiment: input lacks columns {missing}")
    duplicated = frame.duplicated(["user_id", "item_id"], keep=False)
    if duplicated.any():
        examples = frame.loc[duplicated, ["user_id", "item_id"]].head(3).to_dict("records")
        raise ValueError(
            f"polarity_from_sentiment: {int(duplicated.sum())} rows repeat a (user_id, item_id) pair, e.g. {examples}; "
            "merge repeat reviews first (merge_repeat_reviews)"
        )
    rating = frame["rating_norm"].to_numpy(dtype=np.float64)
    sentiment = frame["sentiment"].to_numpy(dtype=np.float64)
    has_text = ~np.isnan(sentiment)

    alpha = pcfg.alpha
    polarity = np.where(has_text, alpha * rating + (1.0 - alpha) * np.nan_to_num(sentiment), rating)

    # Item average sentiment over the reviews with text in this frame (NaN-skipping mean).
    item_mean_sentiment = (
        frame.groupby("item_id", sort=False)["sentiment"].transform("mean").to_numpy(dtype=np.float64)
    )
    user_mean_rating = (
        frame.groupby("user_id", sort=False)["rating_norm"].transform("mean").to_numpy(dtype=np.float64)
    )
    favourable = rating >= FAVOURABLE_RATING
    # The tolerance keeps a value equal to its group's mean a "like" despite float rounding in the mean.
    liked_text = (sentiment >= item_mean_sentiment - _TIE_TOLERANCE) & favourable
    liked_rating = (rating >= user_mean_rating - _TIE_TOLERANCE) & favourable
    liked = np.where(has_text, liked_text, liked_rating)

    return pd.DataFrame(
        {
            "user_id": frame["user_id"].to_numpy(),
            "item_id": frame["item_id"].to_numpy(),
            "rating_norm": rating,
            "sentiment": sentiment,
            "polarity": np.clip(polarity, 0.0, 1.0),
            "liked": liked.astype(bool),
            # Two shared str objects indexed, not a fixed-width unicode array (64 bytes a row at 10M rows).
            "polarity_source": _SOURCES[has_text.astype(np.intp)],
        }
    )[POLARITY_COLUMNS]
