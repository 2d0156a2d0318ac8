"""What every reader gives ingestion: raw interaction chunks, item metadata chunks, a rating scale.

A reader knows one publisher's layout (field names, file names, encodings, time units). It yields
pandas chunks whose columns are the normalized names (``INTERACTION_COLUMNS``) plus ``_line``, with
raw values: user ids are still raw here and ratings still unchecked, because validation, hashing
and deduplication happen once, in ``glom_plugin.data.ingest``, for every reader alike.
Rows a reader cannot even parse (malformed JSON, wrong field count, bad encoding, truncated gzip)
it records itself in the ``RejectLog``, with file and line.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from glom_plugin.config import DataConfig
from glom_plugin.data.rejects import BAD_ENCODING, RejectLog
from glom_plugin.data.schema import INTERACTIONS_SCHEMA, ITEMS_SCHEMA

INTERACTION_COLUMNS: tuple[str, ...] = tuple(f.name for f in INTERACTIONS_SCHEMA if f.name != "rating_norm")
ITEM_COLUMNS: tuple[str, ...] = tuple(ITEMS_SCHEMA.names)
DEFAULT_CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class RatingScale:
    """The publisher's rating range; ``normalize`` maps it onto [0, 1] (GLoM §3.3 puts rating and
    sentiment on the same [0, 1] scale before mixing them into polarity)."""

    min: float
    max: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min) and math.isfinite(self.max)) or self.max <= self.min:
            raise ValueError(f"rating scale must have finite min < max, got [{self.min}, {self.max}]")

    def normalize(self, rating: np.ndarray) -> np.ndarray:
        return (np.asarray(rating, dtype=np.float64) - self.min) / (self.max - self.min)


@dataclass
class LineBlock:
    """Raw lines of one file, not yet parsed: ``numbers[i]`` is the 1-based line number of ``lines[i]``.
    Readers whose records are one line each split their files into these so that parsing, the costly
    part, can run in worker processes (``Reader.splits_lines``)."""

    source: Path
    numbers: list[int]
    lines: list[bytes]


@dataclass
class RawChunk:
    """One chunk of raw interactions from ``source`` (columns: ``_line`` + ``INTERACTION_COLUMNS``)."""

    source: Path
    frame: pd.DataFrame


class Reader(ABC):
    """A publisher layout. Subclasses set ``name`` and ``scale`` (or override ``rating_scale``)."""

    name: ClassVar[str]
    scale: ClassVar[RatingScale | None] = None
    # True when the reader implements interaction_blocks / parse_block (records are single lines).
    splits_lines: ClassVar[bool] = False

    def __init__(self, cfg: DataConfig, source: Path, rejects: RejectLog, chunk_rows: int = DEFAULT_CHUNK_ROWS):
        self.cfg = cfg
        self.source = Path(source)
        self.rejects = rejects
        self.chunk_rows = chunk_rows
        if not self.source.exists():
            raise FileNotFoundError(f"{self.name} reader: source path {self.source} does not exist")

    def rating_scale(self) -> RatingScale:
        if self.scale is None:
            raise NotImplementedError(f"{type(self).__name__} declares no rating scale")
        return self.scale

    @abstractmethod
    def interaction_files(self) -> list[Path]:
        """The files ``interaction_chunks`` reads (named in the report and in error messages)."""

    @abstractmethod
    def interaction_chunks(self) -> Iterator[RawChunk]:
        """Raw interactions, a chunk at a time (constant memory in file size)."""

    def interaction_blocks(self) -> Iterator[LineBlock]:
        """Raw line blocks of ``chunk_rows`` lines; only readers with ``splits_lines``."""
        raise NotImplementedError(f"{type(self).__name__} does not split its files into line blocks")

    def parse_block(self, block: LineBlock) -> RawChunk:
        """One block parsed into a chunk (its unparseable lines become rejects); ``splits_lines`` only."""
        raise NotImplementedError(f"{type(self).__name__} does not split its files into line blocks")

    def meta_file(self) -> Path | None:
        """The item-metadata file ``item_chunks`` reads, if the layout has one."""
        return None

    def item_chunks(self) -> Iterator[pd.DataFrame]:
        """Item metadata in ``ITEM_COLUMNS`` (may contain items that have no interactions).
        Ratings-only layouts without metadata yield nothing."""
        return iter(())

    def _find(self, *names: str, required: bool = True) -> Path | None:
        """A file of this layout: ``source`` itself when it is a file with one of ``names``' stems,
        or the first of ``names`` inside the ``source`` directory."""
        if self.source.is_file():
            return self.source
        for name in names:
            candidate = self.source / name
            if candidate.exists():
                return candidate
        if required:
            raise FileNotFoundError(
                f"{self.name} reader: none of {list(names)} found in {self.source}"
            )
        return None


def frame_from_rows(rows: dict[str, list[Any]], lines: list[int]) -> pd.DataFrame:
    """A chunk frame with every interaction column present (missing ones are all-null)."""
    data: dict[str, Any] = {"_line": np.asarray(lines, dtype=np.int64)}
    n = len(lines)
    for column in INTERACTION_COLUMNS:
        data[column] = rows.get(column, [None] * n)
    return pd.DataFrame(data)


def frame_from_tuples(rows: list[tuple[Any, ...]], lines: list[int]) -> pd.DataFrame:
    """A chunk frame from row tuples in ``INTERACTION_COLUMNS`` order."""
    frame = pd.DataFrame.from_records(rows, columns=list(INTERACTION_COLUMNS), coerce_float=False)
    frame.insert(0, "_line", np.asarray(lines, dtype=np.int64))
    return frame


def item_frame(rows: dict[str, list[Any]]) -> pd.DataFrame:
    n = len(rows["item_id"])
    return pd.DataFrame({column: rows.get(column, [None] * n) for column in ITEM_COLUMNS})


def decode_line(raw: bytes, path: Path, line_no: int, rejects: RejectLog) -> str | None:
    """UTF-8 decode one line; invalid bytes become a ``bad encoding`` reject (no content logged,
    since the line may hold a raw user id)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        rejects.add(path, line_no, None, BAD_ENCODING, f"invalid UTF-8 byte at column {exc.start + 1}")
        return None


def parse_price(value: Any) -> float | None:
    """Prices come as numbers, ``"$12.99"``, ``"12.99 - 20.00"`` (range: lower end) or ``"—"``."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(float(value)) else None
    text = str(value).strip().replace("$", "").replace(",", "")
    if " - " in text:
        text = text.split(" - ", 1)[0]
    try:
        price = float(text)
    except ValueError:
        return None
    return price if math.isfinite(price) else None


def join_text(value: Any) -> str | None:
    """Amazon 2023 ``description`` / ``features`` are lists of strings; the items table keeps one string."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        parts = [str(v).strip() for v in value if v is not None and str(v).strip()]
        return "\n".join(parts) or None
    text = str(value).strip()
    return text or None
