"""BentoML service: lookalike expansion online (one campaign) and in batch (many campaigns per call).

    GLOM_MODEL_URI=models:/glom-lookalike@champion MLFLOW_TRACKING_URI=sqlite:///runs/mlflow.db \\
        bentoml serve glom_plugin.serving.service:LookalikeService --host 127.0.0.1 --port 3000

The model comes from the MLflow registry by alias (``$GLOM_MODEL_URI``, else ``serving.model_uri`` of
``$GLOM_CONFIG``), or from a local TrainedModel directory; its user embeddings are indexed with faiss at
start-up. APIs (POST, JSON):

- ``/expand``        {"seed_ids": [...], "k": 100, "aggregation": "mean", "threshold": null, "seed_recall": null,
                      "explain": false}
- ``/expand_batch``  {"campaigns": [{...}, {...}]} — adaptive batching merges concurrent callers' campaigns
- ``/health``, ``/model_info`` — liveness with the index, and the model's version / alias / data date.
- ``/reload``        load the model ``$GLOM_MODEL_URI`` names now (e.g. after the champion alias moved) and
                      swap it in; requests in flight finish on the old one. Each worker process reloads itself.

In front of every route (``serving/guard.py``): API keys from ``$GLOM_API_KEYS`` (401 without one),
``serving.max_body_bytes`` (413), ``serving.request_timeout_s`` (504). Seed lists with fewer known seeds
than ``expand.min_seeds`` (k-anonymity) are refused with a 400 (a batch entry's ``error``). The service
refuses to start without ``$GLOM_ID_SALT``: the seed lists it answers were hashed with that salt.

Bad input (empty or oversized seed list, k <= 0, unknown aggregation, extra fields) is a 400 with the
reason; seeds the model does not know are listed in ``unknown_seeds`` (hashed-looking ones only); a campaign with no known seed is a
400 online and an ``error`` entry in a batch.
"""

from __future__ import annotations

import gc
import inspect
import os
from collections.abc import Callable
from http import HTTPStatus
from typing import Annotated, TypeVar

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import anyio  # noqa: E402
import anyio.to_thread  # noqa: E402
import bentoml  # noqa: E402
from bentoml.exceptions import BentoMLException  # noqa: E402
from pydantic import ConfigDict, Field  # noqa: E402
from starlette.responses import Response  # noqa: E402

from glom_plugin.data.hashing import looks_hashed, resolve_salt  # noqa: E402
from glom_plugin.expand.expander import check_min_seeds  # noqa: E402
from glom_plugin.serving.engine import ExpansionEngine, InvalidRequest, resolve_model_uri, service_config  # noqa: E402
from glom_plugin.serving.guard import RequestGuard, api_keys_from_env  # noqa: E402
from glom_plugin.serving.schemas import (  # noqa: E402
    AggregationName,
    ExpandRequest,
    ExpandResponse,
    HealthResponse,
    ModelInfo,
    request_model,
)

F = TypeVar("F", bound=Callable[..., object])
CONFIG = service_config()
LIMITS = CONFIG.serving
CampaignRequest = request_model(LIMITS)
# Adaptive batching's latency budget: BentoML sheds (503) requests it predicts will exceed it, so it is
# generous — the dispatcher still waits only as long as its cost model says merging pays off.
BATCH_MAX_LATENCY_MS = 10_000
# serving.trace_requests = false: a pattern the OpenTelemetry middleware's exclude list matches for every URL
UNTRACED_ROUTES = ".*"


class BadRequest(BentoMLException):
    error_code = HTTPStatus.BAD_REQUEST


def _redacted(answer: ExpandResponse) -> ExpandResponse:
    """Unknown seeds are echoed only when they look like hashed ids: a raw id sent by mistake is not sent
    back (``seeds_used`` and the request itself tell the caller how many were unknown)."""
    answer.unknown_seeds = [s for s in answer.unknown_seeds if looks_hashed(s)]
    return answer


def strict_input(func: Callable[..., object]) -> type[bentoml.IODescriptor]:
    """BentoML's request model inferred from ``func``'s parameters, refusing unknown fields (a 400 naming
    them) where BentoML would silently drop them — a misspelt ``"treshold"`` must not be ignored."""
    inferred = bentoml.IODescriptor.from_input(func, skip_self=True)
    spec = type(f"{func.__name__.title()}Input", (inferred,),
                {"model_config": ConfigDict(extra="forbid"), "__module__": func.__module__})
    spec.model_fields = _ClassFields()  # type: ignore[misc, assignment]
    return spec


class _ClassFields:
    """``model_fields`` read on an instance without pydantic's deprecation path. Why: BentoML reads
    ``input_data.model_fields`` on every request, and since pydantic 2.11 each such read builds and filters a
    ``PydanticDeprecatedSince211`` warning (~3.5% of a worker's CPU under load, docs/PLATFORM.md). The value is
    the class's own field map, the same dict the class attribute gives."""

    def __get__(self, instance: object, owner: type | None = None) -> dict:
        return (owner or type(instance)).__pydantic_fields__  # type: ignore[attr-defined]


def exempt_from_gc() -> None:
    """Collect what is garbage now (a replaced model's cycles included), then move every object still alive
    (the model, its id -> row map, the index's wrappers) out of the cyclic garbage collector's reach
    (``gc.freeze``); they are still freed by reference counting when dropped.
    Why: a full collection traverses the 1M-entry id map and took ~190 ms at 1M users, a pause every request
    in flight then waits for (a p99 of 240+ ms at 32 clients); after the freeze it takes microseconds
    (docs/PLATFORM.md)."""
    gc.collect()
    gc.freeze()


def presigned(func: F) -> F:
    """``func`` with its signature computed once. Why: BentoML binds an API method on every request and
    runs ``inspect.signature`` on it each time (~3% of a worker's CPU under load, a py-spy profile in
    docs/PLATFORM.md); ``inspect`` returns a function's own ``__signature__`` without rebuilding it."""
    func.__signature__ = inspect.signature(func)  # type: ignore[attr-defined]
    return func


# Workers and threads per serving.workers / serving.threads (docs/PLATFORM.md: one process per core).
@bentoml.service(
    name="glom_lookalike",
    traffic={"timeout": 120},
    workers=LIMITS.workers,
    threads=LIMITS.threads,
    logging={"access": {"enabled": LIMITS.access_log}},
    metrics={"enabled": LIMITS.metrics},
    **({} if LIMITS.trace_requests else {"tracing": {"excluded_urls": [UNTRACED_ROUTES]}}),
)
class LookalikeService:
    def __init__(self) -> None:
        resolve_salt(CONFIG.data.id_salt_env, required=True)
        self.engine = ExpansionEngine.from_uri(resolve_model_uri(CONFIG), CONFIG)
        self._limiter: anyio.CapacityLimiter | None = None
        exempt_from_gc()

    def _fit_limiter(self) -> anyio.CapacityLimiter:
        """At most serving.threads per-campaign fits at once in this worker (made on the event loop)."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(LIMITS.threads)
        return self._limiter

    @staticmethod
    def _below_min_seeds(engine: ExpansionEngine, seed_ids: list[str]) -> str | None:
        """The refusal when a campaign has fewer known seeds than expand.min_seeds (k-anonymity)."""
        index = engine.model.user_index()
        known = len({s for s in seed_ids if s in index})
        if known == 0:
            return None  # the engine's own error says so and points to `glom hash-ids`
        try:
            check_min_seeds(known, CONFIG.expand)
        except ValueError as err:
            return str(err)
        return None

    async def expand(
        self,
        seed_ids: Annotated[
            list[Annotated[str, Field(min_length=1, max_length=256)]], Field(min_length=1, max_length=LIMITS.max_seeds)
        ],
        k: Annotated[int | None, Field(ge=1, le=LIMITS.max_k)] = None,
        threshold: Annotated[float | None, Field(ge=-1.0, le=1.0)] = None,
        aggregation: AggregationName | None = None,
        explain: bool = False,
        campaign: Annotated[str | None, Field(max_length=200)] = None,
        seed_recall: Annotated[float | None, Field(gt=0.0, le=1.0)] = None,
    ) -> ExpandResponse:
        """One campaign: seeds -> ranked lookalikes (GLoM §3.7), with explanations on request."""
        # BentoML validated these against this signature, which is at least as strict as ExpandRequest's
        # fields: constructed, not validated a second time
        request = ExpandRequest.model_construct(
            seed_ids=seed_ids,
            k=k,
            threshold=threshold,
            seed_recall=seed_recall,
            aggregation=aggregation,
            explain=explain,
            campaign=campaign,
        )
        engine = self.engine  # a /reload swaps self.engine; this request finishes on the one it started on
        # The body is encoded straight from the ranking (engine.expand_body: the JSON of ExpandResponse,
        # without validating and re-dumping 100 lookalike models per request).
        try:
            if engine.answers_inline:  # one index search: cheaper on the event loop than a thread hop
                # k-anonymity from the answer's own count of known seeds (no second lookup of each seed)
                body = engine.expand_body(request, looks_hashed, min_seeds=CONFIG.expand)
            else:  # a per-campaign fit: refused before it starts, and off the event loop meanwhile
                refusal = self._below_min_seeds(engine, seed_ids)
                if refusal:
                    raise BadRequest(refusal)
                body = await anyio.to_thread.run_sync(engine.expand_body, request, looks_hashed,
                                                      limiter=self._fit_limiter())
        except InvalidRequest as err:
            raise BadRequest(str(err)) from err
        return Response(body, media_type="application/json")  # type: ignore[return-value]  # schema: ExpandResponse

    expand = bentoml.api(input_spec=strict_input(expand))(presigned(expand))

    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=LIMITS.max_campaigns_per_batch, max_latency_ms=BATCH_MAX_LATENCY_MS)
    @presigned
    def expand_batch(
        self, campaigns: Annotated[list[CampaignRequest], Field(min_length=1, max_length=LIMITS.max_campaigns_per_batch)]
    ) -> list[ExpandResponse]:
        """Many campaigns in one call; one answer per campaign, in order."""
        engine = self.engine
        refusals = [self._below_min_seeds(engine, c.seed_ids) for c in campaigns]
        kept = [c for c, refusal in zip(campaigns, refusals, strict=True) if refusal is None]
        answers = iter([_redacted(a) for a in engine.expand_many(kept)] if kept else [])
        return [next(answers) if refusal is None else ExpandResponse(campaign=c.campaign, error=refusal)
                for c, refusal in zip(campaigns, refusals, strict=True)]

    # Answered on the event loop: a few fields, no thread hop.
    @bentoml.api
    @presigned
    async def health(self) -> HealthResponse:
        return self.engine.health()

    @bentoml.api
    @presigned
    async def model_info(self) -> ModelInfo:
        return self.engine.info()

    @bentoml.api
    @presigned
    def reload(self) -> ModelInfo:
        """Load the model the URI names now and swap it in (this worker)."""
        self.engine = ExpansionEngine.from_uri(resolve_model_uri(CONFIG), CONFIG)
        exempt_from_gc()
        return self.engine.info()


LookalikeService.add_asgi_middleware(
    RequestGuard, api_keys=api_keys_from_env(LIMITS), max_body_bytes=LIMITS.max_body_bytes,
    timeout_s=LIMITS.request_timeout_s,
)
