"""The Great Expectations gate over Spark tables: the same suites (``validations/*.json``), the same
parameters, the same report files and Data Docs as ``platform/gx_gate.py``, with GX Core's Spark data
source instead of its pandas one — the tables are never collected to the driver.

The derived ``_`` columns the suites read (cross-table and per-group facts GX cannot express over one
table) are computed here as Spark columns, each the Spark form of its ``gx_gate.DERIVED_COLUMNS`` twin:
an endpoint's presence in the other table is a left join on the distinct ids, a per-user count a
window count. Failures name table, expectation, column, expected and observed values as the pandas
gate does; examples are the offending values GX reports (a Spark table has no row index to quote).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from glom_plugin.config import GlomConfig
from glom_plugin.layout import RunLayout
from glom_plugin.platform.gx_gate import (
    MAX_EXAMPLES,
    SUITE_TABLES,
    ExpectationFailure,
    TableResult,
    ValidationFailed,
    ValidationReport,
    _build_data_docs,
    _describe_expected,
    _describe_observed,
    _quiet_gx_logging,
    load_suite_spec,
    suite_parameters,
)
from glom_plugin.storage import write_json


def _known(frame: Any, column: str, reference: Any, reference_column: str, flag: str) -> Any:
    """``frame`` + boolean ``flag``: is ``frame[column]`` among the non-null ``reference[reference_column]``."""
    from pyspark.sql import functions as F

    ids = reference.select(F.col(reference_column).alias("_ref")).where(F.col("_ref").isNotNull()).distinct()
    joined = frame.join(ids.withColumn(flag, F.lit(True)), frame[column] == ids["_ref"], "left")
    return joined.drop("_ref").fillna({flag: False})


def _derive_interactions(frame: Any, tables: dict[str, Any]) -> tuple[Any, list[str]]:
    items = tables.get("items")
    if items is None or "item_id" not in frame.columns:
        return frame, ["_item_known: no item catalogue given, so item endpoints were not checked"]
    return _known(frame, "item_id", items, "item_id", "_item_known"), []


def _derive_polarity(frame: Any, tables: dict[str, Any]) -> tuple[Any, list[str]]:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    skipped: list[str] = []
    if {"polarity_source", "sentiment"} <= set(frame.columns):
        frame = frame.withColumn(
            "_source_matches_sentiment", (F.col("polarity_source") == "rating") == F.col("sentiment").isNull()
        )
    if "user_id" in frame.columns:
        frame = frame.withColumn("_user_n_edges", F.count(F.lit(1)).over(Window.partitionBy("user_id")))
    items = tables.get("items")
    if items is None or "item_id" not in frame.columns:
        skipped.append("_item_known: no item catalogue given, so item endpoints were not checked")
    else:
        frame = _known(frame, "item_id", items, "item_id", "_item_known")
    return frame, skipped


def _derive_similarity(frame: Any, tables: dict[str, Any]) -> tuple[Any, list[str]]:
    from pyspark.sql import functions as F

    if not {"user_a", "user_b"} <= set(frame.columns):
        return frame, []
    a, b = F.col("user_a"), F.col("user_b")
    frame = frame.withColumn("_self_loop", a == b).withColumn(
        "_ordered", (a.cast("string") < b.cast("string")) & a.isNotNull() & b.isNotNull()
    )
    users = tables.get("polarity_edges", tables.get("interactions"))
    if users is None or "user_id" not in users.columns:
        return frame, ["_user_a_known/_user_b_known: no polarity_edges or interactions table given"]
    frame = _known(frame, "user_a", users, "user_id", "_user_a_known")
    return _known(frame, "user_b", users, "user_id", "_user_b_known"), []


DERIVED_COLUMNS_SPARK = {
    "interactions": _derive_interactions,
    "polarity_edges": _derive_polarity,
    "similarity_edges": _derive_similarity,
}


def validate_spark_tables(
    tables: dict[str, Any],
    out_dir: str | Path,
    cfg: GlomConfig,
    suites_dir: str | Path | None = None,
    raise_on_failure: bool = True,
) -> ValidationReport:
    """``gx_gate.validate_tables`` for Spark DataFrames: same suites, files and ``ValidationFailed``."""
    start = time.perf_counter()
    _quiet_gx_logging()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_spark("glom-spark")
    parameters = suite_parameters(cfg)

    results: dict[str, TableResult] = {}
    for table, frame in tables.items():
        if table not in SUITE_TABLES:
            continue
        spec = load_suite_spec(table, suites_dir)
        derive = DERIVED_COLUMNS_SPARK.get(table, lambda f, t: (f, []))
        prepared, skipped = derive(frame, tables)
        prepared = prepared.persist()
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
            column = kwargs.get("column") or (",".join(kwargs["column_list"]) if "column_list" in kwargs else None)
            values = (dict(item.result).get("partial_unexpected_list") or [])[:MAX_EXAMPLES]
            failures.append(
                ExpectationFailure(
                    table=table,
                    expectation=config.type,
                    column=column,
                    expected=_describe_expected(config.type, kwargs),
                    observed=_describe_observed(dict(item.result), dict(item.exception_info or {})),
                    why=str((config.meta or {}).get("why", "")),
                    examples=[{column or "value": value} for value in values],
                )
            )
        results[table] = TableResult(
            table=table,
            success=bool(outcome.success),
            n_rows=int(frame.count()),
            n_expectations=len(outcome.results),
            failures=failures,
            skipped=skipped,
            results_path=str(results_path),
        )
        prepared.unpersist()

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


def run_validate_spark(cfg: GlomConfig, layout: RunLayout) -> ValidationReport:
    """`glom validate` on Spark: the ingested interactions and items, read by Spark from the run dir."""
    from glom_plugin.spark_session import get_spark_session

    spark = get_spark_session("glom-validate")
    tables: dict[str, Any] = {}
    for name, path in (("interactions", layout.interactions), ("items", layout.items)):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run `glom ingest` first")
        tables[name] = spark.read.parquet(str(path))
    return validate_spark_tables(tables, layout.validation_dir / "ingest", cfg)
