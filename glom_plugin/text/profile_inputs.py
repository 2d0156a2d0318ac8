"""The structured inputs of profile generation (§3.2.1, §3.2.2), gathered once from the normalized tables.

Item v: x = [title τ, description δ, attributes γ, a subset r̂ ⊆ r of its reviews] (§3.2.2).
User u: a uniform sample Î_u of the items u interacted with; per item c_v = [τ, P_v, r_v^u] (§3.2.1).

Both the LLM builder (which renders them into prompts) and the offline builder (which summarizes
them directly) read these, so the two builders see exactly the same evidence. Only the interactions
passed in are used — the evaluator passes training interactions, so no held-out purchase or review
reaches a profile.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from glom_plugin.config import ProfileConfig

# Long free text is cut (as in Figures 3–4, "...") so prompts stay bounded whatever the source holds.
MAX_REVIEW_CHARS = 300
MAX_DESCRIPTION_CHARS = 600
MAX_FEATURES_CHARS = 300


@dataclass(frozen=True)
class ItemInput:
    item_id: str
    title: str | None
    categories: tuple[str, ...]
    attributes: tuple[str, ...]
    description: str | None
    reviews: tuple[str, ...]
    # Rating pattern: the fallback evidence for ratings-only data.
    n_ratings: int
    mean_rating_norm: float
    liked_share: float
    all_review_text: str = ""


@dataclass(frozen=True)
class UserItemInput:
    """c_v = [τ, P_v, r_v^u]; the item profile P_v is filled in by the builder (items first)."""

    item_id: str
    title: str | None
    review: str | None
    rating_norm: float


@dataclass(frozen=True)
class UserInput:
    user_id: str
    sampled: tuple[UserItemInput, ...]
    # Over all of the user's items (not only the sample): cheap, and a better rating/category pattern.
    item_ids: tuple[str, ...]
    rating_norms: tuple[float, ...]
    n_items: int = field(default=0)


def _clip(text: object, limit: int) -> str | None:
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return None
    text = " ".join(str(text).split())
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def stable_int(*parts: object) -> int:
    """A seed that depends only on its inputs (Python's hash() is salted per process)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column, or all-null when a ratings-only source lacks it."""
    if name in frame.columns:
        return frame[name]
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _categories(value: object, main: object) -> tuple[str, ...]:
    cats: list[str] = []
    if isinstance(main, str) and main.strip():
        cats.append(main.strip())
    if value is not None and not (isinstance(value, float) and np.isnan(value)):
        for cat in list(value):
            if isinstance(cat, str) and cat.strip() and cat.strip() not in cats:
                cats.append(cat.strip())
    return tuple(cats)


def item_inputs(interactions: pd.DataFrame, items: pd.DataFrame, cfg: ProfileConfig) -> list[ItemInput]:
    """One input per item that appears in ``interactions`` (an item nobody bought needs no profile),
    sorted by item_id. Items missing from the items table get rating-pattern-only inputs."""
    meta = items.drop_duplicates("item_id").set_index("item_id") if len(items) else pd.DataFrame()
    text = _column(interactions, "text")
    helpful = pd.to_numeric(_column(interactions, "helpful_votes"), errors="coerce").fillna(0)
    frame = pd.DataFrame(
        {
            "item_id": interactions["item_id"].astype(str).to_numpy(),
            "rating_norm": interactions["rating_norm"].astype(float).to_numpy(),
            "text": text.to_numpy(),
            "helpful": helpful.to_numpy(),
        }
    )
    out: list[ItemInput] = []
    for item_id, group in frame.groupby("item_id", sort=True):
        row = meta.loc[item_id] if item_id in meta.index else None

        def get(name: str, row: pd.Series | None = row) -> object:
            return row[name] if row is not None and name in row.index else None

        reviews = [(h, t) for h, t in zip(group["helpful"], group["text"], strict=True) if _clip(t, 10**9)]
        # r̂ ⊆ r: most helpful first, ties broken by a content hash so the choice is deterministic.
        reviews.sort(key=lambda ht: (-ht[0], hashlib.sha1(str(ht[1]).encode()).hexdigest()))
        subset = tuple(_clip(t, MAX_REVIEW_CHARS) for _, t in reviews[: cfg.max_reviews_per_item])
        attributes = []
        features = _clip(get("features"), MAX_FEATURES_CHARS)
        if features:
            attributes.append(features)
        store = _clip(get("store"), 100)
        if store:
            attributes.append(f"Store: {store}")
        price = get("price")
        if price is not None and not pd.isna(price):
            attributes.append(f"Price: {float(price):.2f}")
        ratings = group["rating_norm"].to_numpy()
        out.append(
            ItemInput(
                item_id=str(item_id),
                title=_clip(get("title"), 200),
                categories=_categories(get("categories"), get("main_category")),
                attributes=tuple(attributes),
                description=_clip(get("description"), MAX_DESCRIPTION_CHARS),
                reviews=subset,  # type: ignore[arg-type]
                n_ratings=len(ratings),
                mean_rating_norm=float(ratings.mean()),
                liked_share=float((ratings >= 0.6).mean()),
                all_review_text=" ".join(str(t) for _, t in reviews),
            )
        )
    return out


def user_inputs(
    interactions: pd.DataFrame, items: pd.DataFrame, cfg: ProfileConfig, seed: int
) -> list[UserInput]:
    """One input per user in ``interactions`` (sorted by user_id) with a uniform, seeded sample Î_u."""
    titles = {}
    if len(items) and "title" in items.columns:
        titles = {str(k): _clip(v, 200) for k, v in zip(items["item_id"], items["title"], strict=True)}
    frame = pd.DataFrame(
        {
            "user_id": interactions["user_id"].astype(str).to_numpy(),
            "item_id": interactions["item_id"].astype(str).to_numpy(),
            "rating_norm": interactions["rating_norm"].astype(float).to_numpy(),
            "text": _column(interactions, "text").to_numpy(),
            "ts": pd.to_numeric(_column(interactions, "timestamp_ms"), errors="coerce").to_numpy(),
        }
    )
    # Chronological within a user (then item id), so the sample is listed in purchase order.
    frame = frame.sort_values(["user_id", "ts", "item_id"], kind="mergesort", na_position="last")
    # Plain arrays + group boundaries: per-group pandas indexing costs ~1 ms a user.
    user_col = frame["user_id"].to_numpy()
    item_col = frame["item_id"].to_numpy()
    rating_col = frame["rating_norm"].to_numpy()
    text_col = frame["text"].to_numpy()
    starts = np.flatnonzero(np.r_[True, user_col[1:] != user_col[:-1]]) if len(frame) else np.array([], int)
    ends = np.r_[starts[1:], len(frame)]
    out: list[UserInput] = []
    for start, end in zip(starts, ends, strict=True):
        user_id = user_col[start]
        n = int(end - start)
        k = min(cfg.max_items_per_user, n)
        rng = np.random.default_rng(stable_int(seed, user_id))
        picks = start + np.sort(rng.choice(n, size=k, replace=False))
        sampled = tuple(
            UserItemInput(
                item_id=item_col[p],
                title=titles.get(item_col[p]),
                review=_clip(text_col[p], MAX_REVIEW_CHARS),
                rating_norm=float(rating_col[p]),
            )
            for p in picks
        )
        out.append(
            UserInput(
                user_id=str(user_id),
                sampled=sampled,
                item_ids=tuple(item_col[start:end]),
                rating_norms=tuple(float(x) for x in rating_col[start:end]),
                n_items=n,
            )
        )
    return out
