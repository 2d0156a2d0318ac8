"""The bad-input corpus (tests/data/bad_inputs, written by its make_corpus.py) through every reader.

Each case ends one of two ways and nothing else (issue 14): a clear one-line error naming the file
(and line and field where there is one), or quarantined rows with rows in = kept + rejected +
duplicates, where "rows in" is counted by the corpus generator, not by the code under test. Every
reject names its file and line; a truncated or corrupt gzip counts the rows it lost.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from glom_plugin.config import GlomConfig
from glom_plugin.data.ingest import IngestError
from glom_plugin.layout import RunLayout
from glom_plugin.stages.ingest import run_ingest

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"
CASES = json.loads((CORPUS / "cases.json").read_text())
FIELD_REASONS = {"missing field", "empty id", "rating not a number", "rating out of range", "id not a string",
                 "timestamp out of range"}


@pytest.fixture(autouse=True)
def _salt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLOM_ID_SALT", "corpus-salt")


def ingest(case: dict, tmp_path: Path, **extra: object):
    source = tmp_path / case["name"]
    shutil.copytree(CORPUS / case["name"], source)  # error messages name the copy: a path we know
    overrides = {"data.source_format": case["reader"], "data.source_path": str(source / case["source"]),
                 "data.min_user_interactions": 1, "data.min_item_interactions": 1, **case["overrides"], **extra}
    layout = RunLayout.at(tmp_path / "run")
    return source, layout, lambda: run_ingest(GlomConfig().with_overrides(**overrides), layout, echo=lambda _: None)


def test_the_corpus_covers_every_reader() -> None:
    assert {c["reader"] for c in CASES} == {"amazon2023", "amazon2014", "mal", "movielens", "generic"}
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_bad_input_is_an_error_or_counted_quarantine(case: dict, tmp_path: Path) -> None:
    source, layout, run = ingest(case, tmp_path)
    if "error" in case:
        with pytest.raises((IngestError, ValueError)) as err:
            run()
        message = str(err.value)
        assert "\n" not in message and "Traceback" not in message
        assert re.search(case["error"], message), message
        assert not layout.interactions.exists()  # nothing half-written
        if "retry" in case:  # what a forced run keeps and counts
            _, layout, rerun = ingest(case, tmp_path / "retry", **case["retry"])
            report = rerun()
            assert report.rows_read == report.rows_accepted + report.rows_rejected + report.duplicates
            assert abs(report.rows_read - case["true_rows"]) <= 0.3 * case["true_rows"]
        return

    report = run()
    assert report.rows_read == case["rows"], report.summary()
    assert report.rows_read == report.rows_accepted + report.rows_rejected + report.duplicates
    assert report.duplicates == case.get("duplicates", 0)
    files = set(report.source_files)
    rejects = [json.loads(line) for line in layout.rejects.read_text().splitlines()]
    data_rejects = [r for r in rejects if r["file"] in files and r["reason"] != "duplicate"]
    by_reason: dict[str, int] = {}
    for r in data_rejects:
        by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + r.get("rows", 1)
        assert r["line"] is not None and r["line"] >= 1
        assert (r["field"] is not None) == (r["reason"] in FIELD_REASONS), r
    assert by_reason == case["reasons"]
    assert sum(by_reason.values()) == report.rows_rejected
    assert report.meta_rejected == case.get("meta_rejects", 0)
