"""The Great Expectations gate: the suites in ``validations/*.json`` run over a stage's tables, and a
failure stops the pipeline with a report a person can act on.

Why a gate and where: bad rows that reach the knowledge graph silently distort every embedding trained
on it, so `glom validate` checks the ingested interactions and items, and `glom graph` checks the
polarity and similarity edges *before* the graph is built (§3.1, §3.3, §3.4 invariants: values on
[0, 1], similarity ≥ t_sim, no self-loops, no dangling endpoints, minimum interactions per user).

The suites are data (GX's own expectation JSON: ``type``, ``kwargs``, ``meta``), one file per table;
``{"$PARAMETER": name}`` values come from the config (``suite_parameters``). Checks GX cannot express
over one table (an endpoint that must exist in another table, per-user counts) read a *derived*
boolean/count column, prefixed ``_``, that ``DERIVED_COLUMNS`` computes in pandas just before
validation. GX runs in an ephemeral context (no files of its own, no network, progress bars off);
results JSON and the Data Docs HTML are written into the run's validation directory.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glom_plugin.config import GlomConfig
from glom_plugin.data.hashing import HASH_CHARS
from glom_plugin.storage import write_json

DEFAULT_SUITES_DIR = Path(__file__).resolve().parents[2] / "validations"
# Table name -> suite file (validations/<name>.json).
SUITE_TABLES = ("interactions", "items", "polarity_edges", "similarity_edges")
MAX_EXAMPLES = 5
_KWARGS_NOT_EXPECTED = {"batch_id", "column", "column_list", "result_format"}


@dataclass
class ExpectationFailure:
    """One failed expectation: what was expected, what was seen, and a few offending rows."""

    table: str
    expectation: str
    column: str | None
    expected: str
    observed: str
    why: str
    examples: list[dict[str, Any]] = field(default_factory=list)

    def render(self) -> str:
        where = f"column {self.column!r}" if self.column else "table"
        lines = [
            f"  [{self.table}] {self.expectation} on {where}",
            f"      expected: {self.expected}",
            f"      observed: {self.observed}",
        ]
        if self.why:
            lines.append(f"      why: {self.why}")
        for example in self.examples:
            lines.append(f"      e.g. {example}")
        return "\n".join(lines)


@dataclass
class TableResult:
    table: str
    success: bool
    n_rows: int
    n_expectations: int
    failures: list[ExpectationFailure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    results_path: str | None = None


@dataclass
class ValidationReport:
    success: bool
    tables: dict[str, TableResult]
    out_dir: str
    data_docs_index: str | None
    seconds: float
    # Seconds and peak RSS per part ({name: {"s", "peak_mb"}}), where the caller measured them.
    profile: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def failures(self) -> list[ExpectationFailure]:
        return [failure for result in self.tables.values() for failure in result.failures]

    def render(self) -> str:
        head = "validation passed" if self.success else "validation FAILED"
        lines = [f"{head} ({len(self.tables)} tables, {self.seconds:.1f}s); results in {self.out_dir}"]
        for result in self.tables.values():
            status = "ok" if result.success else f"{len(result.failures)} failed"
            lines.append(
                f"- {result.table}: {result.n_rows} rows, {result.n_expectations} expectations, {status}"
            )
            lines.extend(f"    skipped: {reason}" for reason in result.skipped)
        if self.failures:
            lines.append("failures:")
            lines.extend(failure.render() for failure in self.failures)
        if self.data_docs_index:
            lines.append(f"Data Docs: {self.data_docs_index}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ValidationFailed(RuntimeError):
    """Raised by the gate; ``str(error)`` is the readable report, ``error.report`` the structured one."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.render())
        self.report = report


# ---------------------------------------------------------------------------------------------------
# Derived columns: cross-table and per-group facts, computed in pandas before GX sees the table.
# Each function returns the table with its columns added and a list of checks it had to skip (with why).
# ---------------------------------------------------------------------------------------------------
Derivation = Callable[[pd.DataFrame, dict[str, pd.DataFrame]], tuple[pd.DataFrame, list[str]]]


def _known(values: pd.Series, reference: pd.Series) -> np.ndarray:
    return values.isin(pd.Index(reference.dropna().unique())).to_numpy()


def _derive_interactions(
    frame: pd.DataFrame, tables: dict[str, pd.DataFrame]
) -> tuple[pd.DataFrame, list[str]]:
    items = tables.get("items")
    if items is None or len(items) == 0 or "item_id" not in frame:
        return frame, ["_item_known: no item catalogue given, so item endpoints were not checked"]
    return frame.assign(_item_known=_known(frame["item_id"], items["item_id"])), []


def _derive_polarity(frame: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, list[str]]:
    skipped: list[str] = []
    derived: dict[str, Any] = {}
    if {"polarity_source", "sentiment"} <= set(frame.columns):
        derived["_source_matches_sentiment"] = (frame["polarity_source"] == "rating").to_numpy() == frame[
            "sentiment"
        ].isna().to_numpy()
    if "user_id" in frame:
        derived["_user_n_edges"] = (
            frame.groupby("user_id", dropna=False)["user_id"].transform("size").to_numpy()
        )
    items = tables.get("items")
    if items is None or len(items) == 0 or "item_id" not in frame:
        skipped.append("_item_known: no item catalogue given, so item endpoints were not checked")
    else:
        derived["_item_known"] = _known(frame["item_id"], items["item_id"])
    return frame.assign(**derived), skipped


def _derive_similarity(
    frame: pd.DataFrame, tables: dict[str, pd.DataFrame]
) -> tuple[pd.DataFrame, list[str]]:
    derived: dict[str, Any] = {}
    if {"user_a", "user_b"} <= set(frame.columns):
        a, b = frame["user_a"], frame["user_b"]
        derived["_self_loop"] = (a == b).to_numpy()
        derived["_ordered"] = (
            (a.astype(str) < b.astype(str)).to_numpy() & a.notna().to_numpy() & b.notna().to_numpy()
        )
        users = tables.get("polarity_edges", tables.get("interactions"))
        if users is None or "user_id" not in users:
            return frame.assign(**derived), [
                "_user_a_known/_user_b_known: no polarity_edges or interactions table given"
            ]
        derived["_user_a_known"] = _known(a, users["user_id"])
        derived["_user_b_known"] = _known(b, users["user_id"])
    return frame.assign(**derived), []


DERIVED_COLUMNS: dict[str, Derivation] = {
    "interactions": _derive_interactions,
    "polarity_edges": _derive_polarity,
    "similarity_edges": _derive_similarity,
}


def suite_parameters(cfg: GlomConfig) -> dict[str, Any]:
    """Values for the ``$PARAMETER`` placeholders in the suites."""
    return {
        "t_sim": float(cfg.similarity.t_sim),
        "min_corated": int(max(2, cfg.similarity.min_corated)),
        "min_user_interactions": int(cfg.data.min_user_interactions),
        "user_id_regex": rf"^[0-9a-f]{{{HASH_CHARS}}}$",
    }


def load_suite_spec(table: str, suites_dir: str | Path | None = None) -> dict[str, Any]:
    path = Path(suites_dir or DEFAULT_SUITES_DIR) / f"{table}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no expectation suite for table {table!r}: {path} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path}, line {error.lineno}: invalid JSON in expectation suite ({error.msg})"
        ) from error


def _quiet_gx_logging() -> None:
    for name in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _describe_expected(expectation_type: str, kwargs: dict[str, Any]) -> str:
    """``expect_column_values_to_be_between`` + kwargs -> "values to be between: min_value=0.0, max_value=1.0"."""
    phrase = expectation_type.removeprefix("expect_").replace("column_values_", "values ").replace("_", " ")
    parts = [f"{key}={value!r}" for key, value in kwargs.items() if key not in _KWARGS_NOT_EXPECTED]
    return f"{phrase}: {', '.join(parts)}" if parts else phrase


def _exception_message(exception: dict[str, Any] | None) -> str | None:
    """GX reports an error either flat ({"raised_exception", "exception_message"}) or keyed by metric."""
    if not exception:
        return None
    if exception.get("raised_exception"):
        return str(exception.get("exception_message"))
    for value in exception.values():
        if isinstance(value, dict) and value.get("exception_message"):
            return str(value["exception_message"])
    return None


def _describe_observed(result: dict[str, Any], exception: dict[str, Any] | None) -> str:
    message = _exception_message(exception)
    if message:
        return f"error: {message}"
    if "observed_value" in result:
        return repr(result["observed_value"])
    if "unexpected_count" in result:
        total = result.get("element_count")
        percent = result.get("unexpected_percent")
        text = f"{result['unexpected_count']} of {total} rows unexpected"
        if percent is not None:
            text += f" ({percent:.3g}%)"
        values = result.get("partial_unexpected_list")
        if values:
            text += f"; values like {values[:MAX_EXAMPLES]!r}"
        return text
    return json.dumps(result, default=str)[:300]


def _examples(
    frame: pd.DataFrame, result: dict[str, Any], key_columns: list[str], column: str | None
) -> list[dict]:
    index = result.get("partial_unexpected_index_list") or []
    if not index:
        return []
    positions = [i for i in index[:MAX_EXAMPLES] if isinstance(i, (int, np.integer)) and 0 <= i < len(frame)]
    columns = [c for c in [*key_columns, column] if c and c in frame.columns]
    columns = list(dict.fromkeys(columns))
    return [
        {key: _plain(value) for key, value in row.items()}
        for row in frame.iloc[positions][columns].to_dict("records")
    ]


def _plain(value: Any) -> Any:
    """A JSON- and print-friendly scalar (NaN/None -> None, numpy scalars -> Python)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def validate_tables(
    tables: dict[str, pd.DataFrame],
    out_dir: str | Path,
    cfg: GlomConfig,
    suites_dir: str | Path | None = None,
    raise_on_failure: bool = True,
) -> ValidationReport:
    """Run each table's suite (``validations/<name>.json``); write ``<name>.results.json``,
    ``validation_report.json`` and Data Docs (``data_docs/index.html``) into ``out_dir``.

    Tables are named as in ``SUITE_TABLES``; the others in ``tables`` serve the cross-table derived
    checks (e.g. pass ``items`` with ``polarity_edges`` so dangling item endpoints are found).
    Raises ``ValidationFailed`` (after writing everything) when any expectation fails.
    """
    start = time.perf_counter()
    _quiet_gx_logging()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas("glom")
    parameters = suite_parameters(cfg)

    results: dict[str, TableResult] = {}
    for table, frame in tables.items():
        if table not in SUITE_TABLES:
            continue
        spec = load_suite_spec(table, suites_dir)
        key_columns = list(spec.get("meta", {}).get("key_columns", []))
        prepared, skipped = DERIVED_COLUMNS.get(table, lambda f, t: (f, []))(frame, tables)
        prepared = prepared.reset_index(drop=True)
        suite = gx.ExpectationSuite(name=spec.get("name", table))
        for expectation in spec["expectations"]:
            column = expectation.get("kwargs", {}).get("column")
            if isinstance(column, str) and column.startswith("_") and column not in prepared.columns:
                continue  # a derived check its derivation could not compute; the reason is in `skipped`
            suite.add_expectation_configuration(
                ExpectationConfiguration(
                    type=expectation["type"],
                    kwargs=dict(expectation.get("kwargs", {})),
                    meta=expectation.get("meta", {}),
                )
            )
        suite = context.suites.add(suite)
        batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe(f"{table}-whole")
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"validate-{table}", data=batch, suite=suite)
        )
        outcome = definition.run(
            batch_parameters={"dataframe": prepared},
            expectation_parameters=parameters,
            result_format="SUMMARY",
        )
        results_path = write_json(outcome.to_json_dict(), out_dir / f"{table}.results.json")
        failures = []
        for item in outcome.results:
            if item.success:
                continue
            config = item.expectation_config
            kwargs = dict(config.kwargs)
            column = kwargs.get("column") or (
                ",".join(kwargs["column_list"]) if "column_list" in kwargs else None
            )
            failures.append(
                ExpectationFailure(
                    table=table,
                    expectation=config.type,
                    column=column,
                    expected=_describe_expected(config.type, kwargs),
                    observed=_describe_observed(dict(item.result), dict(item.exception_info or {})),
                    why=str((config.meta or {}).get("why", "")),
                    examples=_examples(prepared, dict(item.result), key_columns, kwargs.get("column")),
                )
            )
        results[table] = TableResult(
            table=table,
            success=bool(outcome.success),
            n_rows=len(frame),
            n_expectations=len(outcome.results),
            failures=failures,
            skipped=skipped,
            results_path=str(results_path),
        )

    docs_index = _build_data_docs(context, out_dir / "data_docs")
    report = ValidationReport(
        success=all(result.success for result in results.values()),
        tables=results,
        out_dir=str(out_dir),
        data_docs_index=docs_index,
        seconds=round(time.perf_counter() - start, 3),
    )
    write_json(report.to_dict(), out_dir / "validation_report.json")
    if raise_on_failure and not report.success:
        raise ValidationFailed(report)
    return report


def _build_data_docs(context: Any, site_dir: Path) -> str | None:
    """Render the HTML Data Docs of this context's validation results into ``site_dir``."""
    site_config = {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site_dir.resolve())},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    context.add_data_docs_site(site_name="glom", site_config=site_config)
    urls = context.build_data_docs(site_names=["glom"])
    index = site_dir / "index.html"
    return str(index) if index.is_file() else urls.get("glom")


def suite_columns(spec: dict[str, Any]) -> list[str] | None:
    """The stored columns a suite reads (``column``, ``column_list``, ``column_set`` and its key columns;
    derived ``_`` columns excluded), or None when it needs the whole table (an exact column-set match).
    Why: the ingested interactions hold every review's text, which no interactions expectation reads;
    loading it would make the gate's memory grow with the text (gigabytes at 10M reviews)."""
    columns: list[str] = list(spec.get("meta", {}).get("key_columns", []))
    for expectation in spec.get("expectations", []):
        kwargs = expectation.get("kwargs", {})
        if expectation.get("type") == "expect_table_columns_to_match_set" and kwargs.get("exact_match", True):
            return None
        if expectation.get("type") == "expect_table_columns_to_match_ordered_list":
            return None
        named = [kwargs.get("column"), *kwargs.get("column_list", []), *kwargs.get("column_set", [])]
        columns += [c for c in named if isinstance(c, str) and not c.startswith("_")]
    return list(dict.fromkeys(columns))


def read_for_suite(path: Path, table: str, suites_dir: str | Path | None = None) -> pd.DataFrame:
    """``path`` read with only the columns ``table``'s suite names (those the file has: a missing one is
    for the suite to report, not for the read to fail on)."""
    import pyarrow.parquet as pq

    wanted = suite_columns(load_suite_spec(table, suites_dir))
    if wanted is not None:
        present = set(pq.read_schema(path).names)
        wanted = [c for c in wanted if c in present]
    return pd.read_parquet(path, columns=wanted)
