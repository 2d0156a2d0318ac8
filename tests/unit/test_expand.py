"""Expansion (§3.7): seeds -> ranked lookalikes; seeds never returned, unknown seeds reported, T and k
respected, explanations, the faiss index kinds, seed files and the expand stage."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from glom_plugin.config import ExpandConfig, GlomConfig
from glom_plugin.expand.expander import expand_audience, read_seed_file
from glom_plugin.expand.index import IvfParams, build_index, choose_kind, ivf_params, search
from glom_plugin.layout import RunLayout
from glom_plugin.models.artifact import TrainedModel
from glom_plugin.stages.expand import run_expand_stage


def clustered_model(
    n_per_cluster: int = 40, n_clusters: int = 3, dim: int = 8, seed: int = 0
) -> TrainedModel:
    """Users in tight clusters around orthogonal directions; cluster c's users are ids c-000, c-001, ..."""
    rng = np.random.default_rng(seed)
    centers = np.eye(n_clusters, dim) * 3.0
    rows, ids = [], []
    for c in range(n_clusters):
        rows.append(centers[c] + rng.normal(0, 0.3, (n_per_cluster, dim)))
        ids += [f"{c}-{i:03d}" for i in range(n_per_cluster)]
    return TrainedModel("glom-attn1", np.array(ids), np.concatenate(rows).astype(np.float32))


SEEDS = ["0-000", "0-001", "0-002", "0-003"]


@pytest.mark.parametrize("aggregation", ["max", "mean", "probabilistic"])
def test_lookalikes_come_from_the_seed_cluster_and_exclude_seeds(aggregation):
    model = clustered_model()
    result = expand_audience(model, SEEDS, ExpandConfig(aggregation=aggregation, top_k=30))
    found = result.lookalikes["user_id"].tolist()
    assert len(found) == 30 and not set(found) & set(SEEDS)
    assert all(u.startswith("0-") for u in found)
    assert result.lookalikes["score"].is_monotonic_decreasing
    assert result.lookalikes["rank"].tolist() == list(range(1, 31))
    assert result.candidate_source == "exact"


def test_unknown_seeds_are_reported_not_fatal_and_all_unknown_fails():
    model = clustered_model()
    result = expand_audience(model, SEEDS + ["nobody", "0-000"], ExpandConfig(top_k=5))
    assert result.unknown_seeds == ["nobody"]
    assert result.seeds_used == SEEDS  # the duplicate counts once
    with pytest.raises(ValueError, match="none of the 2 seed ids is known"):
        expand_audience(model, ["x", "y"], ExpandConfig())
    with pytest.raises(ValueError, match="empty"):
        expand_audience(model, [], ExpandConfig())


def test_seed_ids_of_other_types_resolve_as_their_text_and_ids_follow_the_rows():
    """numpy strings and ints are looked up by their str (the fast path takes plain str only), the ids
    reported back are plain str, and ``user_ids`` are the model's ids of ``rows`` in rank order."""
    model = TrainedModel("m", np.array(["10", "11", "12", "13", "14", "15"]),
                         np.eye(6, 3, dtype=np.float32) + np.float32(0.1))
    plain = expand_audience(model, ["10", "11"], ExpandConfig(top_k=3))
    for given in (np.array(["10", "11"]).tolist(), list(np.array(["10", "11"])), [10, 11], ["10", 11]):
        result = expand_audience(model, given, ExpandConfig(top_k=3))
        assert result.seeds_used == ["10", "11"] and all(type(s) is str for s in result.seeds_used)
        assert result.rows.tolist() == plain.rows.tolist() and result.scores.tolist() == plain.scores.tolist()
    assert plain.user_ids.tolist() == model.user_ids[plain.rows].tolist() == plain.lookalikes["user_id"].tolist()
    assert expand_audience(model, ["10", 99], ExpandConfig(top_k=3)).unknown_seeds == ["99"]


def test_threshold_and_top_k_are_respected():
    model = clustered_model()
    everyone = expand_audience(model, SEEDS, ExpandConfig(top_k=1000))
    assert len(everyone.lookalikes) == model.n_users - len(SEEDS)  # k larger than the population
    above = expand_audience(model, SEEDS, ExpandConfig(threshold=0.5), k=0)
    assert (above.lookalikes["score"] >= 0.5).all()
    assert len(above.lookalikes) == int((everyone.lookalikes["score"] >= 0.5).sum())
    both = expand_audience(model, SEEDS, ExpandConfig(threshold=0.5, top_k=10))
    assert len(both.lookalikes) == 10 and (both.lookalikes["score"] >= 0.5).all()
    none = expand_audience(model, SEEDS, ExpandConfig(threshold=1.01, top_k=10))
    assert none.lookalikes.empty
    with pytest.raises(ValueError, match="threshold"):
        expand_audience(model, SEEDS, ExpandConfig(), k=0)


def test_explanations_name_nearest_seeds_and_shared_items():
    model = clustered_model()
    interactions = pd.DataFrame(
        {"user_id": ["0-000", "0-000", "0-010", "0-010", "0-011"], "item_id": ["a", "b", "b", "c", "z"]}
    )
    result = expand_audience(model, SEEDS, ExpandConfig(top_k=40), explain=True, interactions=interactions)
    table = result.lookalikes.set_index("user_id")
    for seeds, scores in zip(table["nearest_seeds"], table["nearest_seed_scores"], strict=True):
        assert len(seeds) == 3 and set(seeds) <= set(SEEDS) and scores == sorted(scores, reverse=True)
    row = table.loc["0-010"]
    expected = ["b"] if "0-000" in row["nearest_seeds"] else []
    assert row["shared_items"] == expected
    assert table.loc["0-011", "shared_items"] == []


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_index_kinds_find_the_nearest_users(kind):
    model = clustered_model(n_per_cluster=400)
    index = build_index(model.user_embeddings, kind=kind)
    scores, ids = search(index, model.user_embeddings[:3], k=10)
    assert ids.shape == (3, 10) and (ids[:, 0] == np.arange(3)).all()
    assert (ids < 400).all()  # all from cluster 0
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    result = expand_audience(model, SEEDS, ExpandConfig(top_k=50), index=index)
    assert result.candidate_source == kind
    assert not set(result.lookalikes["user_id"]) & set(SEEDS)
    assert all(u.startswith("0-") for u in result.lookalikes["user_id"])
    exact = expand_audience(model, SEEDS, ExpandConfig(top_k=50))
    overlap = len(set(exact.lookalikes["user_id"]) & set(result.lookalikes["user_id"])) / 50
    assert overlap >= 0.9  # ANN candidates, exact re-scoring


def test_index_kind_and_ivf_parameters_follow_size():
    assert choose_kind(1_000) == "flat" and choose_kind(100_000) == "ivf" and choose_kind(5_000_000) == "ivf"
    # ~sqrt(n) lists as a power of two, the quantiser trained on a 64-per-list sample, not on every user
    assert ivf_params(1_000_000) == IvfParams(nlist=1024, nprobe=16, train_size=65_536)
    assert ivf_params(100_000).nlist == 256 and ivf_params(100_000, nprobe=4).nprobe == 4
    assert ivf_params(500).nlist <= 500 // 64 and ivf_params(500).nprobe <= ivf_params(500).nlist


def test_ivf_build_trains_on_a_sample_and_keeps_every_user():
    model = clustered_model(n_per_cluster=2000, n_clusters=4, dim=8)
    index = build_index(model.user_embeddings, kind="ivf", nprobe=2)
    assert index.index.ntotal == model.n_users and index.index.nprobe == 2 and not index.exact
    scores, ids = search(index, model.user_embeddings[[0, 2500]], k=5)
    assert ids[0, 0] == 0 and ids[1, 0] == 2500  # each user is its own nearest neighbour


def test_seed_files(tmp_path):
    plain = tmp_path / "seeds.txt"
    plain.write_text("0-000\n\n 0-001 \n")
    assert read_seed_file(plain) == ["0-000", "0-001"]
    table = tmp_path / "seeds.csv"
    table.write_text("user_id,campaign\n0-000,c1\n0-002,c1\n")
    assert read_seed_file(table) == ["0-000", "0-002"]
    bad = tmp_path / "bad.csv"
    bad.write_text("uid\n0-000\n")
    with pytest.raises(ValueError, match="bad.csv, line 1.*user_id"):
        read_seed_file(bad)
    blank = tmp_path / "blank.csv"
    blank.write_text('user_id\n0-000\n""\n')
    with pytest.raises(ValueError, match="line 3, field user_id"):
        read_seed_file(blank)
    spaced = tmp_path / "spaced.txt"
    spaced.write_text("0-000\n0 001\n")
    with pytest.raises(ValueError, match="line 2"):
        read_seed_file(spaced)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match="empty"):
        read_seed_file(empty)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_expand_stage_writes_lookalikes_and_summary(tmp_path, suffix):
    layout = RunLayout.at(tmp_path / "run")
    clustered_model().save(layout.glm_dir)
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("\n".join(SEEDS + ["ghost"]))
    cfg = GlomConfig().with_overrides(**{"expand.top_k": 12, "expand.min_seeds": 4})
    out = tmp_path / f"lookalikes{suffix}"
    result = run_expand_stage(cfg, layout, seeds, out)
    written = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert written["user_id"].tolist() == result.lookalikes["user_id"].tolist() and len(written) == 12
    summary = json.loads(out.with_name(out.name + ".summary.json").read_text())
    # "ghost" is not a hashed id (maybe a raw one given by mistake): counted, never written
    assert summary["unknown_seeds"] == [] and summary["n_unknown_not_hashed"] == 1 and summary["n_lookalikes"] == 12
    assert "ghost" not in out.with_name(out.name + ".summary.json").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_trained_model_summary_is_short_and_json_ready():
    model = clustered_model()
    model.metrics = {"glm": {"loss": [0.9, 0.4], "val_mrr": [0.1, 0.3], "device": "cpu"}, "relations": {"likes": 3}}
    summary = model.summary()
    assert summary["n_users"] == model.n_users and summary["dim"] == model.dim
    assert summary["glm"] == {"loss": 0.4, "val_mrr": 0.3, "device": "cpu", "epochs_logged": 2}
    assert summary["relations"] == {"likes": 3}
    json.dumps(summary)  # printable by `glom train`


def test_raw_seed_ids_are_never_echoed_and_the_error_points_to_hash_ids(tmp_path, capsys):
    """Found 5: raw seed ids reached expand/*.summary.json, stdout and the error message."""
    layout = RunLayout.at(tmp_path / "run")
    clustered_model().save(layout.glm_dir)
    raw = tmp_path / "raw.txt"
    raw.write_text("alice@example.com\nbob@example.com\n")
    with pytest.raises(ValueError, match="glom hash-ids") as err:
        run_expand_stage(GlomConfig(), layout, raw, tmp_path / "out.csv")
    assert "alice" not in str(err.value) and "2 of them do not look like hashed ids" in str(err.value)
    hashed_unknown = "0123456789abcdef0123"
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("\n".join(SEEDS + ["carol@example.com", hashed_unknown]))
    cfg = GlomConfig().with_overrides(**{"expand.min_seeds": 4})
    result = run_expand_stage(cfg, layout, mixed, tmp_path / "out.csv")
    summary = result.summary()
    assert summary["unknown_seeds"] == [hashed_unknown] and summary["n_unknown_seeds"] == 2
    assert "carol" not in (tmp_path / "out.csv.summary.json").read_text() + capsys.readouterr().out


@pytest.mark.parametrize("action", ["refuse", "warn"])
def test_min_seeds_k_anonymity(tmp_path, capsys, action):
    layout = RunLayout.at(tmp_path / "run")
    clustered_model().save(layout.glm_dir)
    few = tmp_path / "few.txt"
    few.write_text("\n".join(SEEDS + ["ghost"] * 20))  # 4 known seeds; unknown ones do not count
    cfg = GlomConfig().with_overrides(**{"expand.min_seeds": 10, "expand.min_seeds_action": action})
    if action == "refuse":
        with pytest.raises(ValueError, match="only 4 known seed.*expand.min_seeds=10"):
            run_expand_stage(cfg, layout, few, tmp_path / "out.csv")
        assert not (tmp_path / "out.csv").exists()
    else:
        run_expand_stage(cfg, layout, few, tmp_path / "out.csv")
        assert "only 4 known seed" in capsys.readouterr().err and (tmp_path / "out.csv").exists()


def test_seed_files_with_bom_crlf_and_latin1(tmp_path):
    """Found 6: a BOM dropped the first seed; latin-1 gave a bare UnicodeDecodeError."""
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf0-000\r\n0-001\r\n")
    assert read_seed_file(bom) == ["0-000", "0-001"]
    bom_csv = tmp_path / "bom.csv"
    bom_csv.write_bytes(b"\xef\xbb\xbfuser_id,score\r\n0-000,0.5\r\n")
    assert read_seed_file(bom_csv) == ["0-000"]
    latin = tmp_path / "latin.txt"
    latin.write_bytes("0-000\nren\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin.txt, line 2: not UTF-8 \(byte 0xe9\)"):
        read_seed_file(latin)
