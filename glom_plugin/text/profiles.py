"""User and item profiles (§3.2) and their fixed-size embeddings (§3.2.4): the profiles stage.

    items first:  P_v = builder(M_v, S_v)             for every item in the interactions
    then users:   P_u = builder(M_u(P_v ...), S_u)    for every user, over a uniform sample Î_u
    embeddings:   u_{p_u} = f_e(P_u), v_{p_v} = f_e(P_v)

Builders come from a registry (name -> "module:Class"): ``offline`` (the labelled default, no network)
and ``llm`` (any OpenAI-compatible endpoint). Every output row carries ``builder`` ("offline" or
"llm:<model>") and ``template_id``, so a profile's provenance is never ambiguous. The embedding tables
are the offline sources of the Feast profile-embedding feature views.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from glom_plugin.config import GlomConfig
from glom_plugin.data.schema import MAX_TIMESTAMP_MS
from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.layout import RunLayout
from glom_plugin.plugins import load_class
from glom_plugin.storage import write_json, write_parquet
from glom_plugin.text.llm_builder import DryRunReport
from glom_plugin.text.profile_inputs import ItemInput, UserInput, item_inputs, user_inputs

# Short name -> "module:Class" (the Feast ONLINE_STORE_CLASS_FOR_TYPE pattern): a new builder is one line.
PROFILE_BUILDERS: dict[str, str] = {
    "offline": "glom_plugin.text.offline_builder:OfflineProfileBuilder",
    "llm": "glom_plugin.text.llm_builder:LLMProfileBuilder",
}

PROFILE_COLUMNS = ["profile", "builder", "template_id"]


def _profile_schema(id_column: str) -> pa.Schema:
    return pa.schema(
        [
            pa.field(id_column, pa.string(), nullable=False),
            pa.field("profile", pa.string(), nullable=False),
            pa.field("builder", pa.string(), nullable=False),
            pa.field("template_id", pa.string(), nullable=False),
        ]
    )


def _embedding_schema(id_column: str) -> pa.Schema:
    """The Feast source layout: entity key, vector, provenance, and the event timestamp Feast joins on."""
    return pa.schema(
        [
            pa.field(id_column, pa.string(), nullable=False),
            pa.field("embedding", pa.list_(pa.float32()), nullable=False),
            pa.field("model", pa.string(), nullable=False),
            pa.field("text_hash", pa.string(), nullable=False),
            pa.field("event_timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    )


ITEM_PROFILES_SCHEMA = _profile_schema("item_id")
USER_PROFILES_SCHEMA = _profile_schema("user_id")
ITEM_PROFILE_EMBEDDINGS_SCHEMA = _embedding_schema("item_id")
USER_PROFILE_EMBEDDINGS_SCHEMA = _embedding_schema("user_id")


class ProfileBuilder(Protocol):
    name: str

    @property
    def label(self) -> str: ...
    @property
    def item_template_id(self) -> str: ...
    @property
    def user_template_id(self) -> str: ...
    def item_profiles(self, items: list[ItemInput]) -> dict[str, str]: ...
    def user_profiles(
        self, users: list[UserInput], items: list[ItemInput], item_profiles: dict[str, str]
    ) -> dict[str, str]: ...
    def dry_run(self, items: list[ItemInput], users: list[UserInput]) -> DryRunReport: ...


@dataclass
class ProfileTables:
    item_profiles: pd.DataFrame  # item_id, profile, builder, template_id
    user_profiles: pd.DataFrame  # user_id, profile, builder, template_id


def create_builder(cfg: GlomConfig, cache_dir: Path) -> ProfileBuilder:
    """The builder named by ``profiles.builder`` (a registered name or ``module:Class``)."""
    cls = load_class(cfg.profiles.builder, PROFILE_BUILDERS, ProfileBuilder, "profiles.builder")
    return cls(cfg, Path(cache_dir))  # type: ignore[call-arg]


def _require_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; has {list(frame.columns)}")


def _inputs(
    interactions: pd.DataFrame, items: pd.DataFrame, cfg: GlomConfig
) -> tuple[list[ItemInput], list[UserInput]]:
    _require_columns(interactions, ["user_id", "item_id", "rating_norm"], "interactions table")
    if len(items):
        _require_columns(items, ["item_id"], "items table")
    return item_inputs(interactions, items, cfg.profiles), user_inputs(
        interactions, items, cfg.profiles, cfg.seed
    )


def build_profiles(
    interactions: pd.DataFrame, items: pd.DataFrame, cfg: GlomConfig, cache_dir: Path
) -> ProfileTables:
    """Item profiles first, then user profiles that embed them (§3.2.1). Only ``interactions`` are read,
    so the evaluator's training split yields leak-free profiles."""
    builder = create_builder(cfg, cache_dir)
    item_in, user_in = _inputs(interactions, items, cfg)
    item_texts = builder.item_profiles(item_in)
    user_texts = builder.user_profiles(user_in, item_in, item_texts)
    item_df = pd.DataFrame(
        {
            "item_id": list(item_texts),
            "profile": list(item_texts.values()),
            "builder": builder.label,
            "template_id": builder.item_template_id,
        },
        columns=["item_id", *PROFILE_COLUMNS],
    )
    user_df = pd.DataFrame(
        {
            "user_id": list(user_texts),
            "profile": list(user_texts.values()),
            "builder": builder.label,
            "template_id": builder.user_template_id,
        },
        columns=["user_id", *PROFILE_COLUMNS],
    )
    return ProfileTables(item_profiles=item_df, user_profiles=user_df)


def dry_run_profiles(
    interactions: pd.DataFrame, items: pd.DataFrame, cfg: GlomConfig, cache_dir: Path
) -> DryRunReport:
    """How many prompts, estimated tokens and (with prices) cost — before anything is spent."""
    builder = create_builder(cfg, cache_dir)
    item_in, user_in = _inputs(interactions, items, cfg)
    return builder.dry_run(item_in, user_in)


def profile_run_params(cfg: GlomConfig, cache_dir: Path | None = None) -> dict[str, str]:
    """What an MLflow run logs about profiles: builder, LLM model, template ids, embedding model."""
    from glom_plugin.text.embeddings import model_id

    builder = create_builder(cfg, Path(cache_dir or "."))
    return {
        "profiles.builder": builder.label,
        "profiles.item_template_id": builder.item_template_id,
        "profiles.user_template_id": builder.user_template_id,
        "profiles.llm_model": cfg.profiles.llm_model if cfg.profiles.builder == "llm" else "",
        "embedding.model": model_id(cfg.embedding),
    }


def _embedding_cache(cache_dir: Path) -> Path:
    return Path(cache_dir) / "profile_embeddings.parquet"


def _last_event(interactions: pd.DataFrame, key: str, ids: list[str], fallback: pd.Timestamp) -> pd.Series:
    """Feast event_timestamp: when the evidence behind a profile ends (the entity's last interaction);
    the stage's build time where the data has no timestamps."""
    stamps = pd.Series(pd.NaT, index=ids, dtype="datetime64[ns, UTC]")
    if "timestamp_ms" in interactions.columns:
        last = (
            pd.to_numeric(interactions["timestamp_ms"], errors="coerce")
            .groupby(interactions[key].astype(str))
            .max()
            .reindex(ids)
        )
        # Integer milliseconds inside pandas' datetime range only: the float path of pd.to_datetime
        # multiplies under np.errstate(over="raise") and crashed on ratings files without timestamps.
        usable = last.notna() & (last.abs() < MAX_TIMESTAMP_MS)
        if usable.any():
            stamps[usable.to_numpy()] = pd.to_datetime(last[usable].astype("int64"), unit="ms", utc=True).to_numpy()
    return stamps.fillna(fallback).reset_index(drop=True)


def embed_profile_table(
    profiles: pd.DataFrame, id_column: str, interactions: pd.DataFrame, cfg: GlomConfig, cache_dir: Path
) -> pd.DataFrame:
    """One row per entity: (id, embedding list<float32>, model, text_hash, event_timestamp)."""
    from glom_plugin.text.embeddings import embed_texts, model_id, text_hash

    texts = profiles["profile"].astype(str).tolist()
    vectors = embed_texts(texts, cfg.embedding, _embedding_cache(cache_dir))
    ids = profiles[id_column].astype(str).tolist()
    built = pd.Timestamp(datetime.now(UTC))
    return pd.DataFrame(
        {
            id_column: ids,
            "embedding": list(vectors),
            "model": model_id(cfg.embedding),
            "text_hash": [text_hash(t, cfg.embedding) for t in texts],
            "event_timestamp": _last_event(interactions, id_column, ids, built),
        }
    )


def _read_table(path: Path, stage: str) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `glom {stage}` first")
    return pd.read_parquet(path)


def run_profiles_stage(cfg: GlomConfig, layout: RunLayout, dry_run: bool = False) -> dict[str, Any]:
    """The `glom profiles [--dry-run]` stage: read the ingested tables, write profiles and embeddings."""
    interactions = _read_table(layout.interactions, "ingest")
    items = (
        _read_table(layout.items, "ingest") if layout.items.exists() else pd.DataFrame(columns=["item_id"])
    )
    if dry_run:
        report = dry_run_profiles(interactions, items, cfg, layout.cache_dir)
        print(report.format())
        return report.as_dict()
    started = time.perf_counter()
    tables = build_profiles(interactions, items, cfg, layout.cache_dir)
    profile_seconds = time.perf_counter() - started
    write_parquet(tables.item_profiles, layout.item_profiles, ITEM_PROFILES_SCHEMA)
    write_parquet(tables.user_profiles, layout.user_profiles, USER_PROFILES_SCHEMA)
    started = time.perf_counter()
    item_emb = embed_profile_table(tables.item_profiles, "item_id", interactions, cfg, layout.cache_dir)
    user_emb = embed_profile_table(tables.user_profiles, "user_id", interactions, cfg, layout.cache_dir)
    embed_seconds = time.perf_counter() - started
    write_parquet(item_emb, layout.item_profile_embeddings, ITEM_PROFILE_EMBEDDINGS_SCHEMA)
    write_parquet(user_emb, layout.user_profile_embeddings, USER_PROFILE_EMBEDDINGS_SCHEMA)
    summary = {
        **profile_run_params(cfg, layout.cache_dir),
        "n_item_profiles": len(tables.item_profiles),
        "n_user_profiles": len(tables.user_profiles),
        "embedding_dim": int(len(item_emb["embedding"].iloc[0])) if len(item_emb) else 0,
        "profile_seconds": round(profile_seconds, 2),
        "embedding_seconds": round(embed_seconds, 2),
        "outputs": {
            "item_profiles": str(layout.item_profiles),
            "user_profiles": str(layout.user_profiles),
            "item_profile_embeddings": str(layout.item_profile_embeddings),
            "user_profile_embeddings": str(layout.user_profile_embeddings),
        },
    }
    write_json(summary, layout.profiles_report)
    return summary


def _aligned(
    ids: np.ndarray, profiles: pd.DataFrame, id_column: str, cfg: GlomConfig, cache_dir: Path
) -> np.ndarray:
    """Embeddings in the order of ``ids``. An id with no profile (no interaction in the given split) gets
    the embedding of an explicit 'no interactions' profile rather than being dropped."""
    from glom_plugin.text.embeddings import embed_texts

    text_of = dict(zip(profiles[id_column].astype(str), profiles["profile"].astype(str), strict=True))
    texts = [text_of.get(str(i), "No interactions recorded.") for i in ids]
    return embed_texts(texts, cfg.embedding, _embedding_cache(cache_dir)).astype(np.float32)


def attach_profile_embeddings(
    data: LookalikeData, interactions: pd.DataFrame, items: pd.DataFrame, cfg: GlomConfig, layout: RunLayout
) -> LookalikeData:
    """``data`` with user/item profile embeddings aligned to data.user_ids / data.item_ids (float32,
    L2-normalized). Profiles are rebuilt from the ``interactions`` given — the evaluator passes the
    training split, so held-out purchases never shape a profile; the LLM and embedding caches make
    the rebuild cheap (only changed texts are requested / re-embedded). Ablation "w/o U/I profile"
    (cfg.pm.use_profiles=False) returns ``data`` unchanged."""
    if not cfg.pm.use_profiles:
        return data
    # All given interactions, not only data's users: the corpus statistics (TF-IDF, overall rating mean)
    # then match what `glom profiles` computes on the same split.
    tables = build_profiles(interactions, items, cfg, layout.cache_dir)
    user_emb = _aligned(data.user_ids, tables.user_profiles, "user_id", cfg, layout.cache_dir)
    item_emb = _aligned(data.item_ids, tables.item_profiles, "item_id", cfg, layout.cache_dir)
    return data.with_profiles(user_emb, item_emb)
