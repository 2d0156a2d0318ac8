"""Any CSV/TSV/Parquet interaction file, described by ``cfg.data.column_map`` (ours -> the file's).

Interaction keys: ``user_id``, ``item_id``, ``rating`` (required), ``review_title``, ``text``,
``timestamp_ms`` or ``timestamp_s``, ``verified_purchase``, ``helpful_votes``. Item keys (read from
``cfg.data.meta_path`` when set): ``item_id``, ``title``, ``main_category``, ``categories``
(``|``-separated in text files), ``description``, ``features``, ``store``, ``price``.
The rating scale must be declared (``cfg.data.rating_min`` / ``rating_max``): a generic file cannot
tell us whether 5 is the top of the scale or the middle of it.
For Parquet, the reject ``line`` is the 1-based row number.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from glom_plugin.data.readers.base import (
    ITEM_COLUMNS,
    RatingScale,
    RawChunk,
    Reader,
    frame_from_rows,
    item_frame,
    parse_price,
)
from glom_plugin.data.readers.delimited import delimited_chunks

INTERACTION_KEYS = (
    "user_id", "item_id", "rating", "review_title", "text", "timestamp_ms", "timestamp_s",
    "verified_purchase", "helpful_votes",
)
REQUIRED_KEYS = ("user_id", "item_id", "rating")


def _none_if_blank(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _to_int(value: Any, scale: int = 1) -> int | None:
    value = _none_if_blank(value)
    if value is None:
        return None
    try:
        return int(float(value)) * scale
    except (TypeError, ValueError, OverflowError):
        return None


def _to_bool(value: Any) -> bool | None:
    value = _none_if_blank(value)
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return True if text in ("1", "true", "t", "yes", "y") else False if text in ("0", "false", "f", "no", "n") else None


class GenericReader(Reader):
    name = "generic"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        mapping = dict(self.cfg.column_map)
        unknown = sorted(set(mapping) - set(INTERACTION_KEYS) - set(ITEM_COLUMNS))
        if unknown:
            raise ValueError(f"generic reader: column_map has unknown key(s) {unknown}; known: {INTERACTION_KEYS + ITEM_COLUMNS}")
        # Unmapped required keys default to a column of the same name.
        for key in REQUIRED_KEYS:
            mapping.setdefault(key, key)
        self.mapping = mapping

    def rating_scale(self) -> RatingScale:
        if self.cfg.rating_min is None or self.cfg.rating_max is None:
            raise ValueError(
                "generic reader: declare the rating scale with data.rating_min and data.rating_max "
                "(e.g. 1 and 5), so ratings can be normalized to [0, 1]"
            )
        return RatingScale(float(self.cfg.rating_min), float(self.cfg.rating_max))

    def interaction_files(self) -> list[Path]:
        if self.source.is_file():
            return [self.source]
        files = sorted(p for p in self.source.iterdir() if p.suffix.lower() in (".csv", ".tsv", ".parquet") or p.name.endswith((".csv.gz", ".tsv.gz")))
        if not files:
            raise FileNotFoundError(f"generic reader: no .csv/.tsv/.parquet file in {self.source}")
        return files

    def _columns(self, keys: tuple[str, ...]) -> dict[str, str]:
        return {key: self.mapping[key] for key in keys if key in self.mapping}

    def _frames(self, path: Path, wanted: dict[str, str]) -> Iterator[tuple[list[int], dict[str, list[Any]]]]:
        """``(line numbers, {our key: values})`` per chunk, for Parquet or delimited text."""
        if path.suffix.lower() == ".parquet":
            file = pq.ParquetFile(path)
            missing = [col for col in wanted.values() if col not in file.schema_arrow.names]
            if missing:
                raise ValueError(f"{path}: column(s) {missing} named in column_map are not in the file; found {file.schema_arrow.names}")
            offset = 0
            for batch in file.iter_batches(batch_size=self.chunk_rows, columns=sorted(set(wanted.values()))):
                table = batch.to_pydict()
                n = batch.num_rows
                yield list(range(offset + 1, offset + n + 1)), {key: table[col] for key, col in wanted.items()}
                offset += n
            return
        delimiter = "\t" if ".tsv" in path.name.lower() else ","
        for chunk in delimited_chunks(
            path, delimiter, self.rejects, self.chunk_rows, tuple(wanted.values()), self.cfg.max_line_bytes
        ):
            yield chunk.lines, {key: chunk.column(col) for key, col in wanted.items()}

    def interaction_chunks(self) -> Iterator[RawChunk]:
        wanted = self._columns(INTERACTION_KEYS)
        for path in self.interaction_files():
            for lines, cols in self._frames(path, wanted):
                rows: dict[str, list[Any]] = {
                    "user_id": [_none_if_blank(v) if v is None or isinstance(v, str) else str(v) for v in cols["user_id"]],
                    "item_id": [_none_if_blank(v) if v is None or isinstance(v, str) else str(v) for v in cols["item_id"]],
                    "rating": [_none_if_blank(v) for v in cols["rating"]],
                }
                for key in ("review_title", "text"):
                    if key in cols:
                        rows[key] = [None if _none_if_blank(v) is None else str(v).strip() for v in cols[key]]
                if "timestamp_ms" in cols:
                    rows["timestamp_ms"] = [_to_int(v) for v in cols["timestamp_ms"]]
                elif "timestamp_s" in cols:
                    rows["timestamp_ms"] = [_to_int(v, 1000) for v in cols["timestamp_s"]]
                if "verified_purchase" in cols:
                    rows["verified_purchase"] = [_to_bool(v) for v in cols["verified_purchase"]]
                if "helpful_votes" in cols:
                    rows["helpful_votes"] = [_to_int(v) for v in cols["helpful_votes"]]
                yield RawChunk(path, frame_from_rows(rows, lines))

    def meta_file(self) -> Path | None:
        if not self.cfg.meta_path:
            return None
        path = Path(self.cfg.meta_path)
        if not path.exists():
            raise FileNotFoundError(f"generic reader: meta_path {path} does not exist")
        return path

    def item_chunks(self) -> Iterator[pd.DataFrame]:
        path = self.meta_file()
        if path is None:
            return
        wanted = {key: self.mapping.get(key, key) for key in ITEM_COLUMNS if key in self.mapping or key == "item_id"}
        for _lines, cols in self._frames(path, wanted):
            rows: dict[str, list[Any]] = {}
            rows["item_id"] = [None if _none_if_blank(v) is None else str(v).strip() for v in cols["item_id"]]
            for key in ("title", "main_category", "description", "features", "store"):
                if key in cols:
                    rows[key] = [None if _none_if_blank(v) is None else str(v).strip() for v in cols[key]]
            if "categories" in cols:
                rows["categories"] = [
                    (list(v) if isinstance(v, (list, tuple)) else [c for c in str(v).split("|") if c]) if _none_if_blank(v) is not None else None
                    for v in cols["categories"]
                ]
            if "price" in cols:
                rows["price"] = [parse_price(_none_if_blank(v)) for v in cols["price"]]
            frame = item_frame(rows)
            yield frame[frame["item_id"].notna()]
