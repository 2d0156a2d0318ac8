"""Spark tables <-> the run directory's single-file Parquet artifacts.

Every later stage (and the local backend) reads ``interactions.parquet``, ``polarity_edges.parquet``, ...
as one file with a fixed pyarrow schema. Spark writes a directory of part files, so a Spark table is
written sorted into a staging directory beside the target, and its parts are streamed, in order, into
one file with the artifact's schema (a row group at a time: the driver never holds the table), then
renamed into place (``storage.atomic_path``). Reading is the other way round: ``spark.read.parquet``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from glom_plugin.storage import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

BATCH_ROWS = 1 << 16


def write_single_parquet(
    frame: DataFrame,
    path: str | Path,
    schema: pa.Schema,
    order_by: list[str] | None = None,
    metadata: dict[bytes, bytes] | None = None,
) -> int:
    """Write ``frame`` (its columns named as in ``schema``) to the one file ``path``; return its rows.

    ``order_by``: the row order of the artifact (Spark's sort range-partitions, so part files in name
    order are in that order). ``metadata``: Parquet key-value metadata of the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    target_schema = schema.with_metadata({**(schema.metadata or {}), **(metadata or {})}) if metadata else schema
    selected = frame.select(*schema.names)
    if order_by:
        selected = selected.orderBy(*order_by)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.spark-", dir=path.parent))
    rows = 0
    try:
        parts_dir = staging / "parts"
        selected.write.parquet(str(parts_dir))
        parts = sorted(parts_dir.glob("part-*.parquet"))
        with atomic_path(path) as tmp, pq.ParquetWriter(tmp, target_schema) as writer:
            for part in parts:
                for batch in pq.ParquetFile(part).iter_batches(batch_size=BATCH_ROWS):
                    table = pa.Table.from_batches([batch]).cast(schema).replace_schema_metadata(
                        target_schema.metadata
                    )
                    writer.write_table(table)
                    rows += table.num_rows
            if rows == 0:
                writer.write_table(schema.empty_table().replace_schema_metadata(target_schema.metadata))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return rows
