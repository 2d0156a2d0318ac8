"""Request and response shapes of the expansion service (pydantic, so bad input is a clear 400).

Static rules live in the fields (a seed list is never empty, k >= 1, the aggregation is one of
Yahoo Eq. 3 / Eq. 4 / centroid, the threshold is a cosine in [-1, 1]); limits that come from the
deployment's config (``serving.max_seeds``, ``serving.max_k``) are applied by ``request_model`` so the
HTTP schema itself states them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from glom_plugin.config import ServingConfig

AggregationName = Literal["max", "mean", "probabilistic"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExpandRequest(_Strict):
    """One campaign: the advertiser's seed users (hashed ids) and how many lookalikes to return."""

    seed_ids: list[str] = Field(min_length=1, description="hashed user ids of the seed audience")
    k: int | None = Field(None, ge=1, description="number of lookalikes (default: expand.top_k)")
    threshold: float | None = Field(None, ge=-1.0, le=1.0, description="keep only sim(u, S) >= T (§3.7)")
    seed_recall: float | None = Field(
        None, gt=0.0, le=1.0, description="no fixed T: calibrate T on held-out seeds so this share of them clears it"
    )
    aggregation: AggregationName | None = Field(None, description="sim(u, S): max, mean or probabilistic")
    explain: bool = Field(False, description="add each lookalike's nearest seeds and shared items")
    campaign: str | None = Field(None, max_length=200, description="caller's name for the campaign")


def request_model(limits: ServingConfig) -> type[ExpandRequest]:
    """``ExpandRequest`` with the deployment's size limits in the schema (oversized input -> 400)."""
    return create_model(
        "ExpandRequest",
        __base__=ExpandRequest,
        seed_ids=(
            Annotated[list[Annotated[str, Field(min_length=1, max_length=256)]], Field(min_length=1, max_length=limits.max_seeds)],
            Field(description=f"hashed user ids of the seed audience (1..{limits.max_seeds})"),
        ),
        k=(int | None, Field(None, ge=1, le=limits.max_k, description=f"number of lookalikes (1..{limits.max_k})")),
    )


class Lookalike(_Strict):
    user_id: str
    score: float
    rank: int
    nearest_seeds: list[str] | None = None
    nearest_seed_scores: list[float] | None = None
    shared_items: list[str] | None = None


class ExpandResponse(_Strict):
    campaign: str | None = None
    lookalikes: list[Lookalike] = Field(default_factory=list)
    n_lookalikes: int = 0
    seeds_used: int = 0
    unknown_seeds: list[str] = Field(default_factory=list)
    aggregation: str = ""
    k: int | None = None
    threshold: float | None = None
    candidate_source: str = ""
    model_version: str | None = None
    # Batch only: why this campaign got no answer (e.g. none of its seeds is known); the others still do.
    error: str | None = None


class HealthResponse(_Strict):
    status: Literal["ok"]
    n_users: int
    index_kind: str


class ModelInfo(_Strict):
    model_uri: str
    registered_model: str | None
    version: str | None
    alias: str | None
    run_id: str | None
    model_name: str
    model_family: str
    model_kind: str
    eval_protocol: str | None  # the evaluation that gave pr_auc (evaluate.candidates)
    pr_auc: float | None  # the PR-AUC that made this version champion
    promotion: str | None  # why the alias points here
    data_date: str | None
    created_at: str | None
    n_users: int
    dim: int | None
    index_kind: str
    index_build_seconds: float
    explain_shared_items: bool
    limits: dict[str, int]
