"""Amazon review dumps: the 2023 release (the paper's data, §4.1) and the 2014 release (McAuley lab).

2023: JSON lines, reviews ``{user_id, parent_asin, rating 1-5, title, text, timestamp (ms),
verified_purchase, helpful_vote}``; meta ``{parent_asin, title, main_category, categories [str],
description [str], features [str], store, price}``; files named ``<Category>.jsonl(.gz)`` and
``meta_<Category>.jsonl(.gz)``.
2014: JSON lines ``{reviewerID, asin, overall 1-5, reviewText, summary, unixReviewTime (s),
helpful [up, total]}``; the meta file is Python dict literals (single quotes), parsed with
``ast.literal_eval`` — never ``eval`` — exactly as the release ships it.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from glom_plugin.data.readers.base import (
    LineBlock,
    RatingScale,
    RawChunk,
    Reader,
    decode_line,
    frame_from_tuples,
    item_frame,
    join_text,
    parse_price,
)
from glom_plugin.data.readers.lines import MAX_LINE_BYTES, iter_lines
from glom_plugin.data.rejects import MALFORMED_JSON, MISSING_FIELD, RejectLog

Parser = Callable[[str], Any]


def _json(text: str) -> Any:
    return json.loads(text)


def _python_literal(text: str) -> Any:
    return ast.literal_eval(text)


def iter_records(
    path: Path, parse: Parser, rejects: RejectLog, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, record)`` for each line that decodes and parses to a dict; the rest become rejects."""
    for line_no, raw in iter_lines(path, rejects, max_line_bytes):
        record = parse_record(raw, path, line_no, parse, rejects)
        if record is not None:
            yield line_no, record


def parse_record(raw: bytes, path: Path, line_no: int, parse: Parser, rejects: RejectLog) -> dict[str, Any] | None:
    """One line as a dict, or None: blank (skipped silently) or a reject (bad encoding, not JSON, not an object)."""
    if not raw.strip():
        return None
    text = decode_line(raw, path, line_no, rejects)
    if text is None:
        return None
    try:
        record = parse(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        # json/ast messages hold positions, not content, so no raw id leaks into the rejects file.
        rejects.add(path, line_no, None, MALFORMED_JSON, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
        return None
    if not isinstance(record, dict):
        rejects.add(path, line_no, None, MALFORMED_JSON, f"expected an object, got {type(record).__name__}")
        return None
    return record


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = value.strip() if type(value) is str else str(value).strip()
    return text or None


def _int(value: Any, scale: int = 1) -> int | None:
    if type(value) is int:
        return value * scale
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(float(value)) * scale
    except (TypeError, ValueError, OverflowError):
        return None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


class _JsonLinesReader(Reader):
    """Shared chunking for JSON-lines review files; subclasses map one record to our columns."""

    parse = staticmethod(_json)
    meta_parse = staticmethod(_json)
    item_key: str = "asin"

    def review_row(self, record: dict[str, Any]) -> tuple[Any, ...]:
        """One record as a tuple in ``INTERACTION_COLUMNS`` order: user_id, item_id, rating,
        review_title, text, timestamp_ms, verified_purchase, helpful_votes."""
        raise NotImplementedError

    def meta_row(self, record: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def meta_file(self) -> Path | None:
        raise NotImplementedError

    splits_lines = True

    def interaction_chunks(self) -> Iterator[RawChunk]:
        for block in self.interaction_blocks():
            yield self.parse_block(block)

    def interaction_blocks(self) -> Iterator[LineBlock]:
        for path in self.interaction_files():
            numbers: list[int] = []
            lines: list[bytes] = []
            for line_no, raw in iter_lines(path, self.rejects, self.cfg.max_line_bytes):
                numbers.append(line_no)
                lines.append(raw)
                if len(lines) >= self.chunk_rows:
                    yield LineBlock(path, numbers, lines)
                    numbers, lines = [], []
            if lines:
                yield LineBlock(path, numbers, lines)

    def parse_block(self, block: LineBlock) -> RawChunk:
        # Rows are tuples in INTERACTION_COLUMNS order (cheaper than a dict per record).
        rows: list[tuple[Any, ...]] = []
        kept: list[int] = []
        parse = type(self).parse
        for line_no, raw in zip(block.numbers, block.lines, strict=True):
            record = parse_record(raw, block.source, line_no, parse, self.rejects)
            if record is not None:
                rows.append(self.review_row(record))
                kept.append(line_no)
        return RawChunk(block.source, frame_from_tuples(rows, kept))

    def item_chunks(self) -> Iterator[pd.DataFrame]:
        path = self.meta_file()
        if path is None:
            return
        rows: dict[str, list[Any]] = {}
        n = 0
        for line_no, record in iter_records(path, type(self).meta_parse, self.rejects, self.cfg.max_line_bytes):
            item_id = _text(record.get(self.item_key))
            if item_id is None:
                self.rejects.add(path, line_no, self.item_key, MISSING_FIELD, "item metadata without an item id")
                continue
            for key, value in self.meta_row(record).items():
                rows.setdefault(key, []).append(value)
            n += 1
            if n >= self.chunk_rows:
                yield item_frame(rows)
                rows, n = {}, 0
        if n:
            yield item_frame(rows)


def _review_files(directory: Path) -> list[Path]:
    suffixes = (".jsonl", ".jsonl.gz", ".json", ".json.gz")
    return sorted(
        p for p in directory.iterdir()
        if p.is_file() and p.name.endswith(suffixes) and not p.name.startswith("meta")
    )


def _meta_beside(reviews: Path, explicit: str | None) -> Path | None:
    """``cfg.data.meta_path``, else ``meta_<name>`` or ``meta.jsonl(.gz)`` next to the reviews."""
    if explicit:
        path = Path(explicit)
        if not path.exists():
            raise FileNotFoundError(f"meta_path {path} does not exist")
        return path
    directory = reviews.parent
    candidates = [directory / f"meta_{reviews.name}"]
    candidates += sorted(directory.glob("meta*.json*"))
    for candidate in candidates:
        if candidate.exists() and candidate.is_file():
            return candidate
    return None


class Amazon2023Reader(_JsonLinesReader):
    """Amazon Reviews 2023 (Hou et al., 2024): the GLoM paper's datasets (§4.1)."""

    name = "amazon2023"
    scale = RatingScale(1.0, 5.0)
    item_key = "parent_asin"

    def interaction_files(self) -> list[Path]:
        if self.source.is_file():
            return [self.source]
        files = _review_files(self.source)
        if not files:
            raise FileNotFoundError(f"amazon2023 reader: no review .jsonl(.gz) files in {self.source}")
        return files

    def meta_file(self) -> Path | None:
        return _meta_beside(self.interaction_files()[0], self.cfg.meta_path)

    def review_row(self, record: dict[str, Any]) -> tuple[Any, ...]:
        get = record.get
        return (
            get("user_id"),
            get("parent_asin", get("asin")),
            get("rating"),
            _text(get("title")),
            _text(get("text")),
            _int(get("timestamp")),
            _bool(get("verified_purchase")),
            _int(get("helpful_vote")),
        )

    def meta_row(self, record: dict[str, Any]) -> dict[str, Any]:
        categories = record.get("categories") or []
        return {
            "item_id": _text(record.get("parent_asin")),
            "title": _text(record.get("title")),
            "main_category": _text(record.get("main_category")),
            "categories": [str(c) for c in categories] if isinstance(categories, list) else None,
            "description": join_text(record.get("description")),
            "features": join_text(record.get("features")),
            "store": _text(record.get("store")),
            "price": parse_price(record.get("price")),
        }


class Amazon2014Reader(_JsonLinesReader):
    """Amazon product data 2014 (McAuley et al., SIGIR 2015), e.g. ``reviews_Digital_Music_5.json.gz``."""

    name = "amazon2014"
    scale = RatingScale(1.0, 5.0)
    meta_parse = staticmethod(_python_literal)
    item_key = "asin"

    def interaction_files(self) -> list[Path]:
        if self.source.is_file():
            return [self.source]
        files = sorted(self.source.glob("reviews_*.json*"))
        if not files:
            raise FileNotFoundError(f"amazon2014 reader: no reviews_*.json(.gz) file in {self.source}")
        return files

    def meta_file(self) -> Path | None:
        if self.cfg.meta_path:
            return _meta_beside(self.interaction_files()[0], self.cfg.meta_path)
        for candidate in sorted(self.interaction_files()[0].parent.glob("meta_*.json*")):
            return candidate
        return None

    def review_row(self, record: dict[str, Any]) -> tuple[Any, ...]:
        get = record.get
        helpful = get("helpful")
        return (
            get("reviewerID"),
            get("asin"),
            get("overall"),
            _text(get("summary")),
            _text(get("reviewText")),
            _int(get("unixReviewTime"), scale=1000),
            None,  # the 2014 release has no verified-purchase flag
            _int(helpful[0]) if isinstance(helpful, list) and helpful else None,
        )

    def meta_row(self, record: dict[str, Any]) -> dict[str, Any]:
        # categories is a list of paths, e.g. [['CDs & Vinyl', 'Pop'], ['Digital Music', 'Rock']]:
        # flatten to the distinct names in order; the first path's root is the main category.
        paths = record.get("categories") or []
        flat: list[str] = []
        if isinstance(paths, list):
            for path in paths:
                for name in path if isinstance(path, list) else [path]:
                    name = str(name)
                    if name not in flat:
                        flat.append(name)
        main = paths[0][0] if paths and isinstance(paths[0], list) and paths[0] else None
        return {
            "item_id": _text(record.get("asin")),
            "title": _text(record.get("title")),
            "main_category": _text(main),
            "categories": flat or None,
            "description": join_text(record.get("description")),
            "features": None,
            "store": _text(record.get("brand")),
            "price": parse_price(record.get("price")),
        }
