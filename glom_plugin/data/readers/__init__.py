"""Reader registry: ``cfg.data.source_format`` -> reader class, as a Feast-style map of dotted paths
(``ONLINE_STORE_CLASS_FOR_TYPE``), so a third-party layout is one more entry (or a full
``package.module:Class`` path given as the source format) and never an if-chain."""

from __future__ import annotations

from pathlib import Path

from glom_plugin.config import DataConfig
from glom_plugin.data.readers.base import DEFAULT_CHUNK_ROWS, RatingScale, RawChunk, Reader
from glom_plugin.data.rejects import RejectLog
from glom_plugin.plugins import load_class

READER_REGISTRY: dict[str, str] = {
    "amazon2023": "glom_plugin.data.readers.amazon:Amazon2023Reader",
    "amazon2014": "glom_plugin.data.readers.amazon:Amazon2014Reader",
    "mal": "glom_plugin.data.readers.delimited:MALReader",
    "movielens": "glom_plugin.data.readers.delimited:MovieLensReader",
    "generic": "glom_plugin.data.readers.generic:GenericReader",
}


def reader_class(source_format: str) -> type[Reader]:
    """The reader for a registered name, or for a ``module:Class`` dotted path."""
    # 'synthetic' never reaches a reader: ingest generates that data itself
    return load_class(source_format, READER_REGISTRY, Reader, "data.source_format", also=("synthetic",))


def create_reader(
    source_format: str, cfg: DataConfig, source: Path, rejects: RejectLog, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Reader:
    return reader_class(source_format)(cfg, Path(source), rejects, chunk_rows)


__all__ = ["READER_REGISTRY", "RatingScale", "RawChunk", "Reader", "create_reader", "reader_class"]
