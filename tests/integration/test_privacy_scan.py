"""No raw user id anywhere (issue 14): a small real run from raw ids -> prepare -> profiles -> Feast
(apply, materialize: registry + online store) -> train (MLflow sqlite tracking + registry) -> expand
(with raw ids given by mistake among the seeds), then every byte it wrote is scanned for the raw ids
of its input: Parquet (decoded), JSON, logs and printed output, the MLflow store and artifacts, the
Feast registry and online store. Real stages and services, nothing mocked."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from glom_plugin import pipeline
from glom_plugin.config import GlomConfig
from glom_plugin.data.hashing import hash_user_id
from glom_plugin.data.synthetic import generate_amazon2023

from .platform_support import copy_feature_repo

pytestmark = pytest.mark.integration
SALT = "privacy-scan-salt"
RAW = re.compile(rb"rawacct\d{6}q")  # every raw id of the input has this shape, nothing else does


def raw_input(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """The generated Amazon-2023 files with user ids rewritten to a distinctive raw-id pattern."""
    generated = generate_amazon2023(tmp_path / "generated", 2500, seed=5)
    source = tmp_path / "input"
    source.mkdir()
    mapping: dict[str, str] = {}
    lines = []
    with gzip.open(generated.reviews_path, "rt") as fh:
        for line in fh:
            record = json.loads(line)
            record["user_id"] = mapping.setdefault(record["user_id"], f"rawacct{len(mapping):06d}q")
            lines.append(json.dumps(record))
    (source / "reviews.jsonl").write_text("\n".join(lines) + "\n")
    meta = source / "meta_reviews.jsonl.gz"
    meta.write_bytes(generated.meta_path.read_bytes())
    return source / "reviews.jsonl", meta, list(mapping.values())


def leaks_in(path: Path) -> list[bytes]:
    data = path.read_bytes()
    found = RAW.findall(data)
    if path.suffix == ".parquet":  # compressed pages hide text from a byte scan: decode the table
        found += RAW.findall(pq.read_table(path).to_pandas().to_csv().encode())
    return found


def test_no_raw_id_in_any_artifact_of_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd) -> None:
    monkeypatch.setenv("GLOM_ID_SALT", SALT)
    reviews, meta, raw_ids = raw_input(tmp_path)
    repo = copy_feature_repo(tmp_path / "feature_repo")
    cfg = GlomConfig(run_dir=str(tmp_path / "run"), device="cpu").with_overrides(**{
        "data.source_format": "amazon2023", "data.source_path": str(reviews), "data.meta_path": str(meta),
        "pm.dim": 8, "pm.epochs": 2, "glm.epochs": 2, "features.feast_repo": str(repo),
        "tracking.tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "expand.top_k": 50,
    })
    log = pipeline.prepare(cfg)
    pipeline.profiles(cfg)
    pipeline.features(cfg)
    trained = pipeline.train(cfg)
    pipeline.features(cfg)  # the trained user embeddings go to the online store too

    from glom_plugin.cli import app

    known = [u for u in (hash_user_id(r, SALT) for r in raw_ids[:40]) if u in set(trained.model.user_ids)][:15]
    seeds = tmp_path / "seeds.txt"  # the advertiser's own input file, outside the run
    seeds.write_text("\n".join(known + raw_ids[100:103]) + "\n")  # three raw ids pasted by mistake
    with pytest.raises(SystemExit) as done:
        app(["expand", "--run-dir", cfg.run_dir, "--seeds", str(seeds),
             "--set", f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}"], prog_name="glom")
    assert done.value.code in (0, None)
    printed = capfd.readouterr()
    assert log.seconds and len(known) >= 10

    scanned = [p for root in (tmp_path / "run", tmp_path / "mlartifacts", repo) for p in root.rglob("*") if p.is_file()]
    scanned.append(tmp_path / "mlflow.db")
    kinds = {p.suffix for p in scanned}
    assert {".parquet", ".json", ".db", ".jsonl"} <= kinds and (repo / "data" / "online_store.db").exists()
    leaks = {str(p): sorted(set(found))[:3] for p in scanned if (found := leaks_in(p))}
    assert leaks == {}
    assert [str(p) for p in scanned if SALT.encode() in p.read_bytes()] == []  # the salt is never written
    assert not RAW.findall((printed.out + printed.err).encode()) and SALT not in printed.out + printed.err
    # the scan would see them: the raw ids are in the input, and hashing is what removed them
    assert RAW.findall(reviews.read_bytes()) and hash_user_id(raw_ids[0], SALT) in set(trained.model.user_ids) | {
        hash_user_id(r, SALT) for r in raw_ids}
