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

Bad input (empty or oversized seed list, k <= 0, unknown aggregation, extra fields) is a 400 with the
reason; seeds the model does not know are listed in ``unknown_seeds``; a campaign with no known seed is a
400 online and an ``error`` entry in a batch.
"""

from __future__ import annotations

import os
from http import HTTPStatus
from typing import Annotated

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import bentoml  # noqa: E402
from bentoml.exceptions import BentoMLException  # noqa: E402
from pydantic import Field  # noqa: E402

from glom_plugin.serving.engine import ExpansionEngine, InvalidRequest, resolve_model_uri, service_config  # noqa: E402
from glom_plugin.serving.schemas import (  # noqa: E402
    AggregationName,
    ExpandRequest,
    ExpandResponse,
    HealthResponse,
    ModelInfo,
    request_model,
)

CONFIG = service_config()
LIMITS = CONFIG.serving
CampaignRequest = request_model(LIMITS)
# Adaptive batching's latency budget: BentoML sheds (503) requests it predicts will exceed it, so it is
# generous — the dispatcher still waits only as long as its cost model says merging pays off.
BATCH_MAX_LATENCY_MS = 10_000


class BadRequest(BentoMLException):
    error_code = HTTPStatus.BAD_REQUEST


# Workers and threads per serving.workers / serving.threads (docs/PLATFORM.md: one process per core).
@bentoml.service(
    name="glom_lookalike",
    traffic={"timeout": 120},
    workers=LIMITS.workers,
    threads=LIMITS.threads,
    logging={"access": {"enabled": LIMITS.access_log}},
)
class LookalikeService:
    def __init__(self) -> None:
        self.engine = ExpansionEngine.from_uri(resolve_model_uri(CONFIG), CONFIG)

    @bentoml.api
    def expand(
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
        request = ExpandRequest(
            seed_ids=seed_ids,
            k=k,
            threshold=threshold,
            seed_recall=seed_recall,
            aggregation=aggregation,
            explain=explain,
            campaign=campaign,
        )
        try:
            return self.engine.expand(request)
        except InvalidRequest as err:
            raise BadRequest(str(err)) from err

    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=LIMITS.max_campaigns_per_batch, max_latency_ms=BATCH_MAX_LATENCY_MS)
    def expand_batch(
        self, campaigns: Annotated[list[CampaignRequest], Field(min_length=1, max_length=LIMITS.max_campaigns_per_batch)]
    ) -> list[ExpandResponse]:
        """Many campaigns in one call; one answer per campaign, in order."""
        return self.engine.expand_many(list(campaigns))

    @bentoml.api
    def health(self) -> HealthResponse:
        return self.engine.health()

    @bentoml.api
    def model_info(self) -> ModelInfo:
        return self.engine.info()
