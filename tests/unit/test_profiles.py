"""Profiles (§3.2) and their embeddings (§3.2.4): offline builder, prompts, caches, embedding cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from glom_plugin.config import GlomConfig
from glom_plugin.data.schema import INTERACTIONS_SCHEMA, ITEMS_SCHEMA
from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.layout import RunLayout
from glom_plugin.storage import write_parquet
from glom_plugin.text import embeddings as emb
from glom_plugin.text.llm_builder import LLMProfileBuilder
from glom_plugin.text.llm_cache import ProfileCache, cache_key
from glom_plugin.text.profile_inputs import item_inputs, user_inputs
from glom_plugin.text.profiles import (
    attach_profile_embeddings,
    build_profiles,
    dry_run_profiles,
    run_profiles_stage,
)
from glom_plugin.text.prompts import load_templates


def _interactions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u1", "u2", "u2", "u3"],
            "item_id": ["mega", "walle", "rocky", "walle", "rocky", "rocky"],
            "rating": [5.0, 5.0, 4.0, 2.0, 5.0, 1.0],
            "rating_norm": [1.0, 1.0, 0.75, 0.25, 1.0, 0.0],
            "review_title": [None] * 6,
            "text": [
                "Really enjoyed! Hilarious superhero twist",
                "Happy to have found this video. Great children entertainment",
                "Love this show. Glad I found it on dvd.",
                None,
                "Cult classic musical, amazing songs",
                "Boring and loud musical",
            ],
            "timestamp_ms": [
                1_600_000_000_000,
                1_600_000_100_000,
                1_600_000_200_000,
                1_500_000_000_000,
                None,
                1_400_000_000_000,
            ],
            "verified_purchase": [True] * 6,
            "helpful_votes": [3, 1, 0, 0, 2, 5],
        }
    )


def _items() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": ["mega", "walle", "rocky"],
            "title": ["Megamind", "Wall-E (Mandarin Chinese Edition)", "Rocky Horror Picture Show VHS"],
            "main_category": ["Movies & TV"] * 3,
            "categories": [
                ["Science Fiction", "Animation"],
                ["Characters & Series", "Wall-E"],
                ["Music & Musicals"],
            ],
            "description": [
                "A smart, funny and original treat; a hilarious twist on the superhero movie.",
                "Pixar genius reigns in this funny romantic comedy about a robot.",
                None,
            ],
            "features": [None, "Region 2 DVD", None],
            "store": ["DreamWorks", None, None],
            "price": [9.99, None, 4.5],
        }
    )


def _cfg(**overrides: object) -> GlomConfig:
    return GlomConfig().with_overrides(**overrides)


def test_offline_builder_is_deterministic_and_order_independent(tmp_path: Path) -> None:
    cfg = _cfg()
    first = build_profiles(_interactions(), _items(), cfg, tmp_path)
    shuffled = _interactions().sample(frac=1.0, random_state=3).reset_index(drop=True)
    second = build_profiles(shuffled, _items().iloc[::-1], cfg, tmp_path)
    pd.testing.assert_frame_equal(first.item_profiles, second.item_profiles)
    pd.testing.assert_frame_equal(first.user_profiles, second.user_profiles)
    assert set(first.item_profiles["builder"]) == {"offline"}
    assert set(first.user_profiles["builder"]) == {"offline"}
    mega = first.item_profiles.set_index("item_id").loc["mega", "profile"]
    # Title, categories and salient review/description terms make it into the item profile.
    assert mega.startswith("Megamind.") and "Science Fiction" in mega and "superhero" in mega
    u1 = first.user_profiles.set_index("user_id").loc["u1", "profile"]
    assert "generous" in u1 and "Megamind" in u1
    u3 = first.user_profiles.set_index("user_id").loc["u3", "profile"]
    assert "critical" in u3 and "Disliked: Rocky Horror" in u3
    assert all(len(p.split()) <= cfg.profiles.profile_words for p in first.user_profiles["profile"])


def test_offline_item_profile_is_stable_when_one_rating_is_held_out(tmp_path: Path) -> None:
    # The evaluator rebuilds profiles from each training split; coarse numbers keep texts (and cached
    # embeddings) unchanged for items that lose a single held-out rating.
    frame = pd.DataFrame({"user_id": [f"u{i}" for i in range(30)], "item_id": "hit", "rating_norm": 0.75})
    full = build_profiles(frame, _items(), _cfg(), tmp_path).item_profiles["profile"].iloc[0]
    split = build_profiles(frame.iloc[1:], _items(), _cfg(), tmp_path).item_profiles["profile"].iloc[0]
    assert full == split and "20-49 users" in full and "average 0.8 of 1" in full


def test_offline_user_profile_is_local_to_the_user(tmp_path: Path) -> None:
    # Removing another user's rows (a held-out split) must not rewrite an unrelated user's profile.
    extra = pd.DataFrame(
        {
            "user_id": ["u4"],
            "item_id": ["mega"],
            "rating": [4.0],
            "rating_norm": [0.75],
            "text": ["Funny superhero story, great cast"],
            "helpful_votes": [0],
        }
    )
    full = pd.concat([_interactions(), extra], ignore_index=True)
    split = full.drop(full.index[(full["user_id"] == "u3")])
    before = build_profiles(full, _items(), _cfg(), tmp_path).user_profiles.set_index("user_id")["profile"]
    after = build_profiles(split, _items(), _cfg(), tmp_path).user_profiles.set_index("user_id")["profile"]
    assert after["u4"] == before["u4"] and "superhero" in before["u4"]


def test_offline_builder_works_on_ratings_only_data(tmp_path: Path) -> None:
    bare = _interactions()[["user_id", "item_id", "rating_norm"]]
    tables = build_profiles(bare, pd.DataFrame(columns=["item_id"]), _cfg(), tmp_path)
    assert sorted(tables.item_profiles["item_id"]) == ["mega", "rocky", "walle"]
    assert sorted(tables.user_profiles["user_id"]) == ["u1", "u2", "u3"]
    assert all(tables.item_profiles["profile"].str.contains("Rated by"))
    # Titles/genres only (MovieLens-like): they are used when they are all there is.
    titles_only = pd.DataFrame(
        {
            "item_id": ["mega", "walle", "rocky"],
            "title": ["Megamind", "Wall-E", "Rocky"],
            "categories": [["Animation"], ["Animation"], ["Musical"]],
        }
    )
    tables = build_profiles(bare, titles_only, _cfg(), tmp_path)
    u1 = tables.user_profiles.set_index("user_id").loc["u1", "profile"]
    assert "Animation (2)" in u1 and "Wall-E" in u1


def test_item_prompt_has_the_papers_parts_and_domain_guidelines() -> None:
    cfg = _cfg(**{"profiles.domain": "movies"})
    templates = load_templates(cfg.profiles)
    item = next(i for i in item_inputs(_interactions(), _items(), cfg.profiles) if i.item_id == "mega")
    system, prompt = templates.item_messages(item, cfg.profiles.profile_words)
    # Figure 4: title, category, attributes, subset of reviews, description; S_v asks for 100 words.
    for part in (
        "Title: Megamind",
        "Category: ['Movies & TV', 'Science Fiction', 'Animation']",
        "Attributes: Store: DreamWorks; Price: 9.99",
        'Subset of Reviews: ["Really enjoyed!',
        'Description: ["A smart, funny',
    ):
        assert part in prompt
    assert "about the movie within 100 words" in system and "Guideline" in system
    books = load_templates(_cfg(**{"profiles.domain": "books"}).profiles)
    auto = load_templates(_cfg(**{"profiles.domain": "automotive"}).profiles)
    assert "What kind of story would the user enjoy?" in books.user_guideline
    assert "What car features are important to the user?" in auto.user_guideline
    assert len({t.item_template_id for t in (templates, books, auto)}) == 3
    with pytest.raises(ValueError, match="available: automotive, books, electronics, general, movies"):
        load_templates(_cfg(**{"profiles.domain": "toys"}).profiles)


def test_user_prompt_embeds_item_profiles_of_a_uniform_sample(tmp_path: Path) -> None:
    cfg = _cfg(**{"profiles.builder": "llm", "profiles.max_items_per_user": 2})
    builder = LLMProfileBuilder(cfg, tmp_path)
    users = user_inputs(_interactions(), _items(), cfg.profiles, cfg.seed)
    u1 = next(u for u in users if u.user_id == "u1")
    assert len(u1.sampled) == 2 and len({c.item_id for c in u1.sampled}) == 2
    item_profiles = {"mega": "PROFILE-OF-MEGA", "walle": "PROFILE-OF-WALLE", "rocky": "PROFILE-OF-ROCKY"}
    request = builder.user_requests([u1], item_profiles)["u1"]
    assert request.prompt.startswith("Purchased Items [")
    for c in u1.sampled:  # c_v = [title, P_v, the user's review] (§3.2.1)
        assert f"Title: {c.title}" in request.prompt
        assert f"Item profile: {item_profiles[c.item_id]}" in request.prompt
        assert f'Review: "{c.review}"' in request.prompt
    assert "Generate a user profile" in request.system and "100 words" in request.system


def test_user_sample_is_uniform_and_seeded() -> None:
    n_users, n_items, k = 600, 10, 3
    frame = pd.DataFrame(
        {
            "user_id": np.repeat([f"u{i}" for i in range(n_users)], n_items),
            "item_id": np.tile([f"i{j}" for j in range(n_items)], n_users),
            "rating_norm": 1.0,
            "timestamp_ms": np.tile(np.arange(n_items), n_users),
        }
    )
    cfg = _cfg(**{"profiles.max_items_per_user": k})
    users = user_inputs(frame, pd.DataFrame(columns=["item_id"]), cfg.profiles, seed=1)
    counts = pd.Series([c.item_id for u in users for c in u.sampled]).value_counts()
    expected = n_users * k / n_items  # 180 per position under a uniform sample
    assert len(counts) == n_items and counts.min() > 0.75 * expected and counts.max() < 1.25 * expected
    again = user_inputs(frame, pd.DataFrame(columns=["item_id"]), cfg.profiles, seed=1)
    other = user_inputs(frame, pd.DataFrame(columns=["item_id"]), cfg.profiles, seed=2)
    assert [u.sampled for u in users] == [u.sampled for u in again]
    assert [u.sampled for u in users] != [u.sampled for u in other]


def test_cache_keys_include_template_and_model(tmp_path: Path) -> None:
    assert cache_key("m1", "t", "s", "p") != cache_key("m2", "t", "s", "p")
    assert cache_key("m1", "t1", "s", "p") != cache_key("m1", "t2", "s", "p")
    base = _cfg(**{"profiles.builder": "llm"})
    items = item_inputs(_interactions(), _items(), base.profiles)
    key = LLMProfileBuilder(base, tmp_path).item_requests(items)["mega"].key
    other_model = LLMProfileBuilder(base.with_overrides(**{"profiles.llm_model": "llama3-70b"}), tmp_path)
    assert other_model.item_requests(items)["mega"].key != key
    # An edited template (user copy, one file changed, the rest falls back to the packaged ones).
    override = tmp_path / "my_templates" / "general"
    override.mkdir(parents=True)
    (override / "item_guideline.txt").write_text(
        "Summarise the item in ${words} words, listing its features."
    )
    edited = LLMProfileBuilder(
        base.with_overrides(**{"profiles.template_dir": str(override.parent)}), tmp_path
    )
    assert edited.item_template_id != LLMProfileBuilder(base, tmp_path).item_template_id
    assert edited.user_template_id == LLMProfileBuilder(base, tmp_path).user_template_id
    request = edited.item_requests(items)["mega"]
    assert request.key != key and request.system.startswith("Summarise the item in 100 words")


def test_profile_cache_ignores_torn_and_corrupt_lines(tmp_path: Path) -> None:
    with ProfileCache(tmp_path) as cache:
        cache.put("k1", "profile one", model="m")
        cache.put("k2", "profile two", model="m")
    shard = next(tmp_path.glob("shard-*.jsonl"))
    lines = shard.read_bytes().splitlines(keepends=True)
    tampered = lines[1].replace(b"profile two", b"profile TWO")  # checksum no longer matches
    shard.write_bytes(lines[0] + tampered + b'{"key": "k3", "profile": "half wri')
    reopened = ProfileCache(tmp_path)
    assert reopened.get("k1") == "profile one"
    assert "k2" not in reopened and "k3" not in reopened
    assert reopened.torn_lines == 2
    reopened.put("k2", "profile two")
    assert ProfileCache(tmp_path).get("k2") == "profile two"


def test_dry_run_counts_prompts_tokens_and_cost(tmp_path: Path) -> None:
    cfg = _cfg(
        **{
            "profiles.builder": "llm",
            "profiles.llm_base_url": "http://127.0.0.1:9/v1",
            "profiles.llm_price_prompt_per_1k": 0.01,
            "profiles.llm_price_completion_per_1k": 0.03,
        }
    )
    report = dry_run_profiles(_interactions(), _items(), cfg, tmp_path)
    assert (report.item_prompts, report.user_prompts, report.to_request) == (3, 3, 6)
    assert report.est_completion_tokens == 6 * 134  # ceil(100 words * 4/3) each
    builder = LLMProfileBuilder(cfg, tmp_path)
    item_chars = sum(
        len(r.system) + len(r.prompt)
        for r in builder.item_requests(item_inputs(_interactions(), _items(), cfg.profiles)).values()
    )
    assert report.est_prompt_tokens > item_chars / 4  # user prompts come on top of the item prompts
    assert report.est_cost_usd == pytest.approx(
        report.est_prompt_tokens / 1000 * 0.01 + report.est_completion_tokens / 1000 * 0.03
    )
    assert "estimated cost: $" in report.format()


def test_embed_texts_shape_normalisation_and_cache_hit(tmp_path: Path) -> None:
    cfg = GlomConfig().embedding
    cache = tmp_path / "emb.parquet"
    vectors = emb.embed_texts(["a robot comedy", "a cult musical", "a robot comedy"], cfg, cache)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert pq.read_table(cache).num_rows == 2  # the duplicate is embedded once
    emb._load_model.cache_clear()
    again = emb.embed_texts(["a cult musical", "a robot comedy"], cfg, cache)
    info = emb._load_model.cache_info()
    assert info.hits + info.misses == 0  # every text came from the cache: the model was never loaded
    np.testing.assert_array_equal(again, vectors[[1, 0]])
    prefixed = cfg.model_copy(update={"instruction_prefix": "Represent the user profile: "})
    assert emb.text_hash("x", prefixed) != emb.text_hash("x", cfg)


def test_profiles_stage_writes_feast_ready_tables(tmp_path: Path) -> None:
    layout = RunLayout.at(tmp_path / "run")
    write_parquet(_interactions(), layout.interactions, INTERACTIONS_SCHEMA)
    write_parquet(_items(), layout.items, ITEMS_SCHEMA)
    summary = run_profiles_stage(_cfg(), layout)
    assert summary["profiles.builder"] == "offline" and summary["embedding_dim"] == 384
    users = pq.read_table(layout.user_profile_embeddings)
    assert users.column_names == ["user_id", "embedding", "model", "text_hash", "event_timestamp"]
    assert str(users.schema.field("event_timestamp").type) == "timestamp[us, tz=UTC]"
    assert str(users.schema.field("embedding").type) == "list<element: float>"
    stamps = users.to_pandas().set_index("user_id")["event_timestamp"]
    assert stamps["u1"] == pd.Timestamp(1_600_000_200_000, unit="ms", tz="UTC")  # last interaction
    items = pq.read_table(layout.item_profile_embeddings).to_pandas()
    assert sorted(items["item_id"]) == ["mega", "rocky", "walle"]
    assert set(pq.read_table(layout.item_profiles).to_pandas()["builder"]) == {"offline"}
    dry = run_profiles_stage(_cfg(), layout, dry_run=True)
    assert dry["to_request"] == 0 and dry["builder"] == "offline"


def test_attach_profile_embeddings_aligns_and_respects_ablation(tmp_path: Path) -> None:
    layout = RunLayout.at(tmp_path / "run")
    user_ids = np.array(["u3", "u1", "u9"])  # u9 has no training interaction
    item_ids = np.array(["walle", "mega", "rocky"])
    data = LookalikeData(
        user_ids=user_ids,
        item_ids=item_ids,
        edges=pd.DataFrame(columns=["user_idx", "item_idx", "rating_norm", "sentiment", "polarity", "liked"]),
        similarity=pd.DataFrame(columns=["user_a", "user_b", "similarity"]),
        item_categories=__import__("scipy.sparse", fromlist=["csr_matrix"]).csr_matrix((3, 0)),
    )
    off = attach_profile_embeddings(
        data, _interactions(), _items(), _cfg(**{"pm.use_profiles": False}), layout
    )
    assert off is data and off.user_profile_embeddings is None
    on = attach_profile_embeddings(data, _interactions(), _items(), _cfg(), layout)
    assert on.user_profile_embeddings.shape == (3, 384) and on.item_profile_embeddings.shape == (3, 384)
    assert on.user_profile_embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(on.item_profile_embeddings, axis=1), 1.0, atol=1e-5)
    tables = build_profiles(_interactions(), _items(), _cfg(), layout.cache_dir)
    text = tables.user_profiles.set_index("user_id").loc["u1", "profile"]
    expected = emb.embed_texts([text], _cfg().embedding, None)[0]
    np.testing.assert_allclose(on.user_profile_embeddings[1], expected, atol=1e-5)
    # Training-only rebuild: dropping u1's Megamind purchase changes u1's profile embedding.
    train = _interactions().query("not (user_id == 'u1' and item_id == 'mega')")
    rebuilt = attach_profile_embeddings(data, train, _items(), _cfg(), layout)
    assert not np.allclose(rebuilt.user_profile_embeddings[1], on.user_profile_embeddings[1])


def test_profile_event_time_survives_missing_and_impossible_timestamps() -> None:
    """Found 8: a ratings file without timestamps crashed `glom profiles` in pd.to_datetime's float path
    (it multiplies under np.errstate(over="raise")); stamps are now converted as integers in range."""
    import numpy as np

    from glom_plugin.text.profiles import _last_event

    fallback = pd.Timestamp("2026-01-01", tz="UTC")
    interactions = pd.DataFrame({
        "user_id": ["a", "a", "b", "c", "d"],
        "timestamp_ms": [1_700_000_000_000, 1_700_000_500_000, None, 1.4e15, None],
    })
    with np.errstate(all="raise"):
        stamps = _last_event(interactions, "user_id", ["a", "b", "c", "d", "never-seen"], fallback)
    assert stamps[0] == pd.Timestamp(1_700_000_500_000, unit="ms", tz="UTC")
    assert list(stamps[1:]) == [fallback] * 4  # null, beyond 2262, null, unknown id: the build time
    nothing = pd.DataFrame({"user_id": ["a", "b"], "timestamp_ms": pd.array([None, None], dtype="Int64")})
    with np.errstate(all="raise"):
        assert list(_last_event(nothing, "user_id", ["a", "b"], fallback)) == [fallback, fallback]
