"""End to end on a tiny community-structured dataset: protocol, table, JSON, plots and the MLflow run.

Two small models live here, reached through the registry's ``module:Class`` name form: an SVD embedding
model (collaborative signal, so it must beat chance) and one whose fit raises (must be reported as
failed, not dropped). The product registry knows neither.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import TruncatedSVD

from glom_plugin.evaluate.report import markdown_table, write_report
from glom_plugin.evaluate.runner import ProtocolTasks, run_evaluation, sweep_embedding_size, sweep_seed_size
from glom_plugin.graph.dataset import LookalikeData
from glom_plugin.models.base import Campaign, EmbeddingLookalikeModel, LookalikeModel
from glom_plugin.platform.mlflow_evaluation import log_to_mlflow
from tests.unit.evaluate_fixtures import small_config, write_run

SVD = "tests.unit.test_runner:SvdLookalikeModel"
BROKEN = "tests.unit.test_runner:BrokenModel"


class SvdLookalikeModel(EmbeddingLookalikeModel):
    """Users as truncated-SVD factors of the user x item polarity matrix; seeds aggregated by config."""

    def fit(self, data: LookalikeData) -> SvdLookalikeModel:
        matrix = data.user_item_matrix("polarity")
        svd = TruncatedSVD(n_components=min(self.config.pm.dim, data.n_items - 1), random_state=self.seed)
        self.embeddings = svd.fit_transform(matrix).astype(np.float32)
        return self


class BrokenModel(LookalikeModel):
    def fit(self, data: LookalikeData) -> BrokenModel:
        raise RuntimeError("boom: this model cannot train")

    def score_campaign(self, campaign: Campaign) -> np.ndarray:
        raise AssertionError("never reached")


@pytest.fixture
def evaluated(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    layout = write_run(tmp_path / "run")
    cfg = small_config(tmp_path / "run", **{"expand.threshold": 0.5, "pm.dim": 8})
    result = run_evaluation(cfg, layout, ["random", SVD, BROKEN], runs=2)
    result.printed = capsys.readouterr().out  # the per-model time/memory lines benchmarks quote
    return cfg, layout, result


def test_protocol_scores_every_model_on_the_same_campaigns(evaluated) -> None:
    cfg, _, result = evaluated
    assert len(result.runs) == 2 and len(result.tasks) == 4
    for record in result.runs:
        items = [c["item_id"] for c in record.campaigns]
        assert [t.item_id for t in record.models["random"].tasks] == items
        assert [t.item_id for t in record.models[SVD].tasks] == items
        assert record.data["n_held_out_edges"] == sum(c["n_positives"] for c in record.campaigns)
        for c in record.campaigns:
            assert c["n_negatives"] == cfg.evaluate.negative_ratio * c["n_positives"]
    # the two runs split differently (other held-out edges -> other similarity graph and scores)
    assert result.runs[0].data["n_similarity"] != result.runs[1].data["n_similarity"]
    assert [t.metrics for t in result.runs[0].models[SVD].tasks] != [
        t.metrics for t in result.runs[1].models[SVD].tasks
    ]
    summary = result.summary()
    # random only ranks: its T is calibrated per campaign on held-out seeds; SVD uses expand.threshold
    assert summary["random"]["runs_ok"] == 2 and summary["random"]["threshold_source"] == "seed-calibrated"
    assert 0.0 <= summary["random"]["precision"]["mean"] <= 1.0
    assert summary[SVD]["runs_ok"] == 2 and summary[SVD]["threshold_source"] == "model"
    assert 0.0 <= summary[SVD]["precision"]["mean"] <= 1.0
    assert all(m.decision_threshold == 0.5 for r in result.runs for n, m in r.models.items() if n == SVD)
    # community structure: the collaborative model beats chance on the same candidates
    assert summary[SVD]["roc_auc"]["mean"] > summary["random"]["roc_auc"]["mean"]
    assert summary[SVD]["roc_auc"]["mean"] > 0.6
    assert summary[SVD]["seconds"]["mean"] > 0 and summary[SVD]["peak_rss_mb"]["mean"] >= 0
    broken = summary[BROKEN]
    assert broken["runs_ok"] == 0 and len(broken["failures"]) == 2
    assert broken["failures"][0]["stage"] == "fit" and "boom" in broken["failures"][0]["error"]
    out = result.printed
    assert "[evaluate] run 0 random: fit" in out and "peak RSS" in out and "FAILED at fit" in out


def test_report_files_and_mlflow_run(evaluated, tmp_path: Path) -> None:
    cfg, layout, result = evaluated
    result.seed_sweep = sweep_seed_size(cfg, layout, [SVD], runs=1)
    result.embedding_sweep = sweep_embedding_size(cfg, layout, [SVD], runs=1)
    assert result.seed_sweep.values == [1, 3] and result.embedding_sweep.values == [4, 8]
    assert result.seed_sweep.results[0].mean_seeds() == 1.0

    paths = write_report(result, tmp_path / "report")
    assert set(paths) == {"results_json", "table", "pr_curves", "embedding_size", "seed_size"}
    for key in ("pr_curves", "embedding_size", "seed_size"):
        data = paths[key].read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000

    def no_nan(token: str) -> float:
        raise AssertionError(f"non-JSON number {token}")

    payload = json.loads(paths["results_json"].read_text(), parse_constant=no_nan)
    run0 = payload["runs"][0]
    assert run0["models"][BROKEN]["status"] == "failed"
    assert len(run0["models"][SVD]["tasks"]) == len(run0["campaigns"])
    assert {"pr_auc", "roc_auc", "precision_at_k", "n_seeds"} <= set(run0["models"][SVD]["tasks"][0])
    assert payload["seed_sweep"]["values"] == [1, 3]

    table = paths["table"].read_text()
    assert table == markdown_table(result)
    partial = (layout.evaluate_dir / "table.partial.md").read_text()  # written after each run
    assert "2 run(s)" in partial and "| random |" in partial
    assert "| Model | Precision | Recall | PR-AUC | ROC-AUC | P@k | R@k | coverage | seconds | peak MB |" in table
    assert "Protocol: `evaluate.candidates=sampled`" in table
    assert "failed (fit): RuntimeError: boom" in table
    assert "| random | " in table and " § | " in table and "evaluate.seed_recall = 0.5" in table
    assert " ± " in table and "n/a†" not in table

    from mlflow.tracking import MlflowClient

    run_id = log_to_mlflow(result, cfg, paths)
    client = MlflowClient(tracking_uri=cfg.tracking_uri())
    run = client.get_run(run_id)
    metrics = run.data.metrics
    svd_key = "tests.unit.test_runner_SvdLookalikeModel"
    assert metrics[f"pr_auc.{svd_key}"] == pytest.approx(result.summary()[SVD]["pr_auc"]["mean"])
    assert "pr_auc.random" in metrics and "precision.random" in metrics
    assert "seconds.random" in metrics and f"runs_ok.{svd_key}" in metrics
    assert metrics["coverage.random"] == pytest.approx(result.summary()["random"]["coverage"])
    assert run.data.params["evaluate.runs"] == "2" and run.data.params["pm.dim"] == "8"
    assert "boom" in run.data.tags[f"failed.{svd_key.replace('SvdLookalikeModel', 'BrokenModel')}"]
    history = client.get_metric_history(run_id, f"sweep.pm.dim.recall_at_k.{svd_key}")
    assert sorted(m.step for m in history) == [4, 8]
    artifacts = {Path(a.path).name for a in client.list_artifacts(run_id, "evaluate")}
    assert {"results.json", "table.md", "pr_curves.png", "seed_size.png", "embedding_size.png"} <= artifacts
    assert (tmp_path / "run" / "mlartifacts").is_dir()  # artifacts beside the sqlite store, not in ./mlruns


def test_without_seed_recall_rank_only_models_have_no_precision(tmp_path: Path) -> None:
    layout = write_run(tmp_path / "run")
    cfg = small_config(tmp_path / "run", **{"evaluate.seed_recall": None})
    result = run_evaluation(cfg, layout, ["random"], runs=1)
    summary = result.summary()["random"]
    assert math.isnan(summary["precision"]["mean"]) and summary["threshold_source"] is None
    assert "| random | n/a† | n/a† |" in markdown_table(result)
    assert not math.isnan(summary["pr_auc"]["mean"])


class CountingModel(SvdLookalikeModel):
    """Records every campaign it is asked to score (to check what calibration passes in)."""

    calls: list[Campaign] = []

    def score_campaign(self, campaign: Campaign) -> np.ndarray:
        type(self).calls.append(campaign)
        return super().score_campaign(campaign)


def test_calibration_scores_held_out_seeds_against_the_other_seeds(tmp_path: Path) -> None:
    layout = write_run(tmp_path / "run")
    cfg = small_config(tmp_path / "run", **{"evaluate.calibration_folds": 3, "pm.dim": 8})
    CountingModel.calls = []
    result = run_evaluation(cfg, layout, ["tests.unit.test_runner:CountingModel"], runs=1)
    main = [c for c in CountingModel.calls if not c.name.endswith("/calibration")]
    folds = [c for c in CountingModel.calls if c.name.endswith("/calibration")]
    assert len(main) == len(result.runs[0].campaigns) and folds
    for campaign in main:
        mine = [c for c in folds if c.name == f"{campaign.name}/calibration"]
        assert len(mine) == min(3, len(campaign.seeds))
        held = np.concatenate([c.candidates for c in mine])
        assert sorted(held.tolist()) == sorted(campaign.seeds.tolist())  # every seed held out once
        for c in mine:
            assert not set(c.candidates) & set(c.seeds)
            assert sorted(np.r_[c.seeds, c.candidates].tolist()) == sorted(campaign.seeds.tolist())
            assert not set(c.candidates) & set(campaign.candidates)  # no candidate label is ever used


def test_realistic_protocol_ranks_the_population_and_tables_the_reference(tmp_path: Path) -> None:
    layout = write_run(tmp_path)
    cfg = small_config(tmp_path, **{"evaluate.candidates": "all"})
    result = run_evaluation(cfg, layout, ["cosine-centroid", "popularity", "random", SVD], runs=1)
    assert result.protocol == "all"
    data = ProtocolTasks.load(cfg, layout).run_inputs(cfg, layout, 0).data  # the same run-0 training data
    n_active = len(np.unique(data.edges["user_idx"]))
    for campaign in result.runs[0].campaigns:
        # every active user outside the seed list is a candidate (the full seed pool is the list here)
        assert campaign["n_candidates"] + campaign["n_seeds"] == n_active
        assert campaign["n_negatives"] == n_active - campaign["n_seeds"] - campaign["n_positives"]
    summary = result.summary()
    assert 0.0 < summary["cosine-centroid"]["coverage"] <= 1.0
    table = markdown_table(result)
    assert "Protocol: `evaluate.candidates=all`" in table
    assert "PR-AUC / cosine-centroid" in table
    row = next(line for line in table.splitlines() if line.startswith("| cosine-centroid |"))
    assert "| 1.00 |" in row  # the reference against itself


class FitCountingModel(EmbeddingLookalikeModel):
    """Random-projection embeddings that count their fits, to prove protocols share one fit."""

    fits = 0

    def fit(self, data: LookalikeData) -> FitCountingModel:
        type(self).fits += 1
        self.embeddings = np.random.default_rng(self.seed).normal(size=(data.n_users, 4))
        return self


def test_protocols_share_one_fit_and_match_single_protocol_runs(tmp_path: Path) -> None:
    from glom_plugin.evaluate.runner import evaluate_protocols

    layout = write_run(tmp_path)
    cfg = small_config(tmp_path)
    counting = "tests.unit.test_runner:FitCountingModel"
    FitCountingModel.fits = 0
    both = evaluate_protocols(cfg, layout, [counting, "cosine-centroid"], ["sampled", "all"], runs=2)
    assert FitCountingModel.fits == 2  # one per run, not one per run and protocol
    assert both["sampled"].protocol == "sampled" and both["all"].protocol == "all"
    for mode, result in both.items():
        alone = run_evaluation(cfg.with_overrides(**{"evaluate.candidates": mode}), layout, ["cosine-centroid"], runs=2)
        assert result.summary()["cosine-centroid"]["pr_auc"] == alone.summary()["cosine-centroid"]["pr_auc"]
        assert [c["n_candidates"] for c in result.runs[1].campaigns] == [
            c["n_candidates"] for c in alone.runs[1].campaigns
        ]
    assert both["all"].runs[0].campaigns[0]["n_candidates"] > both["sampled"].runs[0].campaigns[0]["n_candidates"]
