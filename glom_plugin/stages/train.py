"""``glom pretrain`` / ``glom train``: read the run directory, train, write the model artifacts.

- ``run_pretrain_stage``: PM (§3.5) alone, checkpointed every epoch, saved to ``models/pm``.
- ``run_train_stage``: GLM (§3.6) on the saved PM (retrained when absent or stale), saved to
  ``models/glm``: the GLoM user embeddings Feast serves and batch jobs read.
- ``run_model_stage``: ANY registry model (``--model NAME``), saved as one self-describing directory
  ``models/<NAME>`` (``models/saved.py``) — what MLflow registers and BentoML serves. GLoM-family models
  train through the two stages above (checkpoints, PM reuse); every other model through its own ``fit``.

The models know nothing of run directories, manifests, Feast or checkpoints files; this module does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from glom_plugin.config import GlomConfig
from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.layout import RunLayout
from glom_plugin.models.artifact import TrainedModel
from glom_plugin.models.base import LookalikeModel
from glom_plugin.models.checkpoint import EpochCheckpoint, fingerprint, without_epochs
from glom_plugin.models.fold_in import GlmFoldIn, retrieval_with_outside
from glom_plugin.models.kg import KnowledgeTriples, load_knowledge_triples
from glom_plugin.models.training import GLMResult, PMResult, fit_glm, fit_pm

log = logging.getLogger(__name__)


def load_training_data(cfg: GlomConfig, layout: RunLayout) -> LookalikeData:
    """The graph stage's ``LookalikeData`` plus profile embeddings when enabled and already built."""
    from glom_plugin.graph.build import load_lookalike_data

    data = load_lookalike_data(layout)
    if cfg.pm.use_profiles and cfg.features.source == "feast":
        # Production training reads the profile embeddings through Feast's historical retrieval. The evaluator
        # never takes this path: Feast serves whole-dataset features, which would leak held-out purchases.
        from glom_plugin.platform.feast_features import attach_profile_embeddings_from_feast

        return attach_profile_embeddings_from_feast(data, cfg, layout)
    if (
        cfg.pm.use_profiles
        and layout.user_profile_embeddings.exists()
        and layout.item_profile_embeddings.exists()
    ):
        import pandas as pd

        from glom_plugin.text.profiles import attach_profile_embeddings

        data = attach_profile_embeddings(
            data, pd.read_parquet(layout.interactions), pd.read_parquet(layout.items), cfg, layout
        )
    elif cfg.pm.use_profiles:
        log.warning(
            "pm.use_profiles is on but %s is missing: PM runs on interactions only (run `glom profiles` first)",
            layout.user_profile_embeddings,
        )
    return data


def _pm_artifact(result: PMResult, data: LookalikeData, cfg: GlomConfig) -> TrainedModel:
    import torch

    return TrainedModel(
        model_name="pm",
        user_ids=data.user_ids,
        user_embeddings=result.node_embeddings[: data.n_users],
        item_ids=data.item_ids,
        item_embeddings=result.node_embeddings[data.n_users :],
        config=cfg.model_dump(),
        metrics={
            "pm": result.history.to_dict(),
            "relations": result.triples.counts(),
            "uses_profiles": result.model.uses_profiles,
        },
        state_dict={
            "pm": result.model.state_dict(),
            "relation_table": torch.from_numpy(result.relation_table),
            "relation_names": list(result.triples.relation_names),
        },
    )


def pm_checkpoint(cfg: GlomConfig, layout: RunLayout, data: LookalikeData, resume: bool) -> EpochCheckpoint:
    """PM's per-epoch checkpoint (``models/checkpoints/pm.pt``), keyed to the data and PM settings."""
    key = fingerprint(without_epochs(cfg.pm.model_dump()), cfg.seed, cfg.graph.model_dump(), data.n_users,
                      data.n_items, len(data.edges), len(data.similarity), data.user_profile_embeddings is not None)
    return EpochCheckpoint(layout.models_dir / "checkpoints" / "pm.pt", key, resume)


def glm_checkpoint(cfg: GlomConfig, layout: RunLayout, pm: PMResult | None, resume: bool) -> EpochCheckpoint:
    """GLM's per-epoch checkpoint, keyed to its settings and to the PM embeddings it starts from."""
    start = pm.node_embeddings if pm is not None else np.empty(0)
    key = fingerprint(without_epochs(cfg.glm.model_dump()), cfg.pm.model_dump(), cfg.seed, cfg.graph.model_dump(),
                      cfg.expand.center, start)
    return EpochCheckpoint(layout.models_dir / "checkpoints" / "glm.pt", key, resume)


def training_triples(cfg: GlomConfig, layout: RunLayout, data: LookalikeData) -> KnowledgeTriples:
    """The graph stage's ``triples.parquet``, read back (never rebuilt) and checked against ``data``."""
    return load_knowledge_triples(layout.triples, data, cfg.graph)


def _fit_pm_checkpointed(cfg: GlomConfig, layout: RunLayout, data: LookalikeData, resume: bool) -> PMResult:
    checkpoint = pm_checkpoint(cfg, layout, data, resume)
    result = fit_pm(data, cfg, seed=cfg.seed, triples=training_triples(cfg, layout, data), checkpoint=checkpoint)
    _pm_artifact(result, data, cfg).save(layout.pm_dir)
    checkpoint.discard()
    return result


def run_pretrain_stage(cfg: GlomConfig, layout: RunLayout, resume: bool = False) -> TrainedModel:
    """``glom pretrain``: fit PM (§3.5) and save it to ``models/pm`` (checkpointing every epoch)."""
    data = load_training_data(cfg, layout)
    checkpoint = pm_checkpoint(cfg, layout, data, resume)
    result = fit_pm(data, cfg, seed=cfg.seed, triples=training_triples(cfg, layout, data), checkpoint=checkpoint)
    artifact = _pm_artifact(result, data, cfg)
    artifact.save(layout.pm_dir)
    checkpoint.discard()
    return artifact


# Everything that shapes PM's embeddings besides the graph's ids: its own section, the seed, the graph
# relations and the inputs of the graph and profile embeddings. A saved PM is reused only when all agree.
PM_CONFIG_SECTIONS = ("seed", "pm", "graph", "embedding", "profiles", "polarity", "similarity")


def pm_config_changes(saved: dict, cfg: GlomConfig) -> list[str]:
    """The ``section.key`` settings (or whole sections) where the saved PM's config differs from ``cfg``."""
    current = cfg.model_dump()
    changes: list[str] = []
    for section in PM_CONFIG_SECTIONS:
        old, new = saved.get(section), current.get(section)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += [f"{section}.{key}" for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
        elif old != new:
            changes.append(section)
    return changes


def pm_input_changes(layout: RunLayout) -> list[str]:
    """Upstream stages whose outputs changed since the saved PM was trained (per the run manifests)."""
    from glom_plugin.run_integrity import read_manifest

    manifest = read_manifest(layout, "pm")
    if manifest is None or manifest.get("status") != "complete":
        return []
    changed = []
    for stage, digest in manifest.get("inputs", {}).items():
        current = read_manifest(layout, stage)
        if current is None or current.get("digest") != digest:
            changed.append(f"{stage} outputs")
    return changed


def _pm_from_artifact(cfg: GlomConfig, layout: RunLayout, data: LookalikeData) -> PMResult | None:
    """Reuse a saved PM when it was trained on the same users, items and relations; None otherwise."""
    from glom_plugin.models.training import TrainingHistory

    if not (layout.pm_dir / "model.json").exists():
        return None
    saved = TrainedModel.load(layout.pm_dir, with_state=True)
    triples = training_triples(cfg, layout, data)
    state = saved.state_dict or {}
    same = (
        saved.item_embeddings is not None
        and np.array_equal(saved.user_ids, np.asarray(data.user_ids).astype(str))
        and np.array_equal(saved.item_ids, np.asarray(data.item_ids).astype(str))
        and list(state.get("relation_names", [])) == list(triples.relation_names)
        and saved.dim == cfg.pm.dim
    )
    if not same:
        log.warning("models/pm does not match the current graph or config; retraining PM")
        return None
    changed = pm_config_changes(saved.config, cfg) + pm_input_changes(layout)
    if changed:
        log.warning("models/pm was trained with other %s; retraining PM", ", ".join(changed))
        return None
    nodes = np.concatenate([saved.user_embeddings, saved.item_embeddings])
    history = (
        TrainingHistory(**saved.metrics["pm"]) if "pm" in saved.metrics else TrainingHistory(device="cpu")
    )
    return PMResult(
        model=None,  # type: ignore[arg-type]  - GLM needs only the embeddings
        triples=triples,
        history=history,
        node_embeddings=nodes,
        relation_table=state["relation_table"].numpy(),
    )


@dataclass(frozen=True)
class GlomFit:
    """What the staged GLoM training leaves: its data, PM (None for "w/o PM") and GLM."""

    data: LookalikeData
    pm: PMResult | None
    glm: GLMResult
    fold_state: dict[str, np.ndarray]  # GlmFoldIn.state_from(glm, data): one full-graph pass, done once

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"glm": self.glm.history.to_dict(), "relations": self.glm.triples.counts()}
        if self.pm is not None:
            out["pm"] = self.pm.history.to_dict()
        return out


def _fit_glom_staged(cfg: GlomConfig, layout: RunLayout, resume: bool) -> GlomFit:
    """PM (reused from ``models/pm`` when current) then GLM, both checkpointed every epoch; the GLoM user
    embeddings are also written to ``models/glm`` (what Feast and ``glom expand-batch`` read)."""
    data = load_training_data(cfg, layout)
    pm = None
    if cfg.glm.use_pm:
        pm = _pm_from_artifact(cfg, layout, data) or _fit_pm_checkpointed(cfg, layout, data, resume)
    glm_ckpt = glm_checkpoint(cfg, layout, pm, resume)
    triples = None if pm is not None else training_triples(cfg, layout, data)  # PM's are the artifact's
    glm = fit_glm(data, cfg, seed=cfg.seed, pm=pm, triples=triples, checkpoint=glm_ckpt)
    fitted = GlomFit(data, pm, glm, GlmFoldIn.state_from(glm, data))
    users = glm.node_embeddings[: data.n_users]
    # users outside the graph through GLM's layers, as GlomModel folds them in (models/fold_in.py), so batch
    # jobs and Feast reading this artifact see the same users the saved model expands to
    outside = GlmFoldIn(fitted.fold_state, cfg.glm.aggregator).embed_outside(data) if data.n_outside else None
    TrainedModel(
        model_name="glom-seedset" if cfg.glm.objective == "seedset" else f"glom-{cfg.glm.aggregator}",
        user_ids=data.all_user_ids,
        # what expansion compares (centred when expand.center), so serving ranks as the evaluation did
        user_embeddings=retrieval_with_outside(users, cfg.expand.center, outside),
        item_ids=data.item_ids,
        item_embeddings=glm.node_embeddings[data.n_users :],
        config=cfg.model_dump(),
        metrics=fitted.metrics(),
        state_dict={"glm": glm.model.state_dict(), "relation_names": list(glm.triples.relation_names)},
    ).save(layout.glm_dir)
    glm_ckpt.discard()
    return fitted


def run_train_stage(cfg: GlomConfig, layout: RunLayout, resume: bool = False) -> TrainedModel:
    """GLM (§3.6) on top of the saved PM (retrained if absent or stale); saves ``models/glm``.
    ``resume`` continues a killed run from its last checkpoint."""
    _fit_glom_staged(cfg, layout, resume)
    return TrainedModel.load(layout.glm_dir)


# --- any registry model ---------------------------------------------------------------------------------

ModelTrainer = Callable[[LookalikeModel, RunLayout, bool], dict[str, Any]]


def _train_glom(model: LookalikeModel, layout: RunLayout, resume: bool) -> dict[str, Any]:
    fitted = _fit_glom_staged(model.config, layout, resume)
    nodes = fitted.glm.node_embeddings
    model._remember(fitted.data)
    model.embeddings = nodes[: fitted.data.n_users]  # type: ignore[attr-defined]
    model.item_embeddings = nodes[fitted.data.n_users :]  # type: ignore[attr-defined]
    model.glm_fold_state = fitted.fold_state  # type: ignore[attr-defined]
    return fitted.metrics()


def _train_glom_hybrid(model: LookalikeModel, layout: RunLayout, resume: bool) -> dict[str, Any]:
    fitted = _fit_glom_staged(model.config, layout, resume)
    model.fit_embeddings(fitted.data, fitted.glm.node_embeddings[: fitted.data.n_users],  # type: ignore[attr-defined]
                         fitted.fold_state)
    return fitted.metrics()


def _train_pm(model: LookalikeModel, layout: RunLayout, resume: bool) -> dict[str, Any]:
    cfg = model.config
    data = load_training_data(cfg, layout)
    pm = _pm_from_artifact(cfg, layout, data) or _fit_pm_checkpointed(cfg, layout, data, resume)
    model._remember(data)
    model.embeddings = pm.node_embeddings[: data.n_users].astype(np.float32)  # type: ignore[attr-defined]
    model.item_embeddings = pm.node_embeddings[data.n_users :].astype(np.float32)  # type: ignore[attr-defined]
    return {"pm": pm.history.to_dict()}


def _train_in_memory(model: LookalikeModel, layout: RunLayout, resume: bool) -> dict[str, Any]:
    model.fit(load_training_data(model.config, layout))
    return {}


# Model classes whose run-directory training goes through the checkpointed stages (class path -> trainer);
# every other class trains with its own fit on the run's graph.
STAGED_TRAINERS: dict[str, ModelTrainer] = {
    "glom_plugin.models.glom:GlomModel": _train_glom,
    "glom_plugin.models.glom_hybrid:GlomHybridModel": _train_glom_hybrid,
    "glom_plugin.models.pretrained:PretrainedModel": _train_pm,
}


@dataclass(frozen=True)
class TrainedRun:
    """A model ``run_model_stage`` fitted, where it is saved, and how its training went."""

    model: LookalikeModel
    directory: Path
    metrics: dict[str, Any]

    @property
    def staged(self) -> tuple[str, ...]:
        """The checkpointed stages it went through (their directories were written): "pm", "glm"."""
        return tuple(stage for stage in ("pm", "glm") if stage in self.metrics)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model_name": self.model.name,
            "model_family": type(self.model).__name__,
            "model_kind": self.model.kind,
            "n_users": self.model.n_users,
            "saved_to": str(self.directory),
        }
        for stage, history in self.metrics.items():
            if isinstance(history, dict):
                out[stage] = {k: v for k, v in history.items() if not isinstance(v, list)}
        return out


def run_model_stage(cfg: GlomConfig, layout: RunLayout, model_name: str, resume: bool = False) -> TrainedRun:
    """``glom train --model NAME``: fit the registry model on the run's graph and save it to
    ``models/<NAME>`` (``models/saved.py``)."""
    from glom_plugin.models.registry import create_model
    from glom_plugin.models.saved import model_dir, save_model

    model = create_model(model_name, cfg, seed=cfg.seed)
    cls = type(model)
    trainer = STAGED_TRAINERS.get(f"{cls.__module__}:{cls.__qualname__}", _train_in_memory)
    metrics = trainer(model, layout, resume)
    directory = save_model(model, model_dir(layout, model_name), metrics=metrics)
    return TrainedRun(model, directory, metrics)
