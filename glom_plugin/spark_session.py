"""The one place a local SparkSession is built (FACTS.md "Spark").

Loopback only: ``SPARK_LOCAL_IP`` and ``spark.driver.host`` = 127.0.0.1 (without them Spark makes a
reverse-DNS lookup off the machine); no web UI and no console progress bar; Arrow on so pandas <-> Spark
moves columnar data. Small by default (``local[2]``, 2 shuffle partitions per core): the development
machine has 2 shared cores. The JVM heap is a quarter of the machine's memory, 2-8 GB
(``default_driver_memory``): in local mode every task runs in the driver's JVM, and at 10M reviews a 2 GB
heap ran out in the minimum-interactions aggregation (its spill readers). ``GLOM_SPARK_CORES`` /
``GLOM_SPARK_DRIVER_MEMORY`` size it for a bigger one; a cluster session created beforehand
(``spark-submit``) is reused as is, since ``getOrCreate`` returns the active session.
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
    app_name: str = "glom-plugin", cores: int | None = None, driver_memory: str | None = None
) -> SparkSession:
    """A local[cores] session on loopback (reused if one is already running in this process)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", os.environ.get("PYSPARK_PYTHON", _python()))
    cores = cores or int(os.environ.get("GLOM_SPARK_CORES", "2"))
    driver_memory = driver_memory or os.environ.get("GLOM_SPARK_DRIVER_MEMORY") or default_driver_memory()
    try:
        from pyspark.sql import SparkSession
    except ModuleNotFoundError as error:  # pragma: no cover - depends on the install
        raise ModuleNotFoundError(
            "the Spark backends need pyspark: pip install 'glom-plugin[spark]'"
        ) from error
    local_dir = Path(tempfile.gettempdir()) / "glom-spark"
    local_dir.mkdir(parents=True, exist_ok=True)
    session = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.memory", driver_memory)
        .config("spark.sql.shuffle.partitions", str(max(2, 2 * cores)))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.local.dir", str(local_dir))
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


def default_driver_memory(total_bytes: int | None = None) -> str:
    """A quarter of this machine's memory, at least 2 GB and at most 8 GB, as a JVM size ("6g" on 24 GB).
    The heap is reserved, not used, until tasks need it."""
    if total_bytes is None:
        total_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return f"{min(8, max(2, total_bytes // 4 // 2**30))}g"


def _python() -> str:
    import sys

    return sys.executable
