"""The offline profile builder: the default, deterministic stand-in for P = LLM(M, S) (§3.2).

It reads the same structured inputs the LLM prompts are made of (profile_inputs.py) and writes a
compact, informative summary of at most ``profile_words`` words, most informative parts first:

item  P_v: title · categories · key terms (TF-IDF salience over description, attributes and all
          reviews, against the whole catalogue) · attributes · rating pattern · opening of description
user  P_u: rating tendency · categories bought (over all the user's items) · titles liked / disliked
          from the uniform sample Î_u · themes of the sampled items' profiles · the most frequent content
          words of the user's own reviews (local to the user, so unrelated users never change)

Ratings-only data (no text, no metadata) degrades gracefully to what exists: titles and genres when the
items table has them, the rating pattern always. No randomness beyond the seeded sample of Î_u, and
ties in salience break alphabetically, so the same input always gives the same text. Numbers are
written coarsely (count buckets, one decimal) so that the per-split rebuild of the evaluator mostly
reproduces the same texts and hits the embedding cache.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from glom_plugin.config import GlomConfig
from glom_plugin.text.llm_builder import DryRunReport
from glom_plugin.text.profile_inputs import ItemInput, UserInput

OFFLINE_TEMPLATE_ID = "offline@v2"
KEY_TERMS = 8
LIKED_AT = 0.6  # rating_norm at or above: the user liked the item (4/5, 7/10)
DISLIKED_BELOW = 0.4
# Rating tendency on the normalized scale, absolute (not vs. the corpus mean) so it is local to the user.
GENEROUS_AT = 0.8
CRITICAL_BELOW = 0.5
_WORD = re.compile(r"\b[a-z][a-z]{2,}\b")


def _frequent_terms(text: str, k: int) -> list[str]:
    """The user's own most frequent content words (ties alphabetical). Deliberately local — no corpus IDF —
    so a user's profile depends on that user's reviews alone."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    words = [w for w in _WORD.findall(text.lower()) if w not in ENGLISH_STOP_WORDS]
    return [w for w, _ in sorted(Counter(words).items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def _salient_terms(docs: Sequence[str], k: int) -> list[list[str]]:
    """Top-k TF-IDF terms per document, ties broken alphabetically; [] for a document without words."""
    out: list[list[str]] = [[] for _ in docs]
    if not any(d.strip() for d in docs):
        return out
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(
        stop_words="english",
        token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]{2,}\b",
        sublinear_tf=True,
        lowercase=True,
    )
    try:
        matrix = vectorizer.fit_transform(docs).tocsr()
    except ValueError:  # every word was a stop word
        return out
    vocabulary = vectorizer.get_feature_names_out()
    for row in range(matrix.shape[0]):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        if start == end:
            continue
        cols = matrix.indices[start:end]
        scores = np.round(matrix.data[start:end], 9)
        terms = vocabulary[cols]
        order = np.lexsort((terms, -scores))[:k]
        out[row] = [str(terms[i]) for i in order]
    return out


def _salience_attributes(item: ItemInput) -> list[str]:
    """Attribute text worth weighing for key terms: features and the store name, not the price label."""
    out = []
    for attribute in item.attributes:
        if attribute.startswith("Price: "):
            continue
        out.append(attribute.removeprefix("Store: "))
    return out


def _count_phrase(n: int) -> str:
    """Coarse on purpose: the evaluator rebuilds profiles per split, and an item that lost one held-out
    rating should keep the same text (and so the same cached embedding); an embedding model reads
    "100-199 users" no worse than "143 users"."""
    if n == 1:
        return "1 user"
    for upper in (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000):
        if n < upper:
            lower = {
                5: 2,
                10: 5,
                20: 10,
                50: 20,
                100: 50,
                200: 100,
                500: 200,
                1000: 500,
                2000: 1000,
                5000: 2000,
            }[upper]
            return f"{lower}-{upper - 1} users"
    return "5000+ users"


def _rating_phrase(mean: float) -> str:
    if mean >= 0.8:
        return "highly rated"
    if mean >= 0.6:
        return "well rated"
    if mean >= 0.4:
        return "mixed ratings"
    return "poorly rated"


def _short(title: str, words: int = 8) -> str:
    parts = title.split()
    return " ".join(parts[:words]) + ("..." if len(parts) > words else "")


def _cap_words(parts: list[str], limit: int) -> str:
    words = " ".join(p for p in parts if p).split()
    return " ".join(words[:limit])


class OfflineProfileBuilder:
    """Deterministic summaries; labelled ``builder="offline"`` in every output."""

    name = "offline"

    def __init__(self, cfg: GlomConfig, cache_dir: Path | None = None) -> None:
        # cache_dir: unused — offline profiles cost nothing to rebuild; kept for one builder signature.
        self.cfg = cfg
        self.words = cfg.profiles.profile_words

    def dry_run(self, items: Sequence[ItemInput], users: Sequence[UserInput]) -> DryRunReport:
        return DryRunReport(
            builder=self.label,
            item_prompts=0,
            user_prompts=0,
            cached_item_prompts=0,
            cached_user_prompts=0,
            est_prompt_tokens=0,
            est_completion_tokens=0,
            est_cost_usd=0.0,
            note=f"offline builder: no LLM requests; {len(items)} item and {len(users)} user profiles "
            "are built locally",
        )

    @property
    def label(self) -> str:
        return "offline"

    @property
    def item_template_id(self) -> str:
        return OFFLINE_TEMPLATE_ID

    @property
    def user_template_id(self) -> str:
        return OFFLINE_TEMPLATE_ID

    def item_profiles(self, items: Sequence[ItemInput]) -> dict[str, str]:
        docs = [" ".join([i.description or "", *_salience_attributes(i), i.all_review_text]) for i in items]
        terms = _salient_terms(docs, KEY_TERMS)
        profiles: dict[str, str] = {}
        for item, key_terms in zip(items, terms, strict=True):
            parts = [f"{item.title}." if item.title else "An item."]
            if item.categories:
                parts.append(f"Categories: {', '.join(item.categories)}.")
            if key_terms:
                parts.append(f"Key terms: {', '.join(key_terms)}.")
            if item.attributes:
                parts.append(f"Attributes: {'; '.join(item.attributes)}.")
            parts.append(
                f"Rated by {_count_phrase(item.n_ratings)}, "
                f"{_rating_phrase(item.mean_rating_norm)} "
                f"(average {item.mean_rating_norm:.1f} of 1, about {round(item.liked_share, 1):.0%} liked)."
            )
            if item.description:
                parts.append(f"About: {item.description}")
            profiles[item.item_id] = _cap_words(parts, self.words)
        return profiles

    def user_profiles(
        self, users: Sequence[UserInput], items: Sequence[ItemInput], item_profiles: dict[str, str]
    ) -> dict[str, str]:
        by_id = {i.item_id: i for i in items}
        item_terms = {
            iid: text.split("Key terms: ", 1)[1].split(".", 1)[0].split(", ")
            for iid, text in item_profiles.items()
            if "Key terms: " in text
        }
        profiles: dict[str, str] = {}
        for user in users:
            if user.n_items == 0:
                profiles[user.user_id] = "A user with no recorded interactions."
                continue
            # Everything below reads only this user's rows and their items' profiles: a user untouched by
            # a held-out split keeps exactly the same text (tests/integration/test_evaluate_pipeline.py).
            mean = float(np.mean(user.rating_norms))
            tendency = (
                "generous" if mean >= GENEROUS_AT else "critical" if mean < CRITICAL_BELOW else "moderate"
            )
            plural = "s" if user.n_items != 1 else ""
            parts = [f"A {tendency} rater of {user.n_items} item{plural} (average {mean:.1f} of 1)."]
            terms = _frequent_terms(" ".join(c.review or "" for c in user.sampled), 6)
            categories: Counter[str] = Counter()
            for iid in user.item_ids:
                item = by_id.get(iid)
                if item is not None:
                    categories.update(item.categories)
            if categories:
                top = sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))[:6]
                parts.append("Mostly interested in " + ", ".join(f"{c} ({n})" for c, n in top) + ".")
            liked = [c.title for c in user.sampled if c.title and c.rating_norm >= LIKED_AT]
            disliked = [c.title for c in user.sampled if c.title and c.rating_norm < DISLIKED_BELOW]
            if liked:
                parts.append("Liked: " + "; ".join(_short(t) for t in liked[:5]) + ".")
            if disliked:
                parts.append("Disliked: " + "; ".join(_short(t) for t in disliked[:3]) + ".")
            themes: Counter[str] = Counter()
            for c in user.sampled:
                themes.update(item_terms.get(c.item_id, []))
            if themes:
                top_themes = sorted(themes.items(), key=lambda kv: (-kv[1], kv[0]))[:8]
                parts.append("Item themes: " + ", ".join(t for t, _ in top_themes) + ".")
            if terms:
                parts.append("In own reviews: " + ", ".join(terms) + ".")
            profiles[user.user_id] = _cap_words(parts, self.words)
        return profiles
