"""The service's request logic in-process: limits, defaults, batch isolation, provenance."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from glom_plugin.config import GlomConfig
from glom_plugin.expand.expander import expand_audience
from glom_plugin.models.artifact import TrainedModel
from glom_plugin.serving.engine import ExpansionEngine, InvalidRequest
from glom_plugin.serving.schemas import ExpandRequest, request_model


@pytest.fixture(scope="module")
def engine():
    rng = np.random.default_rng(0)
    model = TrainedModel(
        model_name="m", user_ids=np.array([f"u{i}" for i in range(200)]), user_embeddings=rng.normal(size=(200, 8)),
        metrics={"data_date": "2026-11-01"},
    )
    cfg = GlomConfig().with_overrides(**{"serving.max_seeds": 10, "serving.max_k": 50, "expand.top_k": 30})
    return ExpansionEngine(model, cfg, uri="local", provenance={"version": "7", "alias": "champion"})


def test_defaults_and_limits(engine):
    answer = engine.expand(ExpandRequest(seed_ids=["u1", "u2"]))
    assert answer.n_lookalikes == 30 and answer.k == 30 and answer.model_version == "7"
    with pytest.raises(InvalidRequest, match="max_seeds=10"):
        engine.expand(ExpandRequest(seed_ids=[f"u{i}" for i in range(11)]))
    with pytest.raises(InvalidRequest, match="max_k=50"):
        engine.expand(ExpandRequest(seed_ids=["u1"], k=51))
    with pytest.raises(InvalidRequest, match="none of the 1 seed ids is known"):
        engine.expand(ExpandRequest(seed_ids=["ghost"]))


def test_threshold_without_k_returns_everyone_above_t_up_to_max_k(engine):
    answer = engine.expand(ExpandRequest(seed_ids=["u1"], threshold=0.2, aggregation="max"))
    scores = [r.score for r in answer.lookalikes]
    assert all(s >= 0.2 for s in scores) and len(scores) <= 50
    exact = expand_audience(engine.trained, ["u1"], engine.cfg.expand.model_copy(update={"aggregation": "max", "threshold": 0.2}), k=50)
    assert [r.user_id for r in answer.lookalikes] == exact.lookalikes["user_id"].tolist()


def test_batch_keeps_going_past_a_bad_campaign(engine):
    answers = engine.expand_many(
        [ExpandRequest(seed_ids=["u3"], k=5, campaign="a"), ExpandRequest(seed_ids=["ghost"], campaign="b")]
    )
    assert answers[0].n_lookalikes == 5 and answers[0].error is None
    assert answers[1].lookalikes == [] and "none of the 1 seed ids is known" in answers[1].error


def test_request_schema_rejects_bad_input():
    model = request_model(GlomConfig().serving.model_copy(update={"max_seeds": 3, "max_k": 9}))
    for bad in ({"seed_ids": []}, {"seed_ids": ["a"] * 4}, {"seed_ids": ["a"], "k": 0}, {"seed_ids": ["a"], "k": 10},
                {"seed_ids": ["a"], "aggregation": "median"}, {"seed_ids": [""]}, {"seed_ids": ["a"], "x": 1}):
        with pytest.raises(ValidationError):
            model.model_validate(bad)
    assert model.model_validate({"seed_ids": ["a", "b"], "k": 9}).k == 9


def test_model_info_carries_provenance(engine):
    info = engine.info()
    assert (info.version, info.alias, info.data_date, info.n_users, info.index_kind) == ("7", "champion", "2026-11-01", 200, "flat")


def test_seed_recall_calibrates_t_per_request(engine):
    seeds = [f"u{i}" for i in range(8)]
    answer = engine.expand(ExpandRequest(seed_ids=seeds, seed_recall=0.5))
    assert answer.threshold is not None and answer.k == 50  # "everyone above T", bounded by max_k
    assert all(r.score >= answer.threshold for r in answer.lookalikes)
    looser = engine.expand(ExpandRequest(seed_ids=seeds, seed_recall=1.0))
    assert looser.threshold <= answer.threshold and looser.n_lookalikes >= answer.n_lookalikes
    with pytest.raises(ValidationError):
        ExpandRequest(seed_ids=seeds, seed_recall=0.0)


def test_index_and_thread_settings_come_from_the_serving_config():
    import faiss

    rng = np.random.default_rng(1)
    model = TrainedModel(model_name="m", user_ids=np.array([f"u{i}" for i in range(3000)]), user_embeddings=rng.normal(size=(3000, 8)))
    cfg = GlomConfig().with_overrides(**{"serving.index_kind": "ivf", "serving.index_nprobe": 3, "serving.search_threads": 1})
    from threadpoolctl import threadpool_info, threadpool_limits

    before = faiss.omp_get_max_threads()
    try:
        engine = ExpansionEngine(model, cfg, uri="local", pin_threads=True)
        assert engine.index.kind == "ivf" and engine.index.index.nprobe == 3 and faiss.omp_get_max_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    finally:
        threadpool_limits(limits=before)
        faiss.omp_set_num_threads(before)
    assert GlomConfig().serving.workers == "cpu_count" and GlomConfig().serving.threads == 1


@pytest.mark.parametrize(
    "request_fields",
    [
        {"seed_ids": ["u1", "u2", "ghost"]},
        {"seed_ids": ["u3"], "k": 5, "aggregation": "max", "campaign": "c"},
        {"seed_ids": ["u4", "u5"], "threshold": 0.1},
        {"seed_ids": ["u6", "u7"], "k": 4, "explain": True},
    ],
)
def test_http_body_is_the_json_of_the_validated_response(engine, request_fields):
    """The service encodes /expand straight from the ranking; it must say exactly what ExpandResponse says."""
    import json

    request = ExpandRequest(**request_fields)
    body = json.loads(engine.expand_body(request))
    assert body == engine.expand(request).model_dump(mode="json")
    assert body["n_lookalikes"] == len(body["lookalikes"]) > 0


def test_http_body_survives_ids_and_campaign_names_that_need_escaping():
    """The body is cut and zipped from encoded columns (engine._plain_body): ids with quotes, commas,
    backslashes, control characters or non-ASCII, and an empty id, must come back exactly."""
    import json

    odd = ['a","b', 'q"', "back\\slash", "", "tab\there", "naïve", '","', "\\\"", "x" * 40]
    ids = np.array(odd + [f"u{i}" for i in range(60)], dtype=object)
    rng = np.random.default_rng(3)
    model = TrainedModel(model_name="m", user_ids=ids, user_embeddings=rng.normal(size=(len(ids), 4)))
    engine = ExpansionEngine(model, GlomConfig().with_overrides(**{"expand.top_k": 50}), uri="local")
    for campaign in (None, 'c","lookalikes":[]', "plain"):
        request = ExpandRequest(seed_ids=["u1", "u2", "ghost"], k=len(ids) - 2, campaign=campaign)
        body = json.loads(engine.expand_body(request))
        assert body == engine.expand(request).model_dump(mode="json")
        assert sorted(r["user_id"] for r in body["lookalikes"]) == sorted(set(ids) - {"u1", "u2"})


def test_id_texts_are_kept_per_row_only_when_every_id_is_its_own_json():
    """``json_id_texts``: the bytes between each id's JSON quotes, by row, for plain ASCII ids; None as soon
    as one id needs escaping (each answer's ids are then encoded on their own)."""
    import json

    from glom_plugin.serving.engine import json_id_texts

    plain = np.array(["u1", "ab12cd", "x-y_z.w", ""], dtype=object)
    texts = json_id_texts(plain)
    assert texts is not None and texts.take([2, 0, 3]).tolist() == [b"x-y_z.w", b"u1", b""]
    assert [json.loads(b'"%s"' % t) for t in texts.tolist()] == plain.tolist()
    for odd in ('q"', "back\\slash", "tab\there", "naïve", "nul\x00"):
        assert json_id_texts(np.array(["u1", odd], dtype=object)) is None, odd
    assert json_id_texts(np.array([], dtype=object)) is None


def test_http_body_refuses_fewer_known_seeds_than_min_seeds(engine):
    """The service's k-anonymity check on an inline answer counts the seeds the answer itself resolved."""
    import json

    request = ExpandRequest(seed_ids=["u1", "u2", "ghost"], k=3)
    refuse = GlomConfig().expand.model_copy(update={"min_seeds": 3, "min_seeds_action": "refuse"})
    with pytest.raises(InvalidRequest, match="only 2 known seed"):
        engine.expand_body(request, min_seeds=refuse)
    warn = refuse.model_copy(update={"min_seeds_action": "warn"})
    assert json.loads(engine.expand_body(request, min_seeds=warn))["seeds_used"] == 2
    assert json.loads(engine.expand_body(request, min_seeds=refuse.model_copy(update={"min_seeds": 2})))["k"] == 3


def test_http_body_ranks_past_the_preformatted_ranks():
    import json

    rng = np.random.default_rng(4)
    model = TrainedModel(model_name="m", user_ids=np.array([f"u{i}" for i in range(1500)]),
                         user_embeddings=rng.normal(size=(1500, 4)))
    engine = ExpansionEngine(model, GlomConfig().with_overrides(**{"serving.max_k": 1400}), uri="local")
    body = json.loads(engine.expand_body(ExpandRequest(seed_ids=["u1"], k=1400)))
    assert [r["rank"] for r in body["lookalikes"]] == list(range(1, 1401))


def test_http_body_redacts_unknown_seeds_the_filter_refuses(engine):
    import json

    request = ExpandRequest(seed_ids=["u1", "raw-account-42", "f" * 16])
    assert json.loads(engine.expand_body(request))["unknown_seeds"] == ["raw-account-42", "f" * 16]
    kept = json.loads(engine.expand_body(request, lambda s: s.startswith("f")))["unknown_seeds"]
    assert kept == ["f" * 16]
