"""The embedded default dataset: Amazon-2023-layout reviews with planted lookalike communities.

Why synthetic: the paper's Amazon 2023 sets are millions of reviews that users bring themselves;
the project must run end to end out of the box. The generator plants the structure lookalike
expansion exists to find (GLoM §1, Yahoo §2): users belong to communities, each community buys
mostly its own items (drawn from two or three preferred categories), rates them high and writes
reviews whose sentiment follows the rating; ~15 % of purchases are out-of-community noise, rated
lower. Campaigns = items: an item's purchasers are mostly one community, so a model that learns
community structure from the graph finds the rest of them and a random ranking does not.

Scale: users are generated in chunks (numpy, one RNG stream per chunk) and streamed to gzip, so
memory grows with users and items (ids, community labels), never with reviews.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from glom_plugin.data.synthetic_vocab import (
    CATEGORIES,
    CLOSERS,
    MIDDLES,
    OPENERS,
    REVIEW_TITLES,
    TITLE_SUFFIXES,
)
from glom_plugin.storage import atomic_path, write_json

REVIEWS_FILE = "reviews.jsonl.gz"
META_FILE = "meta.jsonl.gz"
COMMUNITIES_FILE = "communities.parquet"
ITEM_COMMUNITIES_FILE = "item_communities.parquet"
MANIFEST_FILE = "synthetic.json"

REVIEWS_PER_USER = 8  # mean; Amazon 2023 5-core users have a handful of reviews each
REVIEWS_PER_ITEM = 20  # mean
USERS_PER_COMMUNITY = 150
OUT_OF_COMMUNITY = 0.15  # share of purchases outside the user's community (noise)
NO_TEXT = 0.15  # share of reviews without text
# P(stars = 1..5) for purchases inside / outside the buyer's community.
RATING_P_IN = np.array([0.03, 0.04, 0.10, 0.30, 0.53])
RATING_P_OUT = np.array([0.22, 0.25, 0.25, 0.18, 0.10])
USER_CHUNK = 50_000
_ALNUM = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", dtype=np.uint8)
_TS_START_MS = 1_420_070_400_000  # 2015-01-01
_TS_END_MS = 1_693_526_400_000  # 2023-09-01


@dataclass(frozen=True)
class SyntheticDataset:
    """Paths and sizes of one generated dataset (also saved as ``synthetic.json`` beside it)."""

    out_dir: Path
    reviews_path: Path
    meta_path: Path
    communities_path: Path  # raw user_id -> community (ground truth; raw ids, like the reviews file)
    item_communities_path: Path  # parent_asin -> home community, category
    n_reviews: int
    n_users: int
    n_items: int
    n_communities: int
    seed: int

    def to_json(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict) -> SyntheticDataset:
        paths = {"out_dir", "reviews_path", "meta_path", "communities_path", "item_communities_path"}
        return cls(**{k: Path(v) if k in paths else v for k, v in data.items()})


@dataclass(frozen=True)
class _World:
    """Everything that is O(users + items): ids, communities, item categories and popularity."""

    user_ids: np.ndarray  # S28 raw ids
    user_community: np.ndarray
    reviews_per_user: np.ndarray
    item_ids: np.ndarray  # str
    item_community: np.ndarray
    item_category: np.ndarray
    community_items: list[np.ndarray]  # item indices per community, most popular first
    global_order: np.ndarray  # item indices, most popular first (for out-of-community purchases)


def sizes(n_reviews: int) -> tuple[int, int, int]:
    """(users, items, communities) for a dataset of ``n_reviews`` reviews."""
    n_users = min(n_reviews, max(30, round(n_reviews / REVIEWS_PER_USER)))
    n_communities = max(4, n_users // USERS_PER_COMMUNITY)
    n_items = max(3 * n_communities, round(n_reviews / REVIEWS_PER_ITEM))
    return n_users, n_items, n_communities


def _raw_user_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """Amazon-2023-looking ids: 'A' + 27 upper-case alphanumerics (unique with overwhelming odds)."""
    codes = _ALNUM[rng.integers(0, len(_ALNUM), size=(n, 27))]
    full = np.concatenate([np.full((n, 1), ord("A"), dtype=np.uint8), codes], axis=1)
    ids = np.ascontiguousarray(full).view("S28").ravel()
    if len(np.unique(ids)) != n:  # astronomically unlikely; keep ids unique regardless
        raise RuntimeError("raw user id collision; use another seed")
    return ids


def _item_ids(n: int, seed: int) -> np.ndarray:
    """'B0' + 8 base-36 characters from a bijection of the index (unique by construction)."""
    space = 36**8
    value = (np.arange(n, dtype=np.int64) * 2_654_435_761 + (seed * 7_919) % space) % space
    chars = np.empty((n, 8), dtype=np.uint8)
    for pos in range(7, -1, -1):
        chars[:, pos] = _ALNUM[np.concatenate([np.arange(26, 36), np.arange(0, 26)])][value % 36]
        value //= 36
    prefix = np.tile(np.frombuffer(b"B0", dtype=np.uint8), (n, 1))
    return np.ascontiguousarray(np.concatenate([prefix, chars], axis=1)).view("S10").ravel().astype(str)


def _build_world(n_reviews: int, seed: int) -> _World:
    rng = np.random.default_rng([seed, 0])
    n_users, n_items, n_communities = sizes(n_reviews)
    n_categories = len(CATEGORIES)
    # Each community prefers 2-3 categories; its items are drawn from them (category-coherent).
    preferred = [rng.choice(n_categories, size=rng.integers(2, 4), replace=False) for _ in range(n_communities)]
    community_share = rng.dirichlet(np.full(n_communities, 8.0))
    item_community = np.sort(rng.choice(n_communities, size=n_items, p=community_share))
    # Every community owns at least one item.
    item_community[:n_communities] = np.arange(n_communities)
    item_community = np.sort(item_community)
    item_category = np.array([rng.choice(preferred[c]) for c in item_community], dtype=np.int64)
    community_items = [rng.permutation(np.flatnonzero(item_community == c)) for c in range(n_communities)]
    user_community = rng.choice(n_communities, size=n_users, p=community_share)
    activity = rng.lognormal(0.0, 0.8, size=n_users)
    reviews_per_user = 1 + rng.multinomial(n_reviews - n_users, activity / activity.sum())
    return _World(
        user_ids=_raw_user_ids(rng, n_users),
        user_community=user_community,
        reviews_per_user=reviews_per_user.astype(np.int64),
        item_ids=_item_ids(n_items, seed),
        item_community=item_community,
        item_category=item_category,
        community_items=community_items,
        global_order=rng.permutation(n_items),
    )


def _popular_index(rng: np.random.Generator, sizes_: np.ndarray) -> np.ndarray:
    """A rank in [0, size) skewed to the front: P(rank < k) = sqrt(k / size) (Zipf-like popularity)."""
    return np.minimum((sizes_ * rng.random(len(sizes_)) ** 2).astype(np.int64), sizes_ - 1)


def _purchases(world: _World, rng: np.random.Generator, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(item index, in-community flag) per review of ``users`` (already repeated per review)."""
    n = len(users)
    community = world.user_community[users]
    inside = rng.random(n) >= OUT_OF_COMMUNITY
    items = np.empty(n, dtype=np.int64)
    counts = np.array([len(c) for c in world.community_items])
    offsets = np.concatenate([[0], np.cumsum(counts)])
    flat = np.concatenate(world.community_items)

    def draw(mask: np.ndarray) -> None:
        idx = np.flatnonzero(mask)
        in_idx = idx[inside[idx]]
        out_idx = idx[~inside[idx]]
        c = community[in_idx]
        items[in_idx] = flat[offsets[c] + _popular_index(rng, counts[c])]
        items[out_idx] = world.global_order[_popular_index(rng, np.full(len(out_idx), len(world.global_order)))]

    draw(np.ones(n, dtype=bool))
    # A user reviews an item once: redraw repeated (user, item) pairs a few times; the rare
    # leftovers stay, as repeat purchases do in the real data.
    for _ in range(6):
        key = users * len(world.item_ids) + items
        order = np.argsort(key, kind="stable")
        repeat = np.zeros(n, dtype=bool)
        repeat[order[1:]] = key[order[1:]] == key[order[:-1]]
        if not repeat.any():
            break
        draw(repeat)
    inside = world.item_community[items] == community
    return items, inside


def _review_lines(world: _World, rng: np.random.Generator, users: np.ndarray) -> Iterator[str]:
    items, inside = _purchases(world, rng, users)
    n = len(users)
    stars = np.where(
        inside, rng.choice(5, size=n, p=RATING_P_IN), rng.choice(5, size=n, p=RATING_P_OUT)
    )  # 0..4 = 1..5 stars
    has_text = rng.random(n) >= NO_TEXT
    pick = rng.integers(0, 1 << 30, size=(n, 5))
    timestamps = rng.integers(_TS_START_MS, _TS_END_MS, size=n)
    helpful = rng.geometric(0.6, size=n) - 1
    verified = rng.random(n) < 0.9
    user_ids = world.user_ids[users].astype(str)
    for i in range(n):
        s = int(stars[i])
        item = int(items[i])
        category = CATEGORIES[int(world.item_category[item])]
        noun = category.nouns[item % len(category.nouns)]
        if has_text[i]:
            aspect = category.aspects[pick[i, 0] % len(category.aspects)]
            text = " ".join(
                (
                    OPENERS[s][pick[i, 1] % len(OPENERS[s])].format(noun=noun),
                    MIDDLES[s][pick[i, 2] % len(MIDDLES[s])].format(aspect=aspect),
                    CLOSERS[s][pick[i, 3] % len(CLOSERS[s])],
                )
            )
            title = REVIEW_TITLES[s][pick[i, 4] % len(REVIEW_TITLES[s])]
        else:
            text = title = ""
        asin = world.item_ids[item]
        # Vocabulary holds no '"' or '\\' (checked below), so this f-string is valid JSON.
        yield (
            f'{{"rating": {s + 1}.0, "title": "{title}", "text": "{text}", "images": [], '
            f'"asin": "{asin}", "parent_asin": "{asin}", "user_id": "{user_ids[i]}", '
            f'"timestamp": {int(timestamps[i])}, "helpful_vote": {int(helpful[i])}, '
            f'"verified_purchase": {"true" if verified[i] else "false"}}}\n'
        )


def _meta_record(world: _World, rng: np.random.Generator, item: int) -> dict:
    category = CATEGORIES[int(world.item_category[item])]
    noun = category.nouns[item % len(category.nouns)]
    adjective = category.adjectives[int(rng.integers(len(category.adjectives)))]
    store = category.stores[int(rng.integers(len(category.stores)))]
    suffix = TITLE_SUFFIXES[int(rng.integers(len(TITLE_SUFFIXES)))]
    features = list(rng.choice(category.features, size=min(2, len(category.features)), replace=False))
    low, high = category.price
    price = None if rng.random() < 0.1 else round(float(rng.uniform(low, high)), 2)
    return {
        "main_category": category.main_category,
        "title": f"{store} {adjective} {noun.title()}{suffix}",
        "features": [str(f) for f in features],
        "description": [f"{_article(adjective)} {adjective.lower()} {noun} for anyone who cares about {category.aspects[0]}."],
        "price": price,
        "images": [],
        "videos": [],
        "store": store,
        "categories": [category.main_category, category.name],
        "details": {},
        "parent_asin": str(world.item_ids[item]),
        "bought_together": None,
    }


def _article(word: str) -> str:
    return "An" if word[:1].lower() in "aeiou" else "A"


def generate_amazon2023(out_dir: Path, n_reviews: int, seed: int) -> SyntheticDataset:
    """Write ``reviews.jsonl.gz``, ``meta.jsonl.gz`` (Amazon Reviews 2023 layout), the ground truth
    ``communities.parquet`` / ``item_communities.parquet`` and ``synthetic.json``. Deterministic
    in ``(n_reviews, seed)``; every file is written then renamed."""
    if n_reviews < 10:
        raise ValueError(f"n_reviews must be at least 10, got {n_reviews}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    world = _build_world(n_reviews, seed)
    n_users, n_items = len(world.user_ids), len(world.item_ids)

    meta_rng = np.random.default_rng([seed, 1])
    with atomic_path(out_dir / META_FILE) as tmp, gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1) as fh:
        for item in range(n_items):
            fh.write(json.dumps(_meta_record(world, meta_rng, item)) + "\n")

    with atomic_path(out_dir / REVIEWS_FILE) as tmp, gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1) as fh:
        with tqdm(total=n_reviews, desc="synthetic reviews", unit=" reviews", unit_scale=True, disable=None) as bar:
            for chunk, start in enumerate(range(0, n_users, USER_CHUNK)):
                rng = np.random.default_rng([seed, 2, chunk])
                users = np.arange(start, min(start + USER_CHUNK, n_users))
                repeated = np.repeat(users, world.reviews_per_user[users])
                fh.writelines(_review_lines(world, rng, repeated))
                bar.update(len(repeated))

    with atomic_path(out_dir / COMMUNITIES_FILE) as tmp:
        pq.write_table(
            pa.table({"user_id": pa.array(world.user_ids.astype(str)), "community": pa.array(world.user_community, pa.int32())}),
            tmp,
        )
    with atomic_path(out_dir / ITEM_COMMUNITIES_FILE) as tmp:
        pq.write_table(
            pa.table(
                {
                    "item_id": pa.array(world.item_ids),
                    "community": pa.array(world.item_community, pa.int32()),
                    "category": pa.array([CATEGORIES[c].name for c in world.item_category]),
                }
            ),
            tmp,
        )
    dataset = SyntheticDataset(
        out_dir=out_dir,
        reviews_path=out_dir / REVIEWS_FILE,
        meta_path=out_dir / META_FILE,
        communities_path=out_dir / COMMUNITIES_FILE,
        item_communities_path=out_dir / ITEM_COMMUNITIES_FILE,
        n_reviews=int(world.reviews_per_user.sum()),
        n_users=n_users,
        n_items=n_items,
        n_communities=len(world.community_items),
        seed=seed,
    )
    write_json(dataset.to_json(), out_dir / MANIFEST_FILE)
    return dataset


def ensure_synthetic(out_dir: Path, n_reviews: int, seed: int) -> SyntheticDataset:
    """The dataset in ``out_dir`` if one of this size and seed is already complete there (its
    manifest is written last), else a freshly generated one."""
    manifest = Path(out_dir) / MANIFEST_FILE
    if manifest.exists():
        try:
            existing = SyntheticDataset.from_json(json.loads(manifest.read_text()))
        except (ValueError, TypeError):
            existing = None
        if (
            existing is not None
            and existing.n_reviews == n_reviews
            and existing.seed == seed
            and existing.reviews_path.exists()
            and existing.meta_path.exists()
        ):
            return existing
    return generate_amazon2023(Path(out_dir), n_reviews, seed)


def _check_vocabulary() -> None:
    words = [w for c in CATEGORIES for group in (c.nouns, c.adjectives, c.aspects) for w in group]
    words += [w for bank in (OPENERS, MIDDLES, CLOSERS, REVIEW_TITLES) for level in bank for w in level]
    bad = [w for w in words if '"' in w or "\\" in w]
    if bad:
        raise ValueError(f"synthetic vocabulary must not contain quotes or backslashes: {bad}")


_check_vocabulary()
