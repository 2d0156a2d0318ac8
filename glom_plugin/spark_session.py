"""The one place a local SparkSession is built (FACTS.md "Spark").

Loopback only: ``SPARK_LOCAL_IP`` and ``spark.driver.host`` = 127.0.0.1 (without them Spark makes a
reverse-DNS lookup off the machine); no web UI; Arrow on so pandas <-> Spark moves columnar data.
pyspark is imported inside the function: it is an optional dependency (``pip install glom-plugin[spark]``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession


def get_spark_session(
    app_name: str = "glom-plugin", cores: int = 2, driver_memory: str = "2g"
) -> SparkSession:
    """A local[cores] session on loopback (reused if one is already running in this process)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", os.environ.get("PYSPARK_PYTHON", _python()))
    try:
        from pyspark.sql import SparkSession
    except ModuleNotFoundError as error:  # pragma: no cover - depends on the install
        raise ModuleNotFoundError(
            "the Spark backends need pyspark: pip install 'glom-plugin[spark]'"
        ) from error
    local_dir = Path(tempfile.gettempdir()) / "glom-spark"
    local_dir.mkdir(parents=True, exist_ok=True)
    return (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.memory", driver_memory)
        .config("spark.sql.shuffle.partitions", str(max(2, 2 * cores)))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.local.dir", str(local_dir))
        .getOrCreate()
    )


def _python() -> str:
    import sys

    return sys.executable
