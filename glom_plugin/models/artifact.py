"""``TrainedModel``: the self-contained artifact a training run leaves for expansion, MLflow and serving.

On disk (one directory, format version 1)::

    users.parquet        user_id: string (hashed), embedding: fixed_size_list<float32>[dim]
    items.parquet        item_id: string, embedding: fixed_size_list<float32>[dim]   (may have 0 rows)
    model.json           model_name, created_at (ISO 8601, UTC), dim, format_version, config, metrics
    state_dict.pt        optional torch weights of the networks that produced the embeddings
                         ({"pm": ..., "glm": ...}); not needed to expand audiences

Expansion needs only the user embeddings and ids, so a consumer (BentoML service, MLflow pyfunc) can
load the directory with pyarrow + json alone. The directory is written to a temporary sibling and
renamed into place, so a reader never sees a half-written model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FORMAT_VERSION = 1
USERS_FILE = "users.parquet"
ITEMS_FILE = "items.parquet"
META_FILE = "model.json"
STATE_FILE = "state_dict.pt"


@dataclass
class TrainedModel:
    """User (and item) embeddings of a fitted model, with the config and metrics that produced them."""

    model_name: str
    user_ids: np.ndarray  # hashed user ids, (n_users,) str
    user_embeddings: np.ndarray  # float32 (n_users, dim)
    item_ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    item_embeddings: np.ndarray | None = None  # float32 (n_items, dim) or None
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    state_dict: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.user_ids = np.asarray(self.user_ids).astype(str)
        self.user_embeddings = np.ascontiguousarray(self.user_embeddings, dtype=np.float32)
        if self.user_embeddings.ndim != 2 or len(self.user_embeddings) != len(self.user_ids):
            raise ValueError(
                f"user_embeddings must be (n_users={len(self.user_ids)}, dim), got {self.user_embeddings.shape}"
            )
        if len(set(self.user_ids.tolist())) != len(self.user_ids):
            raise ValueError("user_ids contain duplicates")
        self.item_ids = np.asarray(self.item_ids).astype(str)
        if self.item_embeddings is not None:
            self.item_embeddings = np.ascontiguousarray(self.item_embeddings, dtype=np.float32)
            if self.item_embeddings.shape != (len(self.item_ids), self.dim):
                raise ValueError(
                    f"item_embeddings must be ({len(self.item_ids)}, {self.dim}), got {self.item_embeddings.shape}"
                )

    @property
    def dim(self) -> int:
        return int(self.user_embeddings.shape[1])

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    def summary(self) -> dict[str, Any]:
        """What a person wants to read after training: sizes, and per training history its epochs and
        last values (the full per-epoch lists stay in ``metrics`` and in MLflow)."""
        out: dict[str, Any] = {
            "model_name": self.model_name,
            "n_users": self.n_users,
            "n_items": len(self.item_ids),
            "dim": self.dim,
            "created_at": self.created_at,
        }
        for key, value in self.metrics.items():
            if isinstance(value, dict):
                out[key] = {
                    name: (entry[-1] if entry else None) if isinstance(entry, list) else entry
                    for name, entry in value.items()
                }
                lengths = [len(v) for v in value.values() if isinstance(v, list)]
                if lengths:
                    out[key]["epochs_logged"] = max(lengths)
            else:
                out[key] = value
        return out

    def user_index(self) -> dict[str, int]:
        """hashed user id -> row, built once (1M users: ~0.3 s, not to be paid per request)."""
        cached = self.__dict__.get("_user_index")
        if cached is None or len(cached) != self.n_users:
            cached = {uid: i for i, uid in enumerate(self.user_ids.tolist())}
            self.__dict__["_user_index"] = cached
        return cached

    def save(self, directory: str | Path) -> Path:
        """Write the artifact atomically (temporary sibling directory, then rename)."""
        directory = Path(directory)
        with staged_directory(directory) as tmp:
            pq.write_table(_embedding_table("user_id", self.user_ids, self.user_embeddings), tmp / USERS_FILE)
            items = (
                self.item_embeddings
                if self.item_embeddings is not None
                else np.empty((0, self.dim), np.float32)
            )
            item_ids = self.item_ids if self.item_embeddings is not None else np.empty(0, dtype=str)
            pq.write_table(_embedding_table("item_id", item_ids, items), tmp / ITEMS_FILE)
            if self.state_dict is not None:
                import torch

                torch.save(self.state_dict, tmp / STATE_FILE)
            meta = {
                "format_version": FORMAT_VERSION,
                "model_name": self.model_name,
                "created_at": self.created_at,
                "dim": self.dim,
                "n_users": self.n_users,
                "n_items": int(len(item_ids)),
                "has_item_embeddings": self.item_embeddings is not None,
                "config": self.config,
                "metrics": self.metrics,
            }
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        return directory

    @classmethod
    def load(cls, directory: str | Path, with_state: bool = False) -> TrainedModel:
        directory = Path(directory)
        meta_path = directory / META_FILE
        if not meta_path.exists():
            raise FileNotFoundError(f"{directory} is not a trained model directory (no {META_FILE})")
        meta = json.loads(meta_path.read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{meta_path}: format_version {meta.get('format_version')} != {FORMAT_VERSION}")
        user_ids, user_embeddings = _read_embedding_table(directory / USERS_FILE, "user_id", meta["dim"])
        item_ids, item_embeddings = _read_embedding_table(directory / ITEMS_FILE, "item_id", meta["dim"])
        state = None
        if with_state and (directory / STATE_FILE).exists():
            import torch

            state = torch.load(directory / STATE_FILE, map_location="cpu", weights_only=True)
        return cls(
            model_name=meta["model_name"],
            user_ids=user_ids,
            user_embeddings=user_embeddings,
            item_ids=item_ids,
            item_embeddings=item_embeddings if meta.get("has_item_embeddings") else None,
            config=meta.get("config", {}),
            metrics=meta.get("metrics", {}),
            created_at=meta["created_at"],
            state_dict=state,
        )


def _embedding_table(id_column: str, ids: np.ndarray, embeddings: np.ndarray) -> pa.Table:
    dim = embeddings.shape[1]
    flat = pa.array(np.ascontiguousarray(embeddings, dtype=np.float32).reshape(-1), type=pa.float32())
    return pa.table(
        {
            id_column: pa.array(np.asarray(ids).astype(str).tolist(), type=pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
        }
    )


def _read_embedding_table(path: Path, id_column: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    table = pq.read_table(path)
    ids = np.asarray(table.column(id_column).to_pylist(), dtype=object).astype(str)
    column = table.column("embedding").combine_chunks()
    if len(table) == 0:
        return ids, np.empty((0, dim), dtype=np.float32)
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    return ids, values.reshape(len(table), dim)


@contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """A private temporary sibling of ``target`` to fill; on success it is renamed over ``target`` (a
    reader never sees half a directory), on any error it is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a model directory is meant to be shared
    try:
        yield tmp
        replace_directory(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_directory(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` over ``target``; an existing target is moved aside first and removed after."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
