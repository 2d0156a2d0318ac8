"""A real `bentoml serve` over HTTP on 127.0.0.1, loading the champion from a real MLflow sqlite registry:
online and batch answers equal expand_audience's, bad requests are 4xx, unknown seeds are reported."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from glom_plugin.config import GlomConfig
from glom_plugin.expand.expander import expand_audience
from glom_plugin.expand.index import build_index
from glom_plugin.models.artifact import TrainedModel
from glom_plugin.platform import mlflow_registry as reg
from glom_plugin.serving.schemas import ExpandResponse

from .platform_support import bentoml_serve

pytestmark = pytest.mark.integration

N_USERS, DIM = 400, 16
MAX_SEEDS, MAX_K, MAX_CAMPAIGNS = 50, 100, 16


def make_model(seed: int) -> TrainedModel:
    rng = np.random.default_rng(seed)
    # Four planted clusters so lookalikes are meaningful, plus noise.
    centres = rng.normal(size=(4, DIM))
    labels = rng.integers(0, 4, N_USERS)
    emb = (centres[labels] + 0.6 * rng.normal(size=(N_USERS, DIM))).astype(np.float32)
    return TrainedModel(
        model_name="glom-attn1",
        user_ids=np.array([f"user{i:04d}" for i in range(N_USERS)]),
        user_embeddings=emb,
        metrics={"data_date": f"2026-11-2{seed}"},
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    cfg = GlomConfig(run_dir=str(root / "run")).with_overrides(
        **{
            "tracking.tracking_uri": uri,
            "tracking.registered_model": "glom-serve-test",
            "serving.max_seeds": MAX_SEEDS,
            "serving.max_k": MAX_K,
            "serving.max_campaigns_per_batch": MAX_CAMPAIGNS,
            "expand.min_seeds": 1,  # these tests use 1-5 seeds; k-anonymity has its own test
        }
    )
    champion, challenger = make_model(1), make_model(2)
    assert reg.log_training_run(cfg, champion, pr_auc=0.7).promoted
    assert not reg.log_training_run(cfg, challenger, pr_auc=0.6).promoted  # v2 registered, not champion
    config_path = root / "serving.yaml"
    config_path.write_text(yaml.safe_dump(cfg.model_dump()))
    rng = np.random.default_rng(5)
    interactions = pd.DataFrame(
        {"user_id": np.repeat(champion.user_ids, 3), "item_id": [f"item{j}" for j in rng.integers(0, 30, 3 * N_USERS)]}
    )
    interactions_path = root / "interactions.parquet"
    interactions.to_parquet(interactions_path)
    env = {
        "GLOM_MODEL_URI": "models:/glom-serve-test@champion",
        "GLOM_CONFIG": str(config_path),
        "GLOM_INTERACTIONS": str(interactions_path),
        "MLFLOW_TRACKING_URI": uri,
        "GLOM_TEST_LOG_DIR": str(root),
    }
    with bentoml_serve("glom_plugin.serving.service:LookalikeService", env) as url:
        with httpx.Client(base_url=url, timeout=60) as client:
            yield client, champion, cfg, interactions


def expected(model, cfg, seeds, k, aggregation="mean", threshold=None, explain=False, interactions=None):
    expand_cfg = cfg.expand.model_copy(update={"aggregation": aggregation, "threshold": threshold})
    return expand_audience(
        model, seeds, expand_cfg, k=k, explain=explain, index=build_index(model.user_embeddings), interactions=interactions
    ).lookalikes


def assert_same(answer: dict, frame: pd.DataFrame) -> None:
    assert [r["user_id"] for r in answer["lookalikes"]] == frame["user_id"].tolist()
    np.testing.assert_allclose([r["score"] for r in answer["lookalikes"]], frame["score"], rtol=1e-5, atol=1e-6)


def test_model_info_reports_the_champion(served):
    client, champion, _, _ = served
    info = client.post("/model_info").json()
    assert (info["version"], info["alias"], info["registered_model"]) == ("1", "champion", "glom-serve-test")
    assert info["data_date"] == "2026-11-21" and info["n_users"] == N_USERS and info["dim"] == DIM
    assert info["limits"]["max_seeds"] == MAX_SEEDS
    health = client.post("/health").json()
    assert health == {"status": "ok", "n_users": N_USERS, "index_kind": "flat"}


@pytest.mark.parametrize("aggregation", ["mean", "max", "probabilistic"])
def test_online_expand_matches_expand_audience(served, aggregation):
    client, champion, cfg, _ = served
    seeds = champion.user_ids[[3, 17, 42, 99]].tolist()
    response = client.post("/expand", json={"seed_ids": seeds, "k": 25, "aggregation": aggregation})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["n_lookalikes"] == 25 and answer["model_version"] == "1" and answer["unknown_seeds"] == []
    assert not set(seeds) & {r["user_id"] for r in answer["lookalikes"]}
    assert_same(answer, expected(champion, cfg, seeds, 25, aggregation))


def test_threshold_explanations_and_unknown_seeds(served):
    client, champion, cfg, interactions = served
    seeds = champion.user_ids[[5, 6]].tolist() + ["never-seen-user"]
    answer = client.post("/expand", json={"seed_ids": seeds, "threshold": 0.6, "explain": True}).json()
    # "never-seen-user" is not hash-shaped (maybe a raw id sent by mistake): not echoed back (issue 14)
    assert answer["unknown_seeds"] == [] and answer["seeds_used"] == 2
    reference = expected(champion, cfg, seeds, MAX_K, threshold=0.6, explain=True, interactions=interactions)
    assert_same(answer, reference)
    assert 0 < answer["n_lookalikes"] < MAX_K and all(r["score"] >= 0.6 for r in answer["lookalikes"])
    first = answer["lookalikes"][0]
    assert first["nearest_seeds"] == reference["nearest_seeds"].iloc[0]
    assert first["shared_items"] == reference["shared_items"].iloc[0]
    assert set(first["nearest_seeds"]) <= set(seeds[:2])


def test_batch_expand_answers_each_campaign(served):
    client, champion, cfg, _ = served
    rng = np.random.default_rng(11)
    campaigns = [
        {"campaign": f"c{i}", "seed_ids": rng.choice(champion.user_ids, 5, replace=False).tolist(), "k": 10}
        for i in range(6)
    ]
    campaigns.append({"campaign": "ghosts", "seed_ids": ["ghost-1", "ghost-2"], "k": 10})
    response = client.post("/expand_batch", json={"campaigns": campaigns})
    assert response.status_code == 200, response.text
    answers = response.json()
    assert [a["campaign"] for a in answers] == [c["campaign"] for c in campaigns]
    for campaign, answer in zip(campaigns[:-1], answers[:-1], strict=True):
        assert answer["error"] is None
        assert_same(answer, expected(champion, cfg, campaign["seed_ids"], 10))
    assert answers[-1]["lookalikes"] == [] and "none of the 2 seed ids is known" in answers[-1]["error"]


def test_concurrent_batch_callers_get_their_own_answers(served):
    client, champion, cfg, _ = served
    url = str(client.base_url)
    rng = np.random.default_rng(12)
    calls = [[{"campaign": f"t{t}-{i}", "seed_ids": rng.choice(champion.user_ids, 3, replace=False).tolist(), "k": 5} for i in range(3)] for t in range(8)]

    def call(campaigns):
        response = httpx.post(f"{url}/expand_batch", json={"campaigns": campaigns}, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(call, calls))
    for campaigns, answers in zip(calls, results, strict=True):
        assert [a["campaign"] for a in answers] == [c["campaign"] for c in campaigns]
        for campaign, answer in zip(campaigns, answers, strict=True):
            assert_same(answer, expected(champion, cfg, campaign["seed_ids"], 5))


@pytest.mark.parametrize(
    "path,body,needle",
    [
        ("/expand", {"seed_ids": [], "k": 5}, "too_short"),
        ("/expand", {"seed_ids": [f"user{i:04d}" for i in range(MAX_SEEDS + 1)]}, "too_long"),
        ("/expand", {"seed_ids": ["user0001"], "k": 0}, "greater_than_equal"),
        ("/expand", {"seed_ids": ["user0001"], "k": -3}, "greater_than_equal"),
        ("/expand", {"seed_ids": ["user0001"], "k": MAX_K + 1}, "less_than_equal"),
        ("/expand", {"seed_ids": ["user0001"], "aggregation": "median"}, "literal_error"),
        ("/expand", {"seed_ids": ["user0001"], "threshold": 2.0}, "less_than_equal"),
        ("/expand", {"seed_ids": "user0001"}, "list_type"),
        ("/expand", {"seed_ids": ["nobody", "nobody-else"]}, "none of the 2 seed ids is known"),
        ("/expand_batch", {"campaigns": []}, "too_short"),
        ("/expand_batch", {"campaigns": [{"seed_ids": ["user0001"]}] * (MAX_CAMPAIGNS + 1)}, "too_long"),
        ("/expand_batch", {"campaigns": [{"seed_ids": ["user0001"], "k": 0}]}, "greater_than_equal"),
        ("/expand_batch", {"campaigns": [{"seed_ids": ["user0001"], "colour": "red"}]}, "extra_forbidden"),
    ],
)
def test_bad_requests_are_4xx_with_a_reason(served, path, body, needle):
    client = served[0]
    response = client.post(path, json=body)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert needle in response.text


def test_malformed_json_is_400(served):
    response = served[0].post("/expand", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400


def test_expand_answers_json_and_is_counted_by_the_prometheus_metrics(served):
    """The body the service encodes itself is JSON of the declared shape, and serving.metrics (on by
    default) still counts /expand for an operator's scraper."""
    client, champion, _, _ = served
    response = client.post("/expand", json={"seed_ids": champion.user_ids[[5, 6]].tolist(), "k": 3})
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    assert set(response.json()) == set(ExpandResponse.model_fields)
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    counted = [line for line in metrics.text.splitlines()
               if line.startswith("bentoml_service_request_total") and 'endpoint="/expand"' in line]
    assert counted and float(counted[0].rsplit(" ", 1)[1]) >= 1, metrics.text[:2000]
