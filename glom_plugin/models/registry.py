"""Model names -> implementing classes (and the config overrides that make a variant).

Feast-style: dotted paths, imported only when a model is asked for, so `glom --help` stays fast and a
third-party model is one more line here (or ``module:Class`` given directly as a name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from glom_plugin.config import GlomConfig
from glom_plugin.models.base import LookalikeModel
from glom_plugin.plugins import load_class, resolve_path


@dataclass(frozen=True)
class ModelSpec:
    path: str
    overrides: dict[str, Any] = field(default_factory=dict)
    description: str = ""


_GLOM = "glom_plugin.models.glom:GlomModel"
_EQ9 = {"glm.objective": "eq9"}  # the paper's GLM loss; the config default is the seed-set objective
_ATTN1 = {**_EQ9, "glm.aggregator": "attn1"}
_SEEDSET = {"glm.objective": "seedset", "glm.aggregator": "mean"}

MODEL_REGISTRY: dict[str, ModelSpec] = {
    # GLoM and its ablations (GLoM paper Table 2 / Table 3), as the paper trains them: GLM on Eq. 9
    "glom-mean": ModelSpec(_GLOM, {**_EQ9, "glm.aggregator": "mean"}, "GLoM, mean aggregator (Eq. 3)"),
    "glom-attn1": ModelSpec(_GLOM, {**_EQ9, "glm.aggregator": "attn1"}, "GLoM, inner-product attention (Eq. 4-6)"),
    "glom-attn2": ModelSpec(_GLOM, {**_EQ9, "glm.aggregator": "attn2"}, "GLoM, learned attention (Eq. 7)"),
    "glom-no-profiles": ModelSpec(_GLOM, {**_ATTN1, "pm.use_profiles": False}, "GLoM-Attn1 w/o U/I profiles"),
    "glom-no-polarity": ModelSpec(
        _GLOM, {**_ATTN1, "graph.use_polarity_edges": False}, "GLoM-Attn1 w/o polarity edges"
    ),
    "glom-no-similarity": ModelSpec(
        _GLOM, {**_ATTN1, "graph.use_similarity_edges": False}, "GLoM-Attn1 w/o user-user edges"
    ),
    "glom-no-pm": ModelSpec(_GLOM, {**_ATTN1, "glm.use_pm": False}, "GLoM-Attn1 w/o the pre-trained model"),
    "pm": ModelSpec("glom_plugin.models.pretrained:PretrainedModel", {}, "PM embeddings alone (§3.5)"),
    # GLoM beyond the paper: GLM trained on campaign-like episodes (the config default, so `glom train`
    # trains this one); a per-campaign head over its embeddings + the item bag; their ablations
    "glom-seedset": ModelSpec(_GLOM, _SEEDSET, "GLoM-Mean, GLM trained on seed-set episodes, InfoNCE"),
    "glom-hybrid": ModelSpec(
        "glom_plugin.models.glom_hybrid:GlomHybridModel",
        _SEEDSET,
        "glom-seedset embeddings + item bag, per-campaign logistic regression",
    ),
    "glom-seedset-no-profiles": ModelSpec(
        _GLOM, {**_SEEDSET, "pm.use_profiles": False}, "glom-seedset w/o U/I profiles"
    ),
    "glom-seedset-no-similarity": ModelSpec(
        _GLOM, {**_SEEDSET, "graph.use_similarity_edges": False}, "glom-seedset w/o user-user edges"
    ),
    # GLoM paper baselines (§4.2)
    "lr": ModelSpec("glom_plugin.models.lr:LogisticRegressionModel", {}, "per-campaign logistic regression"),
    "graphsage": ModelSpec("glom_plugin.models.graphsage:GraphSageModel", {}, "GraphSAGE (DGL SAGEConv)"),
    "lightgcn": ModelSpec("glom_plugin.models.lightgcn:LightGCNModel", {}, "LightGCN with BPR (DGL)"),
    "pinterest": ModelSpec("glom_plugin.models.pinterest:PinterestModel", {}, "Pinterest two-stage ensemble"),
    "metaheac": ModelSpec("glom_plugin.models.metaheac:MetaHeacModel", {}, "MetaHeac (hybrid experts + critics)"),
    # Yahoo paper systems
    "similarity-jaccard-max": ModelSpec(
        "glom_plugin.models.similarity:SimpleSimilarityModel",
        {},
        "Yahoo §2.1: Jaccard, max aggregation (Eq. 3)",
    ),
    "similarity-jaccard-prob": ModelSpec(
        "glom_plugin.models.similarity:SimpleSimilarityModel",
        {"expand.aggregation": "probabilistic"},
        "Yahoo §2.1: Jaccard, probabilistic aggregation (Eq. 4)",
    ),
    "similarity-cosine-max": ModelSpec(
        "glom_plugin.models.similarity:CosineSimilarityModel", {}, "Yahoo §2.1: cosine, max aggregation"
    ),
    "similarity-cosine-prob": ModelSpec(
        "glom_plugin.models.similarity:CosineSimilarityModel",
        {"expand.aggregation": "probabilistic"},
        "Yahoo §2.1: cosine, probabilistic aggregation",
    ),
    "segments": ModelSpec("glom_plugin.models.segments:SegmentApproximationModel", {}, "Yahoo §2.3 segments"),
    "graph-constraint": ModelSpec(
        "glom_plugin.models.yahoo:GraphConstraintModel", {}, "Yahoo §3: LSH user graph + feature-weight ranking"
    ),
    # Reference rows: what co-purchase cosine, activity and chance give on the same candidates.
    "cosine-centroid": ModelSpec(
        "glom_plugin.models.references:CosineCentroidModel", {}, "cosine of raw item bags to the seeds' mean"
    ),
    "popularity": ModelSpec("glom_plugin.models.references:PopularityModel", {}, "users ranked by activity"),
    "random": ModelSpec("glom_plugin.models.random_scores:RandomModel", {}, "uniform random scores"),
}

# Models whose aggregation is fixed by their name; everything else takes config.expand.aggregation.
_FIXED_AGGREGATION = {"similarity-jaccard-max": "max", "similarity-cosine-max": "max"}


def available_models() -> list[str]:
    return list(MODEL_REGISTRY)


def model_config(name: str, config: GlomConfig) -> GlomConfig:
    """The config a named variant runs with: the base config plus the variant's overrides."""
    spec = _spec(name)
    overrides = dict(spec.overrides)
    if name in _FIXED_AGGREGATION:
        overrides["expand.aggregation"] = _FIXED_AGGREGATION[name]
    return config.with_overrides(**overrides) if overrides else config


def load_model_class(name: str) -> type[LookalikeModel]:
    """The class of a registered model name or of a ``module:Class`` path (``glom_plugin.plugins``)."""
    return load_class(_spec(name).path, {}, LookalikeModel, "model")


def create_model(name: str, config: GlomConfig, seed: int = 0) -> LookalikeModel:
    """Instantiate a registered model (or ``module:Class``) with its variant config."""
    model = load_model_class(name)(model_config(name, config), seed=seed)
    model.name = name  # the variant's name, so reports say "glom-attn2", not "GlomModel"
    return model


def _spec(name: str) -> ModelSpec:
    """The registered spec, or a bare spec for a ``module:Class`` path; the one loader's error otherwise."""
    if name in MODEL_REGISTRY:
        return MODEL_REGISTRY[name]
    return ModelSpec(resolve_path(name, {key: spec.path for key, spec in MODEL_REGISTRY.items()}, "model"))
