"""`glom validate`, the stage: the GX suites over the ingested interactions and items.

It reads each table with only the columns its suite checks (``gx_gate.read_for_suite``: the review text,
most of the interactions file, is never loaded), runs the gate (``gx_gate.validate_tables``, which writes
the results, Data Docs and ``validation_report.json`` under ``layout.validation_dir / "ingest"``) and adds
a ``profile`` to that report: seconds and peak RSS of the read and of GX.
"""

from __future__ import annotations

import pandas as pd

from glom_plugin.config import GlomConfig
from glom_plugin.layout import RunLayout
from glom_plugin.platform.gx_gate import ValidationReport, read_for_suite, validate_tables
from glom_plugin.stages.meter import StageMeter
from glom_plugin.storage import write_json


def run_validate(cfg: GlomConfig, layout: RunLayout) -> ValidationReport:
    """Raises ``ValidationFailed`` (after writing the results) when an expectation fails, and
    ``FileNotFoundError`` when ingestion has not run."""
    meter = StageMeter()
    tables: dict[str, pd.DataFrame] = {}
    with meter.section("read"):
        for name, path in (("interactions", layout.interactions), ("items", layout.items)):
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found: run `glom ingest` first")
            tables[name] = read_for_suite(path, name)
    out_dir = layout.validation_dir / "ingest"
    try:
        with meter.section("gx"):
            report = validate_tables(tables, out_dir, cfg)
    finally:
        meter.close()
    report.profile = meter.figures()
    write_json(report.to_dict(), out_dir / "validation_report.json")
    return report
