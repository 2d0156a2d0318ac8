"""`backend` picks each stage's implementation by name (stages/backends.py), never by an if-chain."""

from __future__ import annotations

import pydantic
import pytest

from glom_plugin.config import GlomConfig
from glom_plugin.stages.backends import STAGE_BACKENDS, stage_backend


def test_every_stage_has_both_backends_and_they_resolve_without_starting_spark() -> None:
    from glom_plugin.stages.ingest import run_ingest

    assert stage_backend("ingest", "local") is run_ingest
    for stage in STAGE_BACKENDS:
        assert set(STAGE_BACKENDS[stage]) == {"local", "spark"}, stage
        spark_fn = stage_backend(stage, "spark")  # importing a Spark module must not need a session
        assert spark_fn.__module__.endswith("_spark"), (stage, spark_fn.__module__)


def test_a_bad_backend_or_stage_is_refused_with_the_names_that_exist() -> None:
    with pytest.raises(ValueError, match=r"backend for stage 'graph' \(setting `backend`\).*local, spark"):
        stage_backend("graph", "dask")
    with pytest.raises(ValueError, match="no backends registered for stage 'profiles'"):
        stage_backend("profiles", "local")
    with pytest.raises(pydantic.ValidationError):
        GlomConfig(backend="dask")
    assert GlomConfig().backend == "local"
    assert GlomConfig().with_overrides(backend="spark").backend == "spark"
