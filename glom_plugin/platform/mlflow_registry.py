"""MLflow adapter: log a training run, register the trained GLoM model, promote it by alias.

The trained model (GLM user embeddings, item embeddings, id maps, config — ``TrainedModel``) is logged as
an MLflow pyfunc model so any MLflow tool can load it, and registered under
``cfg.tracking.registered_model``: each training run adds a version. The ``champion`` alias (not the
deprecated stages) points at the version the service loads (``models:/NAME@champion``); it moves only when
a new version beats the champion's PR-AUC on the evaluation tasks (GLoM §4.1 reports PR-AUC as the
threshold-free measure). The PR-AUC is stored as a version tag so the comparison needs no run lookup.

MLflow is imported inside the functions: the CLI imports this module, and ``glom --help`` must stay fast.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from glom_plugin.config import GlomConfig

PR_AUC_TAG = "pr_auc"
DATA_DATE_TAG = "data_date"
MODEL_NAME_TAG = "glom_model"  # the registry model name (glom-hybrid, lr, ...)
MODEL_FAMILY_TAG = "model_family"  # its class (GlomHybridModel, LogisticRegressionModel, ...)
MODEL_KIND_TAG = "model_kind"  # "embedding" or "per-campaign" (models/base.py)
PROTOCOL_TAG = "eval_protocol"  # evaluate.candidates of the evaluation that gave pr_auc
ARTIFACT_KEY = "trained_model"  # same key as mlflow_pyfunc.ARTIFACT_KEY
LOGGED_MODEL_NAME = "glom_model"
# Written into the logged model's requirements instead of MLflow's inference, which would import the
# model in a subprocess (slow, and it cannot see this editable checkout).
PIP_REQUIREMENTS = ["numpy", "pandas", "pyarrow", "faiss-cpu", "mlflow>=3.17"]


def _mlflow() -> Any:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    return mlflow


def pyfunc_class() -> type:
    """The pyfunc wrapper class (its module imports MLflow, so it is imported on demand)."""
    from glom_plugin.platform.mlflow_pyfunc import GlomLookalikePyfunc

    return GlomLookalikePyfunc


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    pr_auc: float | None
    promoted: bool
    model_uri: str


def configure_tracking(cfg: GlomConfig) -> str:
    """Point MLflow at cfg's tracking URI (local sqlite beside the run dir by default); returns it."""
    mlflow = _mlflow()
    uri = cfg.tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def flatten_config(cfg: GlomConfig) -> dict[str, str]:
    """``{"pm.dim": "64", ...}``: the resolved config as MLflow params (values cut to MLflow's 6000 chars)."""

    def walk(prefix: str, node: Any, out: dict[str, str]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else key, value, out)
        else:
            out[prefix] = str(node)[:6000]

    out: dict[str, str] = {}
    walk("", cfg.model_dump(), out)
    return out


def _start_run(mlflow: Any, cfg: GlomConfig, run_name: str | None) -> Any:
    if mlflow.active_run() is not None:
        return mlflow.start_run(run_name=run_name, nested=True)
    if os.environ.get("MLFLOW_RUN_ID"):
        # Inside `mlflow run`: the project run is ours to log into.
        return mlflow.start_run()
    ensure_experiment(cfg)
    return mlflow.start_run(run_name=run_name)


def artifact_root_for(tracking_uri: str) -> str | None:
    """Artifacts of a sqlite store go beside the database file (MLflow would use ./mlruns of the cwd)."""
    if tracking_uri.startswith("sqlite:///"):
        return str(Path(tracking_uri[len("sqlite:///") :]).resolve().parent / "mlartifacts")
    return None


def ensure_experiment(cfg: GlomConfig) -> str:
    """Select cfg.tracking.experiment, creating it with its artifacts beside a sqlite store; returns its id."""
    mlflow = _mlflow()
    experiment = mlflow.get_experiment_by_name(cfg.tracking.experiment)
    if experiment is None:
        location = artifact_root_for(cfg.tracking_uri())
        experiment_id = mlflow.create_experiment(cfg.tracking.experiment, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def log_training_run(
    cfg: GlomConfig,
    trained: Any,
    metrics: dict[str, float] | None = None,
    pr_auc: float | None = None,
    artifacts: list[str | Path] | None = None,
    data_date: str | None = None,
    run_name: str | None = None,
    promote: bool = True,
    tags: dict[str, str] | None = None,
) -> RegisteredVersion:
    """A ``TrainedModel`` (fixed embeddings) logged and registered: ``log_model_run`` over its directory."""
    with tempfile.TemporaryDirectory(prefix="glom-model-") as tmp:
        model_dir = Path(tmp) / "trained_model"
        trained.save(model_dir)
        data_date = data_date or str(trained.metrics.get("data_date") or trained.created_at[:10])
        return log_model_run(
            cfg, model_dir, str(trained.model_name), metrics=metrics, pr_auc=pr_auc, artifacts=artifacts,
            data_date=data_date, run_name=run_name, promote=promote,
            tags={**(tags or {}), MODEL_KIND_TAG: "embedding", MODEL_FAMILY_TAG: "embeddings"},
        )


def log_model_run(
    cfg: GlomConfig,
    model_dir: Path,
    model_name: str,
    metrics: dict[str, float] | None = None,
    pr_auc: float | None = None,
    artifacts: list[str | Path] | None = None,
    data_date: str | None = None,
    run_name: str | None = None,
    promote: bool = True,
    tags: dict[str, str] | None = None,
) -> RegisteredVersion:
    """Log params/metrics/artifacts and the saved model directory (``models/saved.py``, any family) as
    a pyfunc, register a new version of the one registered model, tag it with the model's name, family
    and kind, then maybe promote it. Without ``pr_auc`` the version is registered but never champion."""
    mlflow = _mlflow()
    from mlflow import MlflowClient

    configure_tracking(cfg)
    name = cfg.tracking.registered_model
    metrics = dict(metrics or {})
    if pr_auc is None and "pr_auc" in metrics:
        pr_auc = float(metrics["pr_auc"])
    if pr_auc is not None:
        metrics["pr_auc"] = float(pr_auc)
    version_tags = {MODEL_NAME_TAG: model_name, **(tags or {})}
    with _start_run(mlflow, cfg, run_name) as run:
        params = flatten_config(cfg)
        existing = set(run.data.params) if run.data and run.data.params else set()
        params = {k: v for k, v in params.items() if k not in existing}
        for start in range(0, len(params), 90):  # MLflow's batch limit is 100 params
            mlflow.log_params(dict(list(params.items())[start : start + 90]))
        mlflow.set_tags(version_tags)
        finite = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
        if finite:
            mlflow.log_metrics(finite)
        for path in artifacts or []:
            path = Path(path)
            (mlflow.log_artifacts if path.is_dir() else mlflow.log_artifact)(str(path), artifact_path="reports")
        info = mlflow.pyfunc.log_model(
            name=LOGGED_MODEL_NAME,
            python_model=pyfunc_class()(),
            artifacts={ARTIFACT_KEY: str(model_dir)},
            pip_requirements=PIP_REQUIREMENTS,
            registered_model_name=name,
        )
        run_id = run.info.run_id
    client = MlflowClient()
    version = str(info.registered_model_version)
    for key, value in version_tags.items():
        client.set_model_version_tag(name, version, key, str(value))
    # The data date the service reports: given, else the day the model was logged.
    client.set_model_version_tag(name, version, DATA_DATE_TAG, data_date or _today())
    promoted = False
    if pr_auc is not None:
        client.set_model_version_tag(name, version, PR_AUC_TAG, repr(float(pr_auc)))
        if promote:
            promoted = promote_if_better(client, name, version, float(pr_auc), cfg.tracking.champion_alias)
    return RegisteredVersion(name, version, run_id, pr_auc, promoted, f"models:/{name}/{version}")


def _today() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).date().isoformat()


def _version_pr_auc(client: Any, version: Any) -> float:
    """A version's PR-AUC: its tag, else its run's ``pr_auc`` metric, else -inf (never beats anything)."""
    tag = (version.tags or {}).get(PR_AUC_TAG)
    if tag is not None:
        return float(tag)
    if version.run_id:
        metric = client.get_run(version.run_id).data.metrics.get("pr_auc")
        if metric is not None:
            return float(metric)
    return -math.inf


def current_champion(client: Any, name: str, alias: str = "champion") -> Any | None:
    """The model version the alias points at, or None when no version holds it yet."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as err:
        if "RESOURCE_DOES_NOT_EXIST" in str(err.error_code) or "not found" in str(err).lower():
            return None
        raise


def promote_if_better(client: Any, name: str, version: str | int, pr_auc: float, alias: str = "champion") -> bool:
    """Move ``alias`` to ``version`` only if its PR-AUC beats the current holder's (strictly).

    The first version with a PR-AUC becomes champion. Ties keep the incumbent: a retrain that is merely
    as good is not worth a serving change. Returns whether the alias now points at ``version``.
    """
    version = str(version)
    if not math.isfinite(pr_auc):
        raise ValueError(f"PR-AUC must be a finite number, got {pr_auc!r}")
    client.set_model_version_tag(name, version, PR_AUC_TAG, repr(float(pr_auc)))
    champion = current_champion(client, name, alias)
    if champion is not None:
        if str(champion.version) == version:
            return True
        incumbent = _version_pr_auc(client, champion)
        if not pr_auc > incumbent:
            client.set_model_version_tag(name, version, "promotion", f"kept v{champion.version} ({incumbent:.4f} >= {pr_auc:.4f})")
            return False
    client.set_registered_model_alias(name, alias, version)
    client.set_model_version_tag(name, version, "promotion", f"{alias} (pr_auc {pr_auc:.4f})")
    return True


@dataclass(frozen=True)
class Promotion:
    """Where ``promote_best`` left the alias: the version holding it, its PR-AUC, and whether it moved."""

    version: str
    pr_auc: float
    moved: bool


def promote_best(
    client: Any, name: str, scores: dict[str, float], protocol: str, alias: str = "champion"
) -> Promotion:
    """Champion by evidence: ``scores`` maps the versions one evaluation measured (any families) to their
    PR-AUC on ``protocol``. Each version is tagged with its PR-AUC and protocol; the alias moves to the
    best (ties: the older version) when it strictly beats the incumbent. The incumbent's PR-AUC is this
    evaluation's when it was measured here, else its tag when that tag is from the same protocol; a
    champion measured on another protocol (or never) is not comparable and gives way to this evidence."""
    if not scores:
        raise ValueError("promote_best needs at least one measured version")
    for version, pr_auc in scores.items():
        if not math.isfinite(pr_auc):
            raise ValueError(f"version {version}: PR-AUC must be a finite number, got {pr_auc!r}")
        client.set_model_version_tag(name, str(version), PR_AUC_TAG, repr(float(pr_auc)))
        client.set_model_version_tag(name, str(version), PROTOCOL_TAG, protocol)
    best = min(scores, key=lambda v: (-scores[v], int(v)))
    champion = current_champion(client, name, alias)
    if champion is not None:
        held = str(champion.version)
        tags = champion.tags or {}
        if held in scores:
            incumbent = scores[held]
        elif tags.get(PROTOCOL_TAG) == protocol and tags.get(PR_AUC_TAG) is not None:
            incumbent = float(tags[PR_AUC_TAG])
        else:
            incumbent = -math.inf
        if not scores[best] > incumbent:
            if best != held:
                client.set_model_version_tag(name, best, "promotion",
                                             f"kept v{held} ({incumbent:.4f} >= {scores[best]:.4f}, {protocol})")
            return Promotion(held, incumbent, False)
    client.set_registered_model_alias(name, alias, best)
    client.set_model_version_tag(name, best, "promotion", f"{alias}: best PR-AUC {scores[best]:.4f} of "
                                 f"{len(scores)} evaluated version(s), protocol {protocol}")
    return Promotion(best, scores[best], True)


@dataclass(frozen=True)
class LoadedModel:
    """A fitted model (``LookalikeModel``) and where it came from (for the service's model-info endpoint)."""

    model: Any
    uri: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    tags: dict[str, str] | None = None


def _parse_models_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/NAME@alias`` -> (NAME, None, alias); ``models:/NAME/3`` -> (NAME, "3", None)."""
    body = uri[len("models:/") :]
    if "@" in body:
        name, alias = body.split("@", 1)
        return name, None, alias
    name, _, version = body.partition("/")
    return name, version or None, None


def load_registered_model(uri: str, tracking_uri: str | None = None) -> LoadedModel:
    """Load a fitted model from ``models:/NAME@alias``, ``models:/NAME/VERSION``, ``runs:/...``, a BentoML
    store model (``bentoml:NAME:VERSION``, what a built Bento packs) or a local saved-model directory."""
    from glom_plugin.models.saved import load_model

    path = Path(uri)
    if uri.startswith("bentoml:"):
        return _load_from_bento_store(uri[len("bentoml:") :])
    if not uri.startswith(("models:/", "runs:/")) and path.exists():
        return LoadedModel(model=load_model(path), uri=str(path.resolve()))
    mlflow = _mlflow()
    from mlflow import MlflowClient

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    pyfunc_class()  # make the pickled class name resolvable
    loaded = mlflow.pyfunc.load_model(uri)
    model = loaded.unwrap_python_model().model
    if not uri.startswith("models:/"):
        return LoadedModel(model=model, uri=uri)
    name, version, alias = _parse_models_uri(uri)
    client = MlflowClient()
    mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
    return LoadedModel(
        model=model, uri=uri, name=name, version=str(mv.version), alias=alias, run_id=mv.run_id, tags=dict(mv.tags or {})
    )


def _load_from_bento_store(tag: str) -> LoadedModel:
    """A model ``glom bento`` imported into the BentoML model store: the MLflow model it holds, and the
    registry version, alias and tags it was imported with (its metadata), so a Bento answers
    ``/model_info`` with nothing else reachable."""
    import bentoml

    pyfunc_class()
    stored = bentoml.models.get(tag)
    model = bentoml.mlflow.load_model(stored).unwrap_python_model().model
    meta = dict(stored.info.metadata or {})
    tags = {str(k): str(v) for k, v in (meta.get("tags") or {}).items()}
    return LoadedModel(
        model=model, uri=f"bentoml:{stored.tag}", name=meta.get("registered_model"), version=meta.get("version"),
        alias=meta.get("alias"), run_id=meta.get("run_id"), tags=tags,
    )
