"""Any fitted model as one self-describing directory: ``save_model`` / ``load_model``.

Layout (``format: glom-model``, ``format_version`` 2), written to a temporary sibling and renamed into
place, so a reader never sees half a model::

    model.json       format, format_version, model_name, model_class (module:Class), kind, seed, config,
                     created_at, metrics, the state keys and where each lives, n_users / n_items
    data/            the LookalikeData the model was fitted on (ids, polarity edges, similarity edges,
                     item categories, profile embeddings, the outside users' item rows): per-campaign models fit their campaign on it
                     at request time, and it is what a restore starts from
    state.npz        learned numpy arrays (``LookalikeModel.learned_state``), no pickles
    state.pt         learned torch state dicts, loaded with ``weights_only=True``
    embedding/       embedding models only: the retrieval vectors as a ``TrainedModel`` (format 1), what
                     the ANN index, the Feast export and batch jobs read without the model's code

Loading imports ``model_class``, builds it with the saved config and seed, and calls ``restore(data,
state)``: embedding models get their vectors back, networks their weights, and models whose fit is a
deterministic function of the data refit on it (``models/base.py``). A directory of format 1 (a bare
``TrainedModel``, what older ``glom train`` runs wrote) loads as a fixed-embedding model.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from glom_plugin.config import GlomConfig
from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.layout import RunLayout
from glom_plugin.models.artifact import META_FILE, TrainedModel, staged_directory
from glom_plugin.models.base import EmbeddingLookalikeModel, LookalikeModel
from glom_plugin.plugins import load_class

FORMAT = "glom-model"
FORMAT_VERSION = 2
DATA_DIR = "data"
EMBEDDING_DIR = "embedding"
ARRAYS_FILE = "state.npz"
TORCH_FILE = "state.pt"


def model_dir(layout: RunLayout, model_name: str) -> Path:
    """Where ``glom train --model NAME`` saves a model: ``models/<NAME>`` (``module:Class`` names made safe)."""
    return layout.models_dir / model_name.replace(":", "__").replace("/", "_")


def trained_model_dir(cfg: GlomConfig, layout: RunLayout, model_name: str | None = None) -> Path:
    """The saved model ``glom expand`` / ``expand-batch`` use: ``models/<name>`` of the given name, else of
    ``train.model``; a run trained before saved models existed falls back to ``models/glm``."""
    name = model_name or cfg.train.model
    directory = model_dir(layout, name)
    if (directory / META_FILE).exists():
        return directory
    if model_name is None and (layout.glm_dir / META_FILE).exists():
        return layout.glm_dir
    raise FileNotFoundError(f"{directory}: no trained model {name!r} in this run; run `glom train --model {name}` first")


def is_saved_model(directory: str | Path) -> bool:
    meta = Path(directory) / META_FILE
    return meta.exists() and json.loads(meta.read_text()).get("format") == FORMAT


def read_meta(directory: str | Path) -> dict[str, Any]:
    """``model.json`` of a saved model (either format)."""
    path = Path(directory) / META_FILE
    if not path.exists():
        raise FileNotFoundError(f"{directory} is not a saved model directory (no {META_FILE})")
    return json.loads(path.read_text())


def save_model(model: LookalikeModel, directory: str | Path, metrics: dict[str, Any] | None = None) -> Path:
    """Write a fitted model atomically (temporary sibling directory, then rename over ``directory``)."""
    directory = Path(directory)
    data = model._fitted()
    state = model.learned_state()
    with staged_directory(directory) as tmp:
        write_data(data, tmp / DATA_DIR)
        arrays = {k: np.asarray(v) for k, v in state.items() if isinstance(v, np.ndarray)}
        tensors = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
        if arrays:
            np.savez(tmp / ARRAYS_FILE, **arrays)
        if tensors:
            import torch

            torch.save(tensors, tmp / TORCH_FILE)
        if isinstance(model, EmbeddingLookalikeModel):
            model.as_trained().save(tmp / EMBEDDING_DIR)
        cls = type(model)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model_name": model.name,
            "model_class": f"{cls.__module__}:{cls.__qualname__}",
            "kind": model.kind,
            "seed": int(model.seed),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "n_users": data.n_users,
            "n_items": data.n_items,
            "state": {"arrays": sorted(arrays), "torch": sorted(tensors)},
            "config": model.config.model_dump(),
            "metrics": metrics or {},
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    return directory


def load_model(directory: str | Path) -> LookalikeModel:
    """The fitted model ``save_model`` wrote (or a format-1 ``TrainedModel`` as fixed embeddings)."""
    directory = Path(directory)
    meta = read_meta(directory)
    if meta.get("format") != FORMAT:
        return FixedEmbeddingModel.from_trained(TrainedModel.load(directory))
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{directory / META_FILE}: format_version {meta.get('format_version')} != {FORMAT_VERSION}")
    cls = load_class(str(meta["model_class"]), {}, LookalikeModel, f"model class of {directory / META_FILE}")
    model = cls(GlomConfig.model_validate(meta["config"]), seed=int(meta["seed"]))
    model.name = str(meta["model_name"])
    state: dict[str, Any] = {}
    if meta["state"]["arrays"]:
        with np.load(directory / ARRAYS_FILE, allow_pickle=False) as arrays:
            state.update({k: arrays[k] for k in meta["state"]["arrays"]})
    if meta["state"]["torch"]:
        import torch

        state.update(torch.load(directory / TORCH_FILE, map_location="cpu", weights_only=True))
    return model.restore(read_data(directory / DATA_DIR), state)


# --- the fitted-on data ---------------------------------------------------------------------------------


def write_data(data: LookalikeData, directory: Path) -> None:
    directory.mkdir(parents=True)
    pd.DataFrame({"user_id": np.asarray(data.user_ids).astype(str)}).to_parquet(directory / "users.parquet")
    pd.DataFrame({"item_id": np.asarray(data.item_ids).astype(str)}).to_parquet(directory / "items.parquet")
    data.edges.reset_index(drop=True).to_parquet(directory / "edges.parquet")
    data.similarity.reset_index(drop=True).to_parquet(directory / "similarity.parquet")
    sp.save_npz(directory / "item_categories.npz", sp.csr_matrix(data.item_categories))
    (directory / "category_names.json").write_text(json.dumps(list(data.category_names)))
    if data.n_outside:  # users outside the graph, scored from their items (fold-in)
        pd.DataFrame({"user_id": np.asarray(data.outside_user_ids).astype(str)}).to_parquet(directory / "outside_users.parquet")
        data.outside_edges.reset_index(drop=True).to_parquet(directory / "outside_edges.parquet")
    for name, array in (("user_profiles", data.user_profile_embeddings), ("item_profiles", data.item_profile_embeddings)):
        if array is not None:
            np.save(directory / f"{name}.npy", np.asarray(array, dtype=np.float32), allow_pickle=False)


def read_data(directory: Path) -> LookalikeData:
    def optional(name: str) -> np.ndarray | None:
        path = directory / f"{name}.npy"
        return np.load(path, allow_pickle=False) if path.exists() else None

    outside: dict[str, Any] = {}
    if (directory / "outside_users.parquet").exists():  # a model saved before fold-in has none
        outside = {
            "outside_user_ids": pd.read_parquet(directory / "outside_users.parquet")["user_id"].to_numpy().astype(str),
            "outside_edges": pd.read_parquet(directory / "outside_edges.parquet"),
        }
    return LookalikeData(
        **outside,
        user_ids=pd.read_parquet(directory / "users.parquet")["user_id"].to_numpy().astype(str),
        item_ids=pd.read_parquet(directory / "items.parquet")["item_id"].to_numpy().astype(str),
        edges=pd.read_parquet(directory / "edges.parquet"),
        similarity=pd.read_parquet(directory / "similarity.parquet"),
        item_categories=sp.load_npz(directory / "item_categories.npz").tocsr(),
        category_names=json.loads((directory / "category_names.json").read_text()),
        user_profile_embeddings=optional("user_profiles"),
        item_profile_embeddings=optional("item_profiles"),
    )


class FixedEmbeddingModel(EmbeddingLookalikeModel):
    """Embeddings computed elsewhere (a format-1 ``TrainedModel``: already the retrieval vectors), served
    as they are: no data, no centring again, nothing to refit."""

    name = "embeddings"

    def _fit(self, data: LookalikeData) -> None:
        raise TypeError("fixed embeddings are not fitted; load them with FixedEmbeddingModel.from_trained")

    @classmethod
    def from_trained(cls, trained: TrainedModel) -> FixedEmbeddingModel:
        config = GlomConfig.model_validate(trained.config) if trained.config else GlomConfig()
        model = cls(config.with_overrides(**{"expand.center": False}))
        model.name = trained.model_name
        model.trained = trained
        model.embeddings = trained.user_embeddings
        return model

    @property
    def user_ids(self) -> np.ndarray:
        return self.trained.user_ids

    @property
    def n_users(self) -> int:
        return self.trained.n_users

    def user_index(self) -> dict[str, int]:
        return self.trained.user_index()

    def as_trained(self) -> TrainedModel:
        return self.trained
