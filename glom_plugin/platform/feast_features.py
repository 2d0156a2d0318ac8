"""Feast adapter: the pipeline's features as Feast feature views, and training reads through Feast.

The feature repo (``feature_repo/``) only *declares* entities and views; this module writes the Parquet
tables behind them (one row per entity, ``event_timestamp`` = when the run produced it), applies the repo,
materializes it into the online store (SQLite by default, Redis in production) and reads training
features back with point-in-time historical retrieval:

- profile embeddings (GLoM §3.2.4) — the vectors PM uses as profile-based representations (§3.5);
- polarity statistics per user and per item (§3.3: p_uv = alpha*rating + (1-alpha)*sentiment);
- the trained GLM user embeddings (§3.7), the vectors lookalikes are retrieved by.

Feast is imported inside the functions: ``feature_repo/features.py`` imports this module for the table
names, and so does training; neither should pay Feast's ~5 s import unless it talks to Feast.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from glom_plugin.storage import write_parquet

if TYPE_CHECKING:
    from glom_plugin.config import GlomConfig
    from glom_plugin.graph.dataset import LookalikeData
    from glom_plugin.layout import RunLayout

log = logging.getLogger(__name__)

FEATURES_DIR_ENV = "GLOM_FEATURES_DIR"
DEFINITIONS_FILE = "features.py"

# Feature view name -> Parquet file in RunLayout.features_dir (feature_repo/features.py reads this map).
FEATURE_TABLE_FILES: dict[str, str] = {
    "user_profile_embedding": "user_profile_embedding.parquet",
    "item_profile_embedding": "item_profile_embedding.parquet",
    "user_polarity_stats": "user_polarity_stats.parquet",
    "item_polarity_stats": "item_polarity_stats.parquet",
    "user_glom_embedding": "user_glom_embedding.parquet",
}

_TS = pa.timestamp("us", tz="UTC")
_EMBEDDING = pa.list_(pa.float32())
POLARITY_STATS = ("mean_polarity", "likes", "dislikes", "interactions")


def _embedding_schema(key: str) -> pa.Schema:
    return pa.schema([pa.field(key, pa.string(), nullable=False), pa.field("embedding", _EMBEDDING), ("event_timestamp", _TS)])


def _polarity_schema(key: str) -> pa.Schema:
    return pa.schema(
        [
            pa.field(key, pa.string(), nullable=False),
            ("mean_polarity", pa.float64()),
            ("likes", pa.int64()),
            ("dislikes", pa.int64()),
            ("interactions", pa.int64()),
            ("event_timestamp", _TS),
        ]
    )


# ----------------------------------------------------------------------------------------------- export
def polarity_statistics(edges: pd.DataFrame, key: str) -> pd.DataFrame:
    """Per-``key`` (user_id or item_id) aggregates of the §3.3 polarity edges.

    likes/dislikes follow the knowledge graph's relations: an edge is a "likes" edge when ``liked`` is
    true and a "dislikes" edge otherwise, so likes + dislikes = interactions.
    """
    missing = {key, "polarity", "liked"} - set(edges.columns)
    if missing:
        raise ValueError(f"polarity edges lack column(s) {sorted(missing)} needed for {key} statistics")
    liked = edges["liked"].astype(bool)
    grouped = pd.DataFrame({key: edges[key], "polarity": edges["polarity"], "liked": liked, "disliked": ~liked}).groupby(
        key, sort=True
    )
    return pd.DataFrame(
        {
            key: grouped.size().index.astype(str),
            "mean_polarity": grouped["polarity"].mean().to_numpy(dtype=np.float64),
            "likes": grouped["liked"].sum().to_numpy(dtype=np.int64),
            "dislikes": grouped["disliked"].sum().to_numpy(dtype=np.int64),
            "interactions": grouped.size().to_numpy(dtype=np.int64),
        }
    )


def _profile_table(source: Path, key: str, as_of: datetime) -> pa.Table:
    """The profiles stage's embeddings (key, embedding, model, text_hash, event_timestamp) -> Feast table."""
    schema = _embedding_schema(key)
    if not source.exists():
        log.warning("no profile embeddings at %s: the %s profile feature view will be empty", source, key)
        return schema.empty_table()
    table = pq.read_table(source)
    missing = {key, "embedding"} - set(table.column_names)
    if missing:
        raise ValueError(f"{source}: missing column(s) {sorted(missing)} (expected {key}, embedding, event_timestamp)")
    if "event_timestamp" in table.column_names:
        ts = table["event_timestamp"].cast(_TS)
    else:
        ts = pa.array([as_of] * table.num_rows, type=_TS)
    return pa.table({key: table[key].cast(pa.string()), "embedding": table["embedding"].cast(_EMBEDDING), "event_timestamp": ts}, schema=schema)


def _glom_embedding_table(model: Any | None, as_of: datetime) -> pa.Table:
    schema = _embedding_schema("user_id")
    if model is None:
        return schema.empty_table()
    user_ids = np.asarray(model.user_ids).astype(str)
    embeddings = np.asarray(model.user_embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or len(embeddings) != len(user_ids):
        raise ValueError(f"trained model: user_embeddings shape {embeddings.shape} does not match {len(user_ids)} user ids")
    flat = pa.array(embeddings.reshape(-1), type=pa.float32())
    offsets = pa.array(np.arange(0, embeddings.size + 1, embeddings.shape[1], dtype=np.int32))
    return pa.table(
        {
            "user_id": pa.array(user_ids, type=pa.string()),
            "embedding": pa.ListArray.from_arrays(offsets, flat),
            "event_timestamp": pa.array([as_of] * len(user_ids), type=_TS),
        },
        schema=schema,
    )


def _load_trained_model(layout: RunLayout) -> Any | None:
    """The newest GLoM artifact of this run (a ``TrainedModel`` dir under models/glm), None before training."""
    candidates = [p.parent for p in [layout.glm_dir / "model.json", *layout.glm_dir.glob("*/model.json")] if p.exists()]
    if not candidates:
        return None
    from glom_plugin.models.artifact import TrainedModel

    return TrainedModel.load(max(candidates, key=lambda p: (p / "model.json").stat().st_mtime))


def export_feature_tables(
    layout: RunLayout,
    cfg: GlomConfig | None = None,
    model: Any | None = None,
    as_of: datetime | None = None,
) -> dict[str, Path]:
    """Write every feature view's Parquet into ``layout.features_dir``; returns view name -> path.

    Reads ``layout.polarity_edges`` (required), the profile embeddings (optional: ablation "w/o profiles"
    leaves the views empty, with a warning) and the trained user embeddings — ``model`` (anything with
    ``user_ids`` and ``user_embeddings``) or, when omitted, the run's GLM artifact if training has run.
    ``as_of`` stamps rows that carry no timestamp of their own (default: now, UTC).
    """
    as_of = as_of or datetime.now(UTC)
    if not layout.polarity_edges.exists():
        raise FileNotFoundError(f"{layout.polarity_edges}: run the graph stage first (polarity edges are required)")
    edges = pd.read_parquet(layout.polarity_edges, columns=["user_id", "item_id", "polarity", "liked"])
    out = layout.features_dir
    written: dict[str, Path] = {}
    for name, key in (("user_polarity_stats", "user_id"), ("item_polarity_stats", "item_id")):
        stats = polarity_statistics(edges, key)
        stats["event_timestamp"] = pd.Timestamp(as_of)
        written[name] = write_parquet(stats, out / FEATURE_TABLE_FILES[name], schema=_polarity_schema(key))
    for name, source, key in (
        ("user_profile_embedding", layout.user_profile_embeddings, "user_id"),
        ("item_profile_embedding", layout.item_profile_embeddings, "item_id"),
    ):
        written[name] = write_parquet(_profile_table(source, key, as_of), out / FEATURE_TABLE_FILES[name])
    if model is None:
        model = _load_trained_model(layout)
    written["user_glom_embedding"] = write_parquet(
        _glom_embedding_table(model, as_of), out / FEATURE_TABLE_FILES["user_glom_embedding"]
    )
    return written


# ---------------------------------------------------------------------------------------- apply / load
@contextmanager
def _features_dir_env(features_dir: str | Path | None) -> Iterator[None]:
    if features_dir is None:
        yield
        return
    previous = os.environ.get(FEATURES_DIR_ENV)
    os.environ[FEATURES_DIR_ENV] = str(Path(features_dir).resolve())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(FEATURES_DIR_ENV, None)
        else:
            os.environ[FEATURES_DIR_ENV] = previous


def _store(repo_path: str | Path, fs_yaml_file: str | Path | None = None) -> Any:
    from feast import FeatureStore

    repo = Path(repo_path).resolve()
    if not (repo / DEFINITIONS_FILE).exists():
        raise FileNotFoundError(f"{repo}: not a glom feature repo ({DEFINITIONS_FILE} missing)")
    yaml_file = Path(fs_yaml_file).resolve() if fs_yaml_file else repo / "feature_store.yaml"
    return FeatureStore(repo_path=str(repo), fs_yaml_file=yaml_file)


def load_definitions(repo_path: str | Path, features_dir: str | Path | None = None) -> list[Any]:
    """Import ``features.py`` afresh (so $GLOM_FEATURES_DIR is read now) and collect its Feast objects."""
    from feast import Entity, FeatureView

    path = Path(repo_path).resolve() / DEFINITIONS_FILE
    with _features_dir_env(features_dir):
        spec = importlib.util.spec_from_file_location(f"_glom_feature_repo_{abs(hash(str(path)))}", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import feature definitions from {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return [obj for obj in vars(module).values() if isinstance(obj, Entity | FeatureView)]


def feast_apply(
    repo_path: str | Path, features_dir: str | Path | None = None, fs_yaml_file: str | Path | None = None
) -> list[str]:
    """``feast apply`` through the SDK: registers the entities and views, sources pointing at ``features_dir``
    (default $GLOM_FEATURES_DIR, else ../runs/default/features). Returns the names applied."""
    objects = load_definitions(repo_path, features_dir)
    store = _store(repo_path, fs_yaml_file)
    store.apply(objects)
    return sorted(obj.name for obj in objects)


def materialize(
    repo_path: str | Path,
    fs_yaml_file: str | Path | None = None,
    end: datetime | None = None,
    feature_views: Sequence[str] | None = None,
) -> None:
    """Load every feature view from the offline Parquet into the online store (full window up to ``end``).

    A full reload, not incremental: each pipeline run rewrites its tables, so the online store should
    hold exactly the latest run's values.
    """
    store = _store(repo_path, fs_yaml_file)
    start = datetime(1970, 1, 2, tzinfo=UTC)
    end = end or datetime.now(UTC) + timedelta(seconds=1)
    store.materialize(start, end, feature_views=list(feature_views) if feature_views else None)


def _entity_frame(key: str, ids: Sequence[str], at: datetime) -> pd.DataFrame:
    return pd.DataFrame({key: pd.Series(list(ids), dtype=object).astype(str), "event_timestamp": pd.Timestamp(at)})


def _stack_embeddings(values: pd.Series) -> tuple[np.ndarray | None, np.ndarray]:
    """Feast returns one list (or NaN/None) per row: -> (n, d) float32 with zero rows where missing, found mask."""
    found = np.array([v is not None and not (isinstance(v, float) and np.isnan(v)) and len(v) > 0 for v in values])
    if not found.any():
        return None, found
    dim = len(values[np.flatnonzero(found)[0]])
    out = np.zeros((len(values), dim), dtype=np.float32)
    for row in np.flatnonzero(found):
        vector = np.asarray(values[row], dtype=np.float32)
        if vector.shape != (dim,):
            raise ValueError(f"profile embedding of row {row} has shape {vector.shape}, expected ({dim},)")
        out[row] = vector
    return out, found


def _historical(store: Any, key: str, ids: Sequence[str], views: Sequence[str], at: datetime) -> dict[str, np.ndarray | None]:
    prefix = key.split("_")[0]
    refs = [f"{prefix}_profile_embedding:embedding"] + [f"{prefix}_polarity_stats:{s}" for s in POLARITY_STATS]
    refs = [ref for ref in refs if ref.split(":")[0] in views]
    entity_df = _entity_frame(key, ids, at)
    frame = store.get_historical_features(entity_df=entity_df, features=refs, full_feature_names=True).to_df()
    # Feast may reorder rows: put them back in the caller's order by the join key.
    frame = entity_df[[key]].merge(frame.drop(columns=["event_timestamp"]).drop_duplicates(key), on=key, how="left")
    result: dict[str, np.ndarray | None] = {}
    emb_col = f"{prefix}_profile_embedding__embedding"
    if emb_col in frame:
        embeddings, found = _stack_embeddings(frame[emb_col].reset_index(drop=True))
        result[f"{prefix}_profile_embeddings"] = embeddings
        result[f"{prefix}_profile_found"] = found
    for stat in POLARITY_STATS:
        col = f"{prefix}_polarity_stats__{stat}"
        if col in frame:
            result[f"{prefix}_{stat}"] = frame[col].to_numpy(dtype=np.float64, na_value=np.nan)
    return result


def load_training_features(
    repo_path: str | Path,
    user_ids: Sequence[str],
    item_ids: Sequence[str],
    fs_yaml_file: str | Path | None = None,
    at: datetime | None = None,
) -> dict[str, np.ndarray | None]:
    """Point-in-time historical retrieval of the training features, aligned to ``user_ids`` / ``item_ids``.

    Keys: ``user_profile_embeddings`` (n_users, d) float32 or None when no user has one,
    ``user_profile_found`` (bool mask; missing rows are zero vectors), ``user_mean_polarity``,
    ``user_likes``, ``user_dislikes``, ``user_interactions`` (float64, NaN where unknown), and the same
    with ``item_``. ``at`` is the as-of time of the lookup (default now).
    """
    store = _store(repo_path, fs_yaml_file)
    views = {fv.name for fv in store.list_feature_views()}
    at = at or datetime.now(UTC)
    result = _historical(store, "user_id", user_ids, views, at)
    result.update(_historical(store, "item_id", item_ids, views, at))
    for prefix, ids in (("user", user_ids), ("item", item_ids)):
        found = result.get(f"{prefix}_profile_found")
        if found is not None and not found.all():
            log.warning("Feast: %d of %d %ss have no profile embedding (zero vectors used)", (~found).sum(), len(ids), prefix)
    return result


def get_online_features(
    repo_path: str | Path,
    features: Sequence[str],
    entity_rows: list[dict[str, str]],
    fs_yaml_file: str | Path | None = None,
) -> dict[str, list[Any]]:
    """Online lookup (SQLite or Redis store) of ``view:feature`` refs for the given entity rows."""
    store = _store(repo_path, fs_yaml_file)
    return store.get_online_features(features=list(features), entity_rows=entity_rows, full_feature_names=True).to_dict()


# (feature repo, features dir) pairs exported and applied by this process.
_APPLIED: set[tuple[str, str]] = set()


def resolve_repo_path(cfg: GlomConfig) -> Path:
    """cfg.features.feast_repo, relative to the working directory or else to the project checkout."""
    repo = Path(cfg.features.feast_repo)
    if repo.is_absolute() or (repo / DEFINITIONS_FILE).exists():
        return repo.resolve()
    checkout = Path(__file__).resolve().parents[2] / repo
    if (checkout / DEFINITIONS_FILE).exists():
        return checkout
    raise FileNotFoundError(f"feature repo {cfg.features.feast_repo!r} not found (features.feast_repo)")


def attach_profile_embeddings_from_feast(
    data: LookalikeData, cfg: GlomConfig, layout: RunLayout | None = None
) -> LookalikeData:
    """Training's profile embeddings read through Feast (``features.source == "feast"``).

    Exports this run's feature tables, applies the repo with its sources pointing at them, then fetches
    the embeddings of ``data``'s users and items by historical retrieval — the Feast path the served
    features also come from, instead of reading the files behind Feast's back.

    The features are the whole run's (the profiles stage's tables), so this is the path for training the
    production model; the evaluator's leak-free runs rebuild profiles from their training split instead.
    Ablation "w/o U/I profile" (``pm.use_profiles`` off) returns ``data`` unchanged.
    """
    from glom_plugin.layout import RunLayout

    if not cfg.pm.use_profiles:
        return data
    layout = layout or RunLayout.at(cfg.run_dir)
    repo = resolve_repo_path(cfg)
    key = (str(repo), str(layout.features_dir.resolve()))
    if key not in _APPLIED:  # once per process and run
        export_feature_tables(layout, cfg)
        feast_apply(repo, features_dir=layout.features_dir)
        _APPLIED.add(key)
    features = load_training_features(repo, [str(u) for u in data.user_ids], [str(i) for i in data.item_ids])
    return data.with_profiles(features.get("user_profile_embeddings"), features.get("item_profile_embeddings"))
