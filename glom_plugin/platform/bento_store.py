"""BentoML adapter: the registry's champion into the BentoML model store, and the Bento built around it.

``bentoml build`` packs the code and every model ``bentofile.yaml`` lists (``models:``). Importing the
champion first (``bentoml.mlflow.import_model``: the MLflow pyfunc of the saved model, any family) makes
the Bento self-contained: ``bentoml serve <bento>`` and ``bentoml containerize`` need no MLflow store and
no run directory. The registry version, alias, tags (family, protocol, PR-AUC) travel with it as the
BentoML model's metadata, so ``/model_info`` still says which evaluation made it champion.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from glom_plugin.config import GlomConfig

BENTO_MODEL_NAME = "glom-lookalike"  # the name bentofile.yaml lists and the Bento's service loads
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ImportedModel:
    tag: str  # BentoML model tag, e.g. glom-lookalike:abc123
    source: str  # the registry URI it came from


def import_champion(cfg: GlomConfig, alias: str | None = None) -> ImportedModel:
    """Copy ``models:/<registered_model>@<alias>`` into the BentoML model store (a new store version)."""
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    import bentoml
    from mlflow import MlflowClient

    from glom_plugin.platform.mlflow_registry import configure_tracking, current_champion, pyfunc_class

    configure_tracking(cfg)
    name, alias = cfg.tracking.registered_model, alias or cfg.tracking.champion_alias
    version = current_champion(MlflowClient(), name, alias)
    if version is None:
        raise RuntimeError(
            f"models:/{name}@{alias} does not exist: train (`glom train --model ...`) and evaluate (`glom evaluate`) "
            "first; the evaluation moves the alias to the best registered model"
        )
    pyfunc_class()
    tags = {str(k): str(v) for k, v in (version.tags or {}).items()}
    source = f"models:/{name}/{version.version}"
    stored = bentoml.mlflow.import_model(
        BENTO_MODEL_NAME,
        source,
        labels={"registered_model": name, "version": str(version.version), "model": tags.get("glom_model", "")},
        metadata={"registered_model": name, "version": str(version.version), "alias": alias,
                  "run_id": version.run_id, "tags": tags},
    )
    return ImportedModel(tag=str(stored.tag), source=source)


def build_bento(bentofile: Path | None = None) -> str:
    """``bentoml build`` of this repository (the champion must be imported first); returns the Bento tag."""
    import bentoml

    bento = bentoml.bentos.build_bentofile(str(bentofile or REPO_ROOT / "bentofile.yaml"), build_ctx=str(REPO_ROOT))
    return str(bento.tag)
