"""Batch expansion: the blocked matrix product gives every campaign exactly the online path's lookalikes
(ids, order, scores), whatever the block and chunk sizes; campaign files, Parquet output, summary, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from glom_plugin.config import ExpandConfig, GlomConfig
from glom_plugin.expand.batch import BatchCampaign, rank_campaigns
from glom_plugin.expand.batch_stage import SortedIds, read_campaigns, run_expand_batch_stage
from glom_plugin.expand.expander import expand_audience
from glom_plugin.expand.index import build_index
from glom_plugin.layout import RunLayout
from glom_plugin.models.artifact import TrainedModel
from glom_plugin.serving.engine import ExpansionEngine
from glom_plugin.serving.schemas import ExpandRequest


def clustered(n: int = 3000, dim: int = 12, clusters: int = 10, seed: int = 0) -> tuple[TrainedModel, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    labels = rng.integers(0, clusters, n)
    emb = (centres[labels] + 0.8 * rng.normal(size=(n, dim))).astype(np.float32)
    return TrainedModel("m", np.array([f"user-{i:05d}" for i in range(n)]), emb), labels


MODEL, LABELS = clustered()
FLAT = build_index(MODEL.user_embeddings, kind="flat")


def campaigns(count: int = 12, seed: int = 0) -> list[BatchCampaign]:
    rng = np.random.default_rng(seed)
    out = []
    for c in range(count):
        members = np.flatnonzero(LABELS == c % 10)
        seeds = rng.choice(members if c % 3 else np.arange(MODEL.n_users), size=int(rng.integers(1, 25)), replace=False)
        k = int(rng.integers(1, 150))
        threshold = None if c % 4 else float(rng.uniform(0.3, 0.8))
        out.append(BatchCampaign(f"c{c}", seeds, k, threshold))
    return out


def online(campaign: BatchCampaign, aggregation: str):
    cfg = ExpandConfig(aggregation=aggregation, threshold=campaign.threshold)
    return expand_audience(MODEL, MODEL.user_ids[campaign.seed_rows].tolist(), cfg, k=campaign.k, index=FLAT)


@pytest.mark.parametrize("aggregation", ["mean", "max", "probabilistic"])
@pytest.mark.parametrize("block_bytes,state_entries", [(1 << 20, 1 << 20), (4096, 300)])
@pytest.mark.parametrize("threads", [1, 3])
def test_batch_equals_the_online_path(aggregation, block_bytes, state_entries, threads):
    """Small blocks and a tiny state force many blocks, several chunks and many merges; with 3 threads the
    blocks finish out of order and prune with stale k-th bests, and the answer must not change."""
    chunked = campaigns()
    got = list(rank_campaigns(MODEL.user_embeddings, chunked, aggregation, block_bytes=block_bytes,
                              state_entries=state_entries, threads=threads))
    assert [g.campaign.name for g in got] == [c.name for c in chunked]
    for campaign, ranking in zip(chunked, got, strict=True):
        want = online(campaign, aggregation)
        np.testing.assert_array_equal(ranking.rows, want.rows)
        np.testing.assert_array_equal(ranking.scores, want.scores)  # bit for bit
        assert not set(ranking.rows.tolist()) & set(campaign.seed_rows.tolist())
        if campaign.threshold is not None:
            assert (ranking.scores >= campaign.threshold).all()


def test_engine_batch_equals_engine_online_and_reports_bad_campaigns():
    engine = ExpansionEngine(MODEL, GlomConfig().with_overrides(**{"serving.index_kind": "flat"}), uri="t")
    rng = np.random.default_rng(4)
    requests = [
        ExpandRequest(seed_ids=MODEL.user_ids[rng.choice(np.flatnonzero(LABELS == c), 8, replace=False)].tolist(),
                      k=40, aggregation=agg, campaign=f"r{c}", explain=c == 1)
        for c, agg in enumerate(["mean", "max", "probabilistic", "mean"])
    ]
    requests.insert(2, ExpandRequest(seed_ids=["ghost"], campaign="ghosts"))
    answers = engine.expand_many(requests)
    assert [a.campaign for a in answers] == [r.campaign for r in requests]
    assert "none of the 1 seed ids is known" in answers[2].error
    for request, answer in zip(requests, answers, strict=True):
        if request.campaign == "ghosts":
            continue
        alone = engine.expand(request)
        assert [r.user_id for r in answer.lookalikes] == [r.user_id for r in alone.lookalikes]
        assert [r.score for r in answer.lookalikes] == [r.score for r in alone.lookalikes]
        assert [r.nearest_seeds for r in answer.lookalikes] == [r.nearest_seeds for r in alone.lookalikes]


def test_sorted_ids_resolve_known_and_unknown():
    ids = SortedIds(np.array(["b", "aa", "c"]))
    assert ids.rows(["c", "aa", "zz", "aaa", "b"]).tolist() == [2, 1, -1, -1, 0]


def test_campaign_files(tmp_path):
    jsonl = tmp_path / "campaigns.jsonl"
    jsonl.write_text('{"campaign": "a", "seed_ids": ["x", "y"], "k": 5}\n\n{"seed_ids": ["z"], "threshold": 0.5}\n')
    specs = read_campaigns(jsonl)
    assert [(s.name, s.seed_ids, s.k, s.threshold) for s in specs] == [("a", ["x", "y"], 5, None), ("campaign-2", ["z"], None, 0.5)]
    for bad, needle in [('{"seed_ids": []}', "line 1, field seed_ids"), ('{"seed_ids": ["x"], "k": 0}', "field k"),
                        ('{"seed_ids": ["x"], "colour": 1}', "unknown field"), ("[1]", "JSON object"), ("{oops", "not JSON"),
                        ('{"seed_ids": ["x"], "aggregation": "median"}', "aggregation")]:
        jsonl.write_text(bad + "\n")
        with pytest.raises(ValueError, match=needle):
            read_campaigns(jsonl)
    folder = tmp_path / "seeds"
    folder.mkdir()
    (folder / "spring.txt").write_text("x\ny\n")
    (folder / "autumn.csv").write_text("user_id\nz\n")
    assert [(s.name, s.seed_ids) for s in read_campaigns(folder)] == [("autumn", ["z"]), ("spring", ["x", "y"])]


def test_expand_batch_stage_and_cli_write_the_online_answers(tmp_path):
    layout = RunLayout.at(tmp_path / "run")
    MODEL.save(layout.glm_dir)
    specs = campaigns(6, seed=3)
    lines = [json.dumps({"campaign": c.name, "seed_ids": MODEL.user_ids[c.seed_rows].tolist(), "k": c.k,
                         "threshold": c.threshold}) for c in specs]
    lines.append(json.dumps({"campaign": "nobody", "seed_ids": ["ghost"]}))
    (tmp_path / "c.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out" / "lookalikes.parquet"
    refused = run_expand_batch_stage(GlomConfig(), layout, tmp_path / "c.jsonl", out, progress=False)
    small = [c.name for c in specs if len(c.seed_rows) < 10]
    assert small and set(refused.errors) == {"nobody", *small}  # expand.min_seeds=10: k-anonymity
    assert "min_seeds" in refused.errors[small[0]] and "ghost" not in json.dumps(refused.__dict__)
    cfg = GlomConfig().with_overrides(**{"expand.min_seeds": 1})
    summary = run_expand_batch_stage(cfg, layout, tmp_path / "c.jsonl", out, progress=False)
    assert (summary.campaigns, summary.scored) == (7, 6) and "nobody" in summary.errors
    table = pd.read_parquet(out)
    for campaign in specs:
        rows = table[table["campaign"] == campaign.name]
        want = online(campaign, "mean")
        assert rows["user_id"].tolist() == want.user_ids.tolist() and rows["rank"].tolist() == list(range(1, len(want.rows) + 1))
    assert json.loads(out.with_name(out.name + ".summary.json").read_text())["errors"].keys() == {"nobody"}
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]

    from glom_plugin.cli import app

    again = tmp_path / "cli.parquet"
    result = CliRunner().invoke(app, ["expand-batch", "--campaigns", str(tmp_path / "c.jsonl"), "--out", str(again),
                                      "--run-dir", str(tmp_path / "run"), "--set", "expand.min_seeds=1"])
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(pd.read_parquet(again), table)
