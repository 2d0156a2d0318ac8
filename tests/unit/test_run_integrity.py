"""Run-directory integrity (issue 14, Found 3): stale and mixed outputs are refused with the command
to run again, temp files of killed runs are cleaned at the next start, a saved PM is reused only when
its whole config agrees."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from glom_plugin import pipeline
from glom_plugin.config import GlomConfig
from glom_plugin.layout import RunLayout
from glom_plugin.run_integrity import StaleInputError, begin_stage, clean_orphans, read_manifest, require
from glom_plugin.stages.train import pm_config_changes


@pytest.fixture(autouse=True)
def _salt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLOM_ID_SALT", "integrity-test")


def reviews(path: Path, n_users: int = 12, n_items: int = 6, shift: int = 0) -> Path:
    rows = [{"user_id": f"U{u}", "parent_asin": f"I{i}", "rating": 1 + (u * i + shift) % 5,
             "text": "good" if (u + i) % 2 else "bad", "timestamp": 1_700_000_000_000 + u}
            for u in range(n_users) for i in range(n_items) if (u + i + shift) % 4]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def cfg_for(tmp_path: Path, source: Path, **overrides: object) -> GlomConfig:
    return GlomConfig(run_dir=str(tmp_path / "run")).with_overrides(
        **{"data.source_format": "amazon2023", "data.source_path": str(source), **overrides})


def test_a_crashed_ingest_leaves_the_old_tables_refused(tmp_path: Path) -> None:
    cfg = cfg_for(tmp_path, reviews(tmp_path / "a.jsonl"))
    pipeline.ingest(cfg)
    layout = RunLayout.at(cfg.run_dir)
    assert read_manifest(layout, "ingest")["status"] == "complete"
    require(layout, "ingest", "test")
    # A crash inside the reader (here: a generic file without the mapped columns) keeps the previous
    # run's tables on disk; before manifests, `glom validate` passed on them.
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    broken = cfg.with_overrides(**{"data.source_format": "generic", "data.source_path": str(bad),
                                    "data.rating_min": 1, "data.rating_max": 5})
    with pytest.raises(ValueError):
        pipeline.ingest(broken)
    assert layout.interactions.exists()
    with pytest.raises(StaleInputError, match=r"ingest stage .* did not finish .*glom prepare --run-dir"):
        pipeline.validate(cfg)


def test_an_edited_output_and_mixed_runs_are_refused(tmp_path: Path) -> None:
    cfg = cfg_for(tmp_path, reviews(tmp_path / "a.jsonl"), **{"data.min_user_interactions": 1,
                                                                 "data.min_item_interactions": 1})
    pipeline.ingest(cfg)
    pipeline.graph(cfg)
    layout = RunLayout.at(cfg.run_dir)
    require(layout, "graph", "test")
    pipeline.ingest(cfg)  # the same input again: the same data, so graph/ is still the graph of ingest/
    require(layout, "graph", "test")
    # prepare again on other data, killed after ingest: a new ingest/ beside the old graph/
    pipeline.ingest(cfg.with_overrides(**{"data.source_path": str(reviews(tmp_path / "b.jsonl", shift=1))}))
    with pytest.raises(StaleInputError, match=r"built from other ingest outputs .*mixed runs.*glom prepare"):
        require(layout, "graph", "glom train")
    with pytest.raises(StaleInputError, match="mixed runs"):
        pipeline.pretrain(cfg)
    # a table replaced by hand
    frame = pd.read_parquet(layout.interactions)
    frame.iloc[:5].to_parquet(layout.interactions)
    with pytest.raises(StaleInputError, match=r"interactions.parquet is not the file the ingest stage wrote"):
        pipeline.validate(cfg)


def test_orphans_of_dead_writers_are_removed_live_ones_kept(tmp_path: Path) -> None:
    layout = RunLayout.at(tmp_path / "run")
    dead = 2**22 + 12345  # above the default pid_max of 4,194,304: no such process
    orphans = [layout.ingest_dir / f".staging-{dead}-abc", layout.graph_dir / f".triples.parquet.{dead}.x1y2.tmp",
               layout.models_dir / f".pm.{dead}.q9.tmp", layout.models_dir / f".glm.old-{dead}"]
    live = layout.graph_dir / f".similarity_edges.parquet.{os.getpid()}.k3.tmp"
    legacy_new = layout.ingest_dir / ".rejects.jsonl.abcd.tmp"  # no pid, recent: may be a live write
    for path in orphans:
        (path.mkdir() if "staging" in path.name or "old" in path.name or path.parent == layout.models_dir
         else path.write_text("x"))
    live.write_text("x")
    legacy_new.write_text("x")
    begin_stage(layout, "ingest")
    assert not any(p.exists() for p in orphans)
    assert live.exists() and legacy_new.exists()
    os.utime(legacy_new, (0, 0))  # an old one without a pid is an orphan too
    assert clean_orphans(layout.root) == [legacy_new]


def test_pm_reuse_compares_the_whole_pm_config() -> None:
    """The saved PM used to be reused whenever ids, relations and dim matched: a changed pm.epochs or
    pm.lr silently reused the old model."""
    cfg = GlomConfig()
    saved = cfg.model_dump()
    assert pm_config_changes(saved, cfg) == []
    changed = cfg.with_overrides(**{"pm.epochs": 3, "pm.lr": 0.5, "seed": 1, "polarity.alpha": 0.2})
    assert pm_config_changes(saved, changed) == ["seed", "pm.epochs", "pm.lr", "polarity.alpha"]
    assert pm_config_changes(saved, cfg.with_overrides(**{"glm.epochs": 3})) == []  # GLM's own settings
