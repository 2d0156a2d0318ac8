"""What the BentoML service does, without BentoML: load a fitted model, index its users, answer campaigns.

Kept apart from ``service.py`` so the request logic is tested in-process and the service class stays a
thin HTTP face. Any registry model serves: expansion is the model's own ``expand`` (``models/base.py``),
the one the evaluation's scoring shares — for embedding models over the faiss index of
``glom_plugin.expand.index`` (GLoM §3.7), for per-campaign models by fitting the campaign at request
time. This module adds request limits, defaults and the model's provenance (registry version, alias,
data date, and the evaluation that made it champion).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic_core import to_json

from glom_plugin.config import ExpandConfig, GlomConfig, load_config
from glom_plugin.expand.batch import BatchCampaign, rank_campaigns
from glom_plugin.expand.expander import ExpansionResult, calibrated_threshold, check_min_seeds, resolve_seeds
from glom_plugin.expand.explain import SharedItems, explain_lookalikes
from glom_plugin.expand.index import UserIndex, build_index
from glom_plugin.models.artifact import TrainedModel
from glom_plugin.models.base import EmbeddingLookalikeModel, LookalikeModel
from glom_plugin.models.saved import FixedEmbeddingModel
from glom_plugin.serving.schemas import ExpandRequest, ExpandResponse, HealthResponse, ModelInfo

log = logging.getLogger(__name__)

MODEL_URI_ENV = "GLOM_MODEL_URI"
CONFIG_ENV = "GLOM_CONFIG"
INTERACTIONS_ENV = "GLOM_INTERACTIONS"


class InvalidRequest(ValueError):
    """A request the caller must fix (mapped to HTTP 400 by the service)."""


def service_config() -> GlomConfig:
    """$GLOM_CONFIG (YAML) when set, else the defaults."""
    path = os.environ.get(CONFIG_ENV)
    return load_config(path) if path else GlomConfig()


def resolve_model_uri(cfg: GlomConfig) -> str:
    """$GLOM_MODEL_URI, else ``serving.model_uri``, else the champion a built Bento carries in its own
    BentoML model store (``glom bento``); an error that says how to point at a model otherwise."""
    uri = os.environ.get(MODEL_URI_ENV) or cfg.serving.model_uri
    if uri:
        return uri
    packed = _packed_model()
    if packed:
        return packed
    raise RuntimeError(
        f"no model to serve: set ${MODEL_URI_ENV} (e.g. models:/{cfg.tracking.registered_model}@"
        f"{cfg.tracking.champion_alias}, or a saved model directory) or serving.model_uri, or serve a Bento "
        "built with `glom bento`"
    )


def _packed_model() -> str | None:
    from glom_plugin.platform.bento_store import BENTO_MODEL_NAME

    try:
        import bentoml

        return f"bentoml:{bentoml.models.get(f'{BENTO_MODEL_NAME}:latest').tag}"
    except Exception:  # noqa: BLE001 - no such model in this store: the caller's error says what to do
        return None


def _interactions_for(model: LookalikeModel) -> pd.DataFrame | None:
    """user_id/item_id pairs for "shared items" explanations: $GLOM_INTERACTIONS, else the training run's
    polarity edges when that run directory is still there; None otherwise (explanations then give seeds only)."""
    path = os.environ.get(INTERACTIONS_ENV)
    if not path:
        run_dir = model.config.run_dir
        candidate = Path(run_dir) / "graph" / "polarity_edges.parquet" if run_dir else None
        path = str(candidate) if candidate is not None and candidate.exists() else None
    if not path:
        return None
    frame = pd.read_parquet(path, columns=["user_id", "item_id"])
    return frame.astype({"user_id": str, "item_id": str})


def _set_search_threads(threads: int) -> None:
    """faiss's OpenMP and numpy's BLAS threads for requests: one per worker (``serving.search_threads``).
    A ~1 ms request split over threads spends more on waking them than it saves, and the other core has
    its own worker; with both pools at 2 threads on 2 cores a max-aggregation request took 33 ms against
    8 ms (benchmarks/results/serving.md)."""
    import faiss
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    faiss.omp_set_num_threads(int(threads))
    threadpool_limits(limits=int(threads))  # process-wide: BLAS and OpenMP alike


class ExpansionEngine:
    """One loaded model (+ its ANN index when it is an embedding model); ``expand`` for one campaign,
    ``expand_many`` for a batch."""

    def __init__(
        self,
        model: LookalikeModel | TrainedModel,
        cfg: GlomConfig,
        uri: str = "",
        provenance: dict[str, Any] | None = None,
        interactions: pd.DataFrame | None = None,
        index: UserIndex | None = None,
        pin_threads: bool = False,
    ) -> None:
        """``model``: any fitted model (a bare ``TrainedModel`` serves as fixed embeddings). ``index``: a
        prebuilt faiss index over its retrieval vectors (built here when omitted). ``pin_threads``: after
        the build, limit this process's faiss and BLAS threads to ``serving.search_threads`` (what a
        serving worker wants; process-wide, so off for library use)."""
        self.model: LookalikeModel = FixedEmbeddingModel.from_trained(model) if isinstance(model, TrainedModel) else model
        self.cfg = cfg
        self.uri = uri
        self.provenance = provenance or {}
        self.interactions = interactions
        # built once: an explained request then costs O(lookalikes), not a groupby over every interaction
        self.shared_items = SharedItems.from_interactions(interactions) if interactions is not None else None
        start = time.perf_counter()
        self.trained: TrainedModel | None = None
        self.index: UserIndex | None = None
        if isinstance(self.model, EmbeddingLookalikeModel):
            self.trained = self.model.as_trained()  # the retrieval vectors the evaluation scores
            self.index = index or build_index(
                self.trained.user_embeddings, kind=cfg.serving.index_kind, seed=cfg.seed, nprobe=cfg.serving.index_nprobe
            )
        self.index_build_seconds = time.perf_counter() - start
        # each user's id as the bytes of its JSON text, when every id is its own (hashed ids always are)
        self._id_json = json_id_texts(self.trained.user_ids) if self.trained is not None else None
        if pin_threads:
            _set_search_threads(cfg.serving.search_threads)  # the build used every core; a request uses one
        self.model.user_index()  # warm the id map before the first request
        # the model's scoring settings with the deployment's k, copied once rather than per request
        self._expand_base = self.model.config.expand.model_copy(update={"top_k": cfg.expand.top_k})
        log.info("serving %s over %d users (%s) in %.2fs", self.model.name, self.model.n_users, self.index_kind,
                 self.index_build_seconds)

    @property
    def index_kind(self) -> str:
        return self.index.kind if self.index is not None else "campaign-model"

    @property
    def answers_inline(self) -> bool:
        """True when a request is one index search (~1 ms of CPU): the service then answers it on the event
        loop, without the hop to a worker thread that costs as much again; a per-campaign model fits a
        classifier per request (0.01-5 s, benchmarks/results/model_face.md) and runs in a thread."""
        return self.index is not None

    @classmethod
    def from_uri(cls, uri: str, cfg: GlomConfig) -> ExpansionEngine:
        """``models:/NAME@alias`` / ``models:/NAME/N`` from the MLflow registry, ``bentoml:NAME:VERSION``
        from the BentoML model store (a built Bento's own), or a saved-model directory."""
        from glom_plugin.platform.mlflow_registry import load_registered_model

        tracking = None if Path(uri).exists() or uri.startswith("bentoml:") else cfg.tracking_uri()
        loaded = load_registered_model(uri, tracking_uri=tracking)
        tags = loaded.tags or {}
        provenance = {
            "registered_model": loaded.name,
            "version": loaded.version,
            "alias": loaded.alias,
            "run_id": loaded.run_id,
            "data_date": tags.get("data_date"),
            "model_family": tags.get("model_family"),
            "eval_protocol": tags.get("eval_protocol"),
            "pr_auc": float(tags["pr_auc"]) if tags.get("pr_auc") else None,
            "promotion": tags.get("promotion"),
        }
        return cls(loaded.model, cfg, uri=uri, provenance=provenance, interactions=_interactions_for(loaded.model),
                   pin_threads=True)

    # ------------------------------------------------------------------------------------------ requests
    def check(self, request: ExpandRequest) -> None:
        """Deployment limits (also in the HTTP schema; repeated here for in-process callers)."""
        limits = self.cfg.serving
        if not request.seed_ids:
            raise InvalidRequest("seed_ids is empty: give at least one hashed user id")
        if len(request.seed_ids) > limits.max_seeds:
            raise InvalidRequest(f"seed_ids has {len(request.seed_ids)} ids; the limit is serving.max_seeds={limits.max_seeds}")
        if request.k is not None and not 1 <= request.k <= limits.max_k:
            raise InvalidRequest(f"k={request.k} is outside 1..serving.max_k={limits.max_k}")

    def _expand_config(self, request: ExpandRequest) -> tuple[Any, int]:
        # the model's own scoring settings (aggregation, centring, T: what its evaluation scored) with the
        # deployment's default k (the service config's expand.top_k), then the request's overrides
        base = self._expand_base
        update: dict[str, Any] = {}
        if request.aggregation is not None and request.aggregation != base.aggregation:
            update["aggregation"] = request.aggregation
        if request.threshold is not None:
            update["threshold"] = request.threshold
        if request.seed_recall is not None:
            update["seed_recall"] = request.seed_recall
        expand_cfg = base.model_copy(update=update) if update else base
        if request.k is not None:
            k = request.k
        elif request.threshold is not None or request.seed_recall is not None:
            k = self.cfg.serving.max_k  # "everyone above T", bounded by the response limit
        else:
            k = min(base.top_k, self.cfg.serving.max_k)
        return expand_cfg, k

    def _fields(self, request: ExpandRequest, result: ExpansionResult) -> dict[str, Any]:
        """The answer as plain JSON-able values, straight from the result's arrays: what ``_response``
        validates once and ``expand_body`` encodes directly."""
        return {"campaign": request.campaign, "lookalikes": _rows(result),
                **self._summary(result, list(result.unknown_seeds))}

    def _summary(self, result: ExpansionResult, unknown: list[str]) -> dict[str, Any]:
        """The response's fields after ``lookalikes``, in ``ExpandResponse``'s order (both encodings share it)."""
        return {
            "n_lookalikes": len(result.rows),
            "seeds_used": len(result.seeds_used),
            "unknown_seeds": unknown,
            "aggregation": result.aggregation,
            "k": result.k,
            "threshold": result.threshold,
            "candidate_source": result.candidate_source,
            "model_version": self.provenance.get("version"),
            "error": None,
        }

    def _response(self, request: ExpandRequest, result: ExpansionResult) -> ExpandResponse:
        """One validation in pydantic-core for the whole answer (a Python-level ``Lookalike(...)`` per row
        cost 3x as much: 0.5 ms for 100 lookalikes)."""
        return ExpandResponse.model_validate(self._fields(request, result))

    def answer(self, request: ExpandRequest) -> ExpansionResult:
        """One campaign's ranking. Unknown seeds are reported; a list with no known seed is an InvalidRequest."""
        self.check(request)
        expand_cfg, k = self._expand_config(request)
        try:
            return self.model.expand(
                list(request.seed_ids),
                k,
                explain=request.explain,
                config=expand_cfg,
                index=self.index,
                interactions=self.shared_items if request.explain else None,
            )
        except ValueError as err:  # no known seed, k/threshold combination, explain on a per-campaign model
            raise InvalidRequest(str(err)) from err

    def expand(self, request: ExpandRequest) -> ExpandResponse:
        """One campaign, as a validated ``ExpandResponse`` (library callers)."""
        return self._response(request, self.answer(request))

    def expand_body(
        self,
        request: ExpandRequest,
        keep_unknown: Callable[[str], bool] | None = None,
        min_seeds: ExpandConfig | None = None,
    ) -> bytes:
        """One campaign as the HTTP body: the JSON of ``expand(request)`` (same fields, same values; a test
        holds them equal), encoded from plain values. Why: validating 100 lookalike models and then
        dumping them again took 0.2-0.3 ms of a ~1 ms request (benchmarks/results/serving.md).
        ``keep_unknown``: which unknown seed ids may be echoed (the service's redaction). ``min_seeds``: refuse
        (``InvalidRequest``) an answer from fewer known seeds than its ``min_seeds`` (k-anonymity,
        ``check_min_seeds``; a warning under ``min_seeds_action=warn`` is not an error)."""
        result = self.answer(request)
        if min_seeds is not None:
            try:
                check_min_seeds(len(result.seeds_used), min_seeds)
            except ValueError as err:
                raise InvalidRequest(str(err)) from err
        unknown = list(result.unknown_seeds)
        summary = self._summary(result, [s for s in unknown if keep_unknown(s)] if keep_unknown else unknown)
        if result.explanations is not None:
            # pydantic-core's encoder: 3x faster than json.dumps on 100 rows
            return to_json({"campaign": request.campaign, "lookalikes": _rows(result), **summary})
        id_texts = self._id_json.take(result.rows).tolist() if self._id_json is not None else _id_texts(result.user_ids)
        return _plain_body(request.campaign, result, summary, id_texts)

    def expand_many(self, requests: list[ExpandRequest]) -> list[ExpandResponse]:
        """A batch of campaigns. Embedding models score them together (``expand/batch.py``: one blocked
        matrix product of every user against all their centroids or seeds, exact); per-campaign models fit
        each in turn. Each is answered on its own: a bad one carries its ``error``, the rest still get
        their lookalikes (adaptive batching merges different callers)."""
        if self.trained is None:
            return [self._answer_or_error(request) for request in requests]
        out: list[ExpandResponse | None] = [None] * len(requests)
        groups: dict[str, list[tuple[int, BatchCampaign, list[str], list[str]]]] = {}
        embeddings = self.trained.user_embeddings
        for i, request in enumerate(requests):
            try:
                self.check(request)
                expand_cfg, k = self._expand_config(request)
                seed_rows, used, unknown = resolve_seeds(self.trained, list(request.seed_ids))
                threshold = calibrated_threshold(embeddings, seed_rows, expand_cfg)
            except ValueError as err:  # InvalidRequest included
                out[i] = self._error(request, err)
                continue
            campaign = BatchCampaign(request.campaign or str(i), seed_rows, k, threshold)
            groups.setdefault(expand_cfg.aggregation, []).append((i, campaign, used, unknown))
        for aggregation, members in groups.items():
            rankings = rank_campaigns(embeddings, [m[1] for m in members], aggregation, threads=self.cfg.expand.batch_threads)
            for (i, campaign, used, unknown), ranking in zip(members, rankings, strict=True):
                request = requests[i]
                explanations = None
                if request.explain:
                    explanations = explain_lookalikes(
                        embeddings, self.trained.user_ids, ranking.rows, campaign.seed_rows, self.shared_items
                    )
                result = ExpansionResult(
                    rows=ranking.rows,
                    all_user_ids=self.trained.user_ids,
                    scores=ranking.scores,
                    seeds_used=used,
                    unknown_seeds=unknown,
                    aggregation=aggregation,
                    threshold=campaign.threshold,
                    k=campaign.k,
                    candidate_source="exact",
                    model_name=self.model.name,
                    explanations=explanations,
                )
                out[i] = self._response(request, result)
        return [answer for answer in out if answer is not None]

    def _answer_or_error(self, request: ExpandRequest) -> ExpandResponse:
        try:
            return self.expand(request)
        except ValueError as err:  # InvalidRequest included
            return self._error(request, err)

    def _error(self, request: ExpandRequest, err: Exception) -> ExpandResponse:
        return ExpandResponse(campaign=request.campaign, error=str(err), model_version=self.provenance.get("version"))

    # ------------------------------------------------------------------------------------------- status
    def health(self) -> HealthResponse:
        return HealthResponse(status="ok", n_users=self.model.n_users, index_kind=self.index_kind)

    def info(self) -> ModelInfo:
        p = self.provenance
        model = self.model
        vectors = self.trained.user_embeddings if self.trained is not None else None
        return ModelInfo(
            model_uri=self.uri,
            registered_model=p.get("registered_model"),
            version=p.get("version"),
            alias=p.get("alias"),
            run_id=p.get("run_id"),
            model_name=model.name,
            model_family=p.get("model_family") or type(model).__name__,
            model_kind=model.kind,
            eval_protocol=p.get("eval_protocol"),
            pr_auc=p.get("pr_auc"),
            promotion=p.get("promotion"),
            data_date=p.get("data_date") or (self.trained.metrics.get("data_date") if self.trained is not None else None),
            created_at=self.trained.created_at if self.trained is not None else None,
            n_users=model.n_users,
            dim=int(vectors.shape[1]) if vectors is not None else None,
            index_kind=self.index_kind,
            index_build_seconds=round(self.index_build_seconds, 4),
            explain_shared_items=self.interactions is not None,
            limits={
                "max_seeds": self.cfg.serving.max_seeds,
                "max_k": self.cfg.serving.max_k,
                "max_campaigns_per_batch": self.cfg.serving.max_campaigns_per_batch,
            },
        )


_NO_EXPLANATION = b',"nearest_seeds":null,"nearest_seed_scores":null,"shared_items":null}'


@lru_cache(maxsize=64)
def _rows_template(n: int) -> bytes:
    """The lookalikes of an n-row answer with every constant part in place (ranks included) and a ``%s``
    for each id and score: one C-level formatting per response instead of one per row. A few sizes are
    asked for in practice (the deployment's k), so a small cache holds them."""
    return b",".join(b'{"user_id":"%%s","score":%%s,"rank":%d%s' % (rank, _NO_EXPLANATION.replace(b"%", b"%%"))
                     for rank in range(1, n + 1))


def _plain_ascii(texts: str) -> bool:
    """Whether ``texts`` is its own JSON string body: printable ASCII without a quote or a backslash."""
    return texts.isascii() and texts.isprintable() and '"' not in texts and "\\" not in texts


def json_id_texts(user_ids: np.ndarray) -> np.ndarray | None:
    """Every id as the bytes between its JSON quotes, indexed like ``user_ids`` (a fixed-width bytes
    array: 1M hashed ids are 20 MB), or None when some id needs escaping (``_id_texts`` then encodes each
    answer's ids). Why: taking 100 ready texts by row is one array operation, where converting and
    checking each answer's ids cost ~30 us of a ~0.3 ms budget (benchmarks/results/serving.md)."""
    ids = user_ids.tolist()
    if not ids or not _plain_ascii("".join(ids)):
        return None
    return np.array(ids, dtype=np.bytes_)


def _id_texts(user_ids: np.ndarray) -> list[bytes]:
    """Each id as the bytes between its JSON quotes. Ids that are printable ASCII without a quote or a
    backslash (hashed ids always are) are their own JSON text; anything else goes through pydantic-core's
    encoder, cut apart at ``","`` (inside an encoded string every quote is escaped, so that only occurs
    between two strings). Why not always the encoder: the check and one ``encode`` cost half as much."""
    ids = user_ids.tolist()
    if _plain_ascii("".join(ids)):
        return '","'.join(ids).encode().split(b'","')
    return to_json(ids)[2:-2].split(b'","')


def _rows(result: ExpansionResult) -> list[dict[str, Any]]:
    """The lookalikes as plain row dicts, explanations included when the result has them."""
    why = result.explanations
    rows: list[dict[str, Any]] = [
        {"user_id": user, "score": score, "rank": rank,
         "nearest_seeds": None, "nearest_seed_scores": None, "shared_items": None}
        for user, score, rank in zip(result.user_ids.tolist(), result.scores.tolist(),
                                     range(1, len(result.user_ids) + 1), strict=True)
    ]
    if why is not None:
        for i, row in enumerate(rows):
            row["nearest_seeds"] = why.nearest_seeds[i]
            row["nearest_seed_scores"] = why.nearest_seed_scores[i]
            if why.shared_items is not None:
                row["shared_items"] = why.shared_items[i]
    return rows


def _plain_body(campaign: str | None, result: ExpansionResult, summary: dict[str, Any], id_texts: list[bytes]) -> bytes:
    """The JSON of an unexplained answer from its columns: the ids' texts (``json_id_texts``) and one
    pydantic-core encoding of the scores (so every float is written as ``ExpandResponse`` writes it), cut
    apart, placed into the n-row template (``_rows_template``), then ``summary``
    (``ExpansionEngine._summary``). Why: building 100 row dicts and encoding them was ~0.17 ms of a
    ~1.2 ms mean request, and formatting row by row still ~0.1 ms (benchmarks/results/serving.md)."""
    n = len(result.rows)
    lookalikes = b""
    if n:
        fields: list[bytes] = [b""] * (2 * n)
        fields[::2] = id_texts
        fields[1::2] = to_json(result.scores.tolist())[1:-1].split(b",")
        lookalikes = _rows_template(n) % tuple(fields)
    return b'{"campaign":%s,"lookalikes":[%s],%s' % (to_json(campaign), lookalikes, to_json(summary)[1:])


def seed_sample(model: TrainedModel | LookalikeModel, n: int, rng: np.random.Generator) -> list[str]:
    """n distinct known user ids (benchmarks and smoke checks)."""
    return model.user_ids[rng.choice(model.n_users, size=min(n, model.n_users), replace=False)].tolist()
