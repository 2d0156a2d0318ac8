"""Which implementation runs a stage: ``cfg.backend`` ("local" or "spark") -> a ``module:function`` path.

Both backends of a stage take the same arguments and write the same run-directory artifacts (same
Parquet schemas, names and manifests), so every later stage reads them unchanged and the choice is
one setting (``--set backend=spark``), never an if-chain in the pipeline. Spark modules are imported
only when their entry is asked for, so the local path never pays for pyspark.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from glom_plugin.plugins import load_function

STAGE_BACKENDS: dict[str, dict[str, str]] = {
    "ingest": {
        "local": "glom_plugin.stages.ingest:run_ingest",
        "spark": "glom_plugin.data.ingest_spark:run_ingest_spark",
    },
    "validate": {
        "local": "glom_plugin.stages.validate:run_validate",
        "spark": "glom_plugin.platform.gx_spark:run_validate_spark",
    },
    "graph": {
        "local": "glom_plugin.stages.graph:run_graph_stage",
        "spark": "glom_plugin.stages.prepare_spark:run_graph_stage_spark",
    },
    "expand_batch": {
        "local": "glom_plugin.expand.batch_stage:run_expand_batch_stage",
        "spark": "glom_plugin.expand.batch_spark:run_expand_batch_spark",
    },
}


def stage_backend(stage: str, backend: str) -> Callable[..., Any]:
    """The function that runs ``stage`` on ``backend`` (a registered name or a ``module:function`` path)."""
    if stage not in STAGE_BACKENDS:
        raise ValueError(f"no backends registered for stage {stage!r}; stages: {sorted(STAGE_BACKENDS)}")
    return load_function(backend, STAGE_BACKENDS[stage], f"backend for stage {stage!r} (setting `backend`)")
