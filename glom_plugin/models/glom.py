"""GLoM (§3): PM (§3.5) then GLM (§3.6), user embeddings for lookalike retrieval (§3.7).

``GlomModel`` is the registry's class for glom-mean / glom-attn1 / glom-attn2 and the ablations
(glom-no-profiles / -no-polarity / -no-similarity / -no-pm); the variant is its config.
``run_pretrain_stage`` and ``run_train_stage`` are the ``glom pretrain`` / ``glom train`` stages: they
read the graph (and profile embeddings, when built) from the run directory and write ``TrainedModel``
artifacts to ``models/pm`` and ``models/glm``.
"""

from __future__ import annotations

import logging

import numpy as np

from glom_plugin.config import GlomConfig
from glom_plugin.expand.aggregation import retrieval_vectors
from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.layout import RunLayout
from glom_plugin.models.artifact import TrainedModel
from glom_plugin.models.base import EmbeddingLookalikeModel
from glom_plugin.models.checkpoint import EpochCheckpoint, fingerprint, without_epochs
from glom_plugin.models.training import GLMResult, PMResult, fit_glm, fit_pm

log = logging.getLogger(__name__)


def fit_glom(
    data: LookalikeData, cfg: GlomConfig, seed: int = 0, progress: bool = True
) -> tuple[PMResult | None, GLMResult]:
    """PM then GLM; PM is skipped for the ablation "w/o PM" (``glm.use_pm=False``), whose h^0 is random."""
    pm = fit_pm(data, cfg, seed=seed, progress=progress) if cfg.glm.use_pm else None
    glm = fit_glm(data, cfg, seed=seed, pm=pm, progress=progress)
    return pm, glm


class GlomModel(EmbeddingLookalikeModel):
    """``self.embeddings`` = GLM's final user embeddings h^L (§3.7); campaigns are scored by cosine
    similarity to the seeds around the user mean, aggregated as ``expand.aggregation`` says (base class).
    GLM keeps its training only while held-out lookalike retrieval improves (``glm.select_on``)."""

    name = "glom"

    def fit(self, data: LookalikeData) -> GlomModel:
        self.pm_result, self.glm_result = fit_glom(data, self.config, seed=self.seed, progress=False)
        self.embeddings = self.glm_result.node_embeddings[: data.n_users]
        self.item_embeddings = self.glm_result.node_embeddings[data.n_users :]
        return self


# --- pipeline stages -----------------------------------------------------------------------------------


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


def run_pretrain_stage(cfg: GlomConfig, layout: RunLayout, resume: bool = False) -> TrainedModel:
    """``glom pretrain``: fit PM (§3.5) and save it to ``models/pm`` (checkpointing every epoch)."""
    data = load_training_data(cfg, layout)
    checkpoint = pm_checkpoint(cfg, layout, data, resume)
    result = fit_pm(data, cfg, seed=cfg.seed, checkpoint=checkpoint)
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
    from glom_plugin.models.kg import build_knowledge_triples
    from glom_plugin.models.training import TrainingHistory

    if not (layout.pm_dir / "model.json").exists():
        return None
    saved = TrainedModel.load(layout.pm_dir, with_state=True)
    triples = build_knowledge_triples(data, cfg.graph)
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


def run_train_stage(cfg: GlomConfig, layout: RunLayout, resume: bool = False) -> TrainedModel:
    """``glom train``: GLM (§3.6) on top of the saved PM (retrained if absent or stale); saves ``models/glm``.
    PM and GLM checkpoint every epoch; ``resume`` continues a killed run from its last checkpoint."""
    data = load_training_data(cfg, layout)
    pm = None
    if cfg.glm.use_pm:
        pm = _pm_from_artifact(cfg, layout, data)
        if pm is None:
            checkpoint = pm_checkpoint(cfg, layout, data, resume)
            pm = fit_pm(data, cfg, seed=cfg.seed, checkpoint=checkpoint)
            _pm_artifact(pm, data, cfg).save(layout.pm_dir)
            checkpoint.discard()
    glm_ckpt = glm_checkpoint(cfg, layout, pm, resume)
    glm = fit_glm(data, cfg, seed=cfg.seed, pm=pm, checkpoint=glm_ckpt)
    metrics = {"glm": glm.history.to_dict(), "relations": glm.triples.counts()}
    if pm is not None:
        metrics["pm"] = pm.history.to_dict()
    artifact = TrainedModel(
        model_name="glom-seedset" if cfg.glm.objective == "seedset" else f"glom-{cfg.glm.aggregator}",
        user_ids=data.user_ids,
        # what expansion compares (centred when expand.center), so serving ranks as the evaluation did
        user_embeddings=retrieval_vectors(glm.node_embeddings[: data.n_users], cfg.expand.center),
        item_ids=data.item_ids,
        item_embeddings=glm.node_embeddings[data.n_users :],
        config=cfg.model_dump(),
        metrics=metrics,
        state_dict={"glm": glm.model.state_dict(), "relation_names": list(glm.triples.relation_names)},
    )
    artifact.save(layout.glm_dir)
    glm_ckpt.discard()
    return artifact
