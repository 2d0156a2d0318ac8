"""The GX gate: clean tables pass; each kind of corruption stops with a report naming table and expectation."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from glom_plugin.config import GlomConfig
from glom_plugin.platform.gx_gate import ValidationFailed, validate_tables


def uid(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()[:20]


@pytest.fixture()
def cfg() -> GlomConfig:
    return GlomConfig().with_overrides(**{"similarity.t_sim": 0.5, "similarity.min_corated": 2, "data.min_user_interactions": 2})


@pytest.fixture()
def tables() -> dict[str, pd.DataFrame]:
    users = [uid(0), uid(0), uid(1), uid(1), uid(2), uid(2)]
    items_ = ["A", "B", "A", "B", "A", "C"]
    interactions = pd.DataFrame(
        {
            "user_id": users,
            "item_id": items_,
            "rating": [5.0, 3.0, 4.0, 1.0, 5.0, 2.0],
            "rating_norm": [1.0, 0.5, 0.75, 0.0, 1.0, 0.25],
            "text": ["great", None, "good", "bad", None, "meh"],
        }
    )
    items = pd.DataFrame(
        {
            "item_id": ["A", "B", "C"],
            "title": ["a", "b", "c"],
            "main_category": ["M"] * 3,
            "categories": [["M"], ["M"], []],
            "price": [1.0, None, 3.5],
        }
    )
    sentiment = [0.9, np.nan, 0.7, 0.1, np.nan, 0.4]
    polarity = pd.DataFrame(
        {
            "user_id": users,
            "item_id": items_,
            "rating_norm": interactions["rating_norm"],
            "sentiment": sentiment,
            "polarity": [0.95, 0.5, 0.725, 0.05, 1.0, 0.325],
            "liked": [True, True, True, False, True, False],
            "polarity_source": ["rating" if np.isnan(s) else "rating+sentiment" for s in sentiment],
        }
    )
    a, b = sorted([uid(0), uid(1)])
    similarity = pd.DataFrame({"user_a": [a], "user_b": [b], "similarity": [0.9], "n_corated": [2]})
    return {
        "interactions": interactions,
        "items": items,
        "polarity_edges": polarity,
        "similarity_edges": similarity,
    }


def test_clean_tables_pass_and_write_results(tables, cfg, tmp_path) -> None:
    report = validate_tables(tables, tmp_path, cfg)
    assert report.success, report.render()
    assert set(report.tables) == {"interactions", "items", "polarity_edges", "similarity_edges"}
    assert (tmp_path / "data_docs" / "index.html").is_file()
    saved = json.loads((tmp_path / "validation_report.json").read_text())
    assert saved["success"] is True
    assert json.loads((tmp_path / "similarity_edges.results.json").read_text())["success"] is True


def corrupt(tables, table, column, row, value):
    changed = dict(tables)
    frame = tables[table].copy()
    frame[column] = frame[column].astype(object) if value is None else frame[column]
    frame.loc[row, column] = value
    changed[table] = frame
    return changed


@pytest.mark.parametrize(
    ("table", "column", "row", "value", "expectation", "named_column"),
    [
        ("interactions", "user_id", 2, None, "expect_column_values_to_not_be_null", "user_id"),
        ("interactions", "user_id", 2, "raw-account-17", "expect_column_values_to_match_regex", "user_id"),
        ("polarity_edges", "polarity", 1, 1.7, "expect_column_values_to_be_between", "polarity"),
        ("polarity_edges", "item_id", 0, "ZZZ", "expect_column_values_to_be_in_set", "_item_known"),
        ("similarity_edges", "user_b", 0, "self", "expect_column_values_to_be_in_set", "_user_b_known"),
        ("similarity_edges", "similarity", 0, 0.2, "expect_column_values_to_be_between", "similarity"),
    ],
)
def test_corruption_stops_with_readable_report(
    tables, cfg, tmp_path, table, column, row, value, expectation, named_column
):
    bad = corrupt(tables, table, column, row, value)
    with pytest.raises(ValidationFailed) as caught:
        validate_tables(bad, tmp_path, cfg)
    message = str(caught.value)
    assert f"[{table}] {expectation} on column {named_column!r}" in message
    assert "expected:" in message and "observed:" in message
    failing = [f for f in caught.value.report.failures if f.column == named_column]
    assert failing and failing[0].examples, message
    assert (tmp_path / "validation_report.json").is_file()


def test_self_loop_and_dangling_user(tables, cfg, tmp_path) -> None:
    bad = dict(tables)
    sim = tables["similarity_edges"].copy()
    sim.loc[0, "user_b"] = sim.loc[0, "user_a"]
    bad["similarity_edges"] = sim
    with pytest.raises(ValidationFailed) as caught:
        validate_tables(bad, tmp_path, cfg)
    failed = {(f.expectation, f.column) for f in caught.value.report.failures}
    assert ("expect_column_values_to_be_in_set", "_self_loop") in failed
    assert ("expect_column_values_to_be_in_set", "_ordered") in failed
    example = next(f for f in caught.value.report.failures if f.column == "_self_loop").examples[0]
    assert example["user_a"] == example["user_b"]


def test_min_interactions_per_user_and_duplicates(tables, cfg, tmp_path) -> None:
    bad = dict(tables)
    bad["polarity_edges"] = pd.concat(
        [tables["polarity_edges"], tables["polarity_edges"].iloc[[0]]], ignore_index=True
    )
    bad["polarity_edges"].loc[6, "user_id"] = uid(9)  # a new user with a single edge
    bad["interactions"] = pd.concat(
        [tables["interactions"], tables["interactions"].iloc[[0]]], ignore_index=True
    )
    with pytest.raises(ValidationFailed) as caught:
        validate_tables(bad, tmp_path, cfg)
    failed = {(f.table, f.expectation) for f in caught.value.report.failures}
    assert ("polarity_edges", "expect_column_min_to_be_between") in failed
    assert ("interactions", "expect_compound_columns_to_be_unique") in failed


def test_missing_catalogue_skips_item_check_and_says_so(tables, cfg, tmp_path) -> None:
    only = {"interactions": tables["interactions"]}
    report = validate_tables(only, tmp_path, cfg)
    assert report.success
    assert any("no item catalogue" in reason for reason in report.tables["interactions"].skipped)
    assert "skipped: _item_known" in report.render()


def test_missing_column_is_reported_with_the_error(tables, cfg, tmp_path) -> None:
    bad = dict(tables)
    bad["similarity_edges"] = tables["similarity_edges"].drop(columns=["n_corated"])
    with pytest.raises(ValidationFailed) as caught:
        validate_tables(bad, tmp_path, cfg)
    failures = {f.column: f for f in caught.value.report.failures}
    assert "n_corated" in failures and "error:" in failures["n_corated"].observed
    assert "n_corated" in failures["n_corated"].observed


def test_suite_columns_leave_the_review_text_unread(tmp_path) -> None:
    from glom_plugin.platform.gx_gate import load_suite_spec, read_for_suite, suite_columns

    interactions = suite_columns(load_suite_spec("interactions"))
    assert interactions is not None and {"user_id", "item_id", "rating", "rating_norm"} <= set(interactions)
    assert "text" not in interactions and "review_title" not in interactions
    assert suite_columns({"expectations": [{"type": "expect_table_columns_to_match_set",
                                             "kwargs": {"column_set": ["a"], "exact_match": True}}]}) is None
    # A column the suite names but the file lacks is left for the suite to report, not a read error.
    path = tmp_path / "t.parquet"
    pd.DataFrame({"user_id": ["u"], "text": ["long review"]}).to_parquet(path)
    assert list(read_for_suite(path, "interactions").columns) == ["user_id"]
