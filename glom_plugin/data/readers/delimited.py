"""Delimited-text layouts: MyAnimeList (tab-separated ``.dat`` with a header) and MovieLens (CSV).

Both are ratings-only (no review text), which is exactly the case GLoM's polarity falls back to
rating alone (§3.3). Rows are parsed with the ``csv`` module a chunk at a time, so line numbers in
rejects are the file's own line numbers (header = line 1).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from glom_plugin.data.readers.base import (
    RatingScale,
    RawChunk,
    Reader,
    decode_line,
    frame_from_rows,
    item_frame,
)
from glom_plugin.data.readers.lines import MAX_LINE_BYTES, iter_lines
from glom_plugin.data.rejects import MALFORMED_ROW, MISSING_FIELD, UNTERMINATED_QUOTE, RejectLog


@dataclass
class DelimitedChunk:
    header: list[str]
    lines: list[int]
    rows: list[list[str]]

    def column(self, name: str) -> list[str]:
        i = self.header.index(name)
        return [row[i] for row in self.rows]


MAX_RECORD_LINES = 1000  # a quoted field may span lines; an unclosed quote stops swallowing after this many


def _still_quoted(text: str, delimiter: str, in_quotes: bool) -> bool:
    """Whether a quoted field is still open after ``text`` (RFC 4180: a quote opens a field only at its
    start; inside, ``""`` is a literal quote). A quote in the middle of an unquoted field is a character."""
    if '"' not in text:
        return in_quotes
    field_start = not in_quotes
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if in_quotes:
            if c == '"':
                if i + 1 < n and text[i + 1] == '"':
                    i += 2
                    continue
                in_quotes = False
        elif c == '"' and field_start:
            in_quotes = True
        field_start = not in_quotes and c == delimiter
        i += 1
    return in_quotes


def _records(
    path: Path, delimiter: str, rejects: RejectLog, max_line_bytes: int
) -> Iterator[tuple[int, str]]:
    """``(first line number, record text)``: physical lines joined while a quoted field is open (CSV's
    multi-line text fields). A quote still open after ``MAX_RECORD_LINES`` lines, ``max_line_bytes``
    bytes or at the end of the file is a stray: its first line becomes an ``unterminated quote`` reject
    and the lines it had swallowed are read again as records of their own."""
    quoted = delimiter != "\t"  # MAL's .dat files are QUOTE_NONE: a quote is a plain character there
    replay: list[tuple[int, str]] = []
    lines = (
        (line_no, text)
        for line_no, raw in iter_lines(path, rejects, max_line_bytes)
        if (text := decode_line(raw, path, line_no, rejects)) is not None
    )
    pending: list[tuple[int, str]] = []  # the open record's lines
    size = 0
    in_quotes = False
    while True:
        if replay:
            line_no, text = replay.pop(0)
        elif (nxt := next(lines, None)) is not None:
            line_no, text = nxt
        else:
            break
        if not quoted:
            yield line_no, text
            continue
        in_quotes = _still_quoted(text, delimiter, in_quotes)
        pending.append((line_no, text))
        size += len(text)
        if not in_quotes:
            yield pending[0][0], "\n".join(t for _, t in pending) if len(pending) > 1 else text
            pending, size = [], 0
        elif len(pending) >= MAX_RECORD_LINES or size > max_line_bytes:
            (first, _), *rest = pending
            rejects.add(path, first, None, UNTERMINATED_QUOTE,
                        f"a quoted field opened here is not closed within {len(pending)} lines")
            pending, size, in_quotes, replay = [], 0, False, rest + replay
    while pending:  # a quote left open at the end of the file: reject its line, read the rest again
        (first, _), *rest = pending
        rejects.add(path, first, None, UNTERMINATED_QUOTE,
                    "a quoted field opened here is not closed before the end of the file")
        pending, in_quotes = [], False
        for i, (line_no, text) in enumerate(rest):
            in_quotes = _still_quoted(text, delimiter, in_quotes)
            pending.append((line_no, text))
            if not in_quotes:
                yield pending[0][0], "\n".join(t for _, t in pending)
                pending = []
            elif i == len(rest) - 1:
                break


def _parse(text: str, delimiter: str, quoting: int) -> list[str] | None:
    """One record's fields, or None when the csv module cannot parse it."""
    try:
        rows = list(csv.reader([text], delimiter=delimiter, quoting=quoting, strict=False))
    except csv.Error:
        return None
    return rows[0] if len(rows) == 1 else None


def delimited_chunks(
    path: Path,
    delimiter: str,
    rejects: RejectLog,
    chunk_rows: int,
    required: tuple[str, ...] = (),
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[DelimitedChunk]:
    """Chunks of well-formed rows (right field count); a wrong count is a ``malformed row`` reject.
    Quoted fields may hold newlines; line numbers are each record's first line (header = line 1)."""
    header: list[str] | None = None
    lines: list[int] = []
    texts: list[str] = []
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    csv.field_size_limit(max(csv.field_size_limit(), max_line_bytes))  # a 5 MB review text is a field

    def flush() -> DelimitedChunk:
        assert header is not None
        try:  # one reader over the chunk (fast); record by record only when it cannot parse the chunk
            parsed: list[list[str] | None] = list(csv.reader(texts, delimiter=delimiter, quoting=quoting))
        except csv.Error:
            parsed = []
        if len(parsed) != len(texts):
            parsed = [_parse(text, delimiter, quoting) for text in texts]
        rows: list[list[str]] = []
        kept: list[int] = []
        for line_no, row in zip(lines, parsed, strict=True):
            if row is None:
                rejects.add(path, line_no, None, MALFORMED_ROW, "not a parseable delimited record")
            elif len(row) != len(header):
                rejects.add(path, line_no, None, MALFORMED_ROW, f"expected {len(header)} fields, got {len(row)}")
            else:
                rows.append(row)
                kept.append(line_no)
        return DelimitedChunk(header, kept, rows)

    for line_no, text in _records(path, delimiter, rejects, max_line_bytes):
        if header is None:
            header = [h.strip().lstrip("\ufeff") for h in _parse(text, delimiter, quoting) or []]
            missing = [name for name in required if name not in header]
            if missing:
                raise ValueError(f"{path}:{line_no}: header lacks column(s) {missing}; found {header}")
            continue
        if not text.strip():
            rejects.add(path, line_no, None, MALFORMED_ROW, "blank line")
            continue
        lines.append(line_no)
        texts.append(text)
        if len(lines) >= chunk_rows:
            yield flush()
            lines, texts = [], []
    if header is None:
        raise ValueError(f"{path}: empty file (no header line)")
    if lines:
        yield flush()


class MALReader(Reader):
    """MyAnimeList (Kaggle "Anime Recommendations Database", caserec 5,000-user sample):
    ``anime_ratings.dat`` = User_ID, Anime_ID, Feedback 1-10; ``anime_info.dat`` = anime_ids, name,
    genre (comma list), type, episodes, rating, members. No timestamps, no text."""

    name = "mal"
    scale = RatingScale(1.0, 10.0)

    def interaction_files(self) -> list[Path]:
        found = self._find("anime_ratings.dat")
        assert found is not None
        return [found]

    def interaction_chunks(self) -> Iterator[RawChunk]:
        path = self.interaction_files()[0]
        required = ("User_ID", "Anime_ID", "Feedback")
        for chunk in delimited_chunks(path, "\t", self.rejects, self.chunk_rows, required, self.cfg.max_line_bytes):
            rows = {
                "user_id": chunk.column("User_ID"),
                "item_id": chunk.column("Anime_ID"),
                "rating": chunk.column("Feedback"),
            }
            yield RawChunk(path, frame_from_rows(rows, chunk.lines))

    def meta_file(self) -> Path | None:
        path = (self.source if self.source.is_dir() else self.source.parent) / "anime_info.dat"
        return path if path.exists() else None

    def item_chunks(self) -> Iterator[pd.DataFrame]:
        path = self.meta_file()
        if path is None:
            return
        required = ("anime_ids", "name", "genre", "type", "episodes")
        for chunk in delimited_chunks(path, "\t", self.rejects, self.chunk_rows, required, self.cfg.max_line_bytes):
            rows: dict[str, list[Any]] = {k: [] for k in ("item_id", "title", "main_category", "categories", "features")}
            for line_no, item_id, name, genre, kind, episodes in zip(
                chunk.lines, chunk.column("anime_ids"), chunk.column("name"), chunk.column("genre"),
                chunk.column("type"), chunk.column("episodes"), strict=True,
            ):
                if not item_id.strip():
                    self.rejects.add(path, line_no, "anime_ids", MISSING_FIELD, "item metadata without an item id")
                    continue
                rows["item_id"].append(item_id.strip())
                rows["title"].append(name.strip() or None)
                rows["main_category"].append(kind.strip() or None)
                rows["categories"].append([g.strip() for g in genre.split(",") if g.strip()] or None)
                facts = [f"type: {kind.strip()}" if kind.strip() else "", f"episodes: {episodes.strip()}" if episodes.strip() else ""]
                rows["features"].append("; ".join(f for f in facts if f) or None)
            yield item_frame(rows)


class MovieLensReader(Reader):
    """MovieLens ml-latest(-small) (Harper & Konstan, 2015): ``ratings.csv`` userId, movieId,
    rating 0.5-5 (half stars), timestamp (s); ``movies.csv`` movieId, title, genres (``|``-separated).
    ``tags.csv`` is not read: tags are a few words by a different, small set of (user, movie) pairs,
    too sparse to stand in for review text, so interactions are ratings-only."""

    name = "movielens"
    scale = RatingScale(0.5, 5.0)

    def interaction_files(self) -> list[Path]:
        found = self._find("ratings.csv")
        assert found is not None
        return [found]

    def interaction_chunks(self) -> Iterator[RawChunk]:
        path = self.interaction_files()[0]
        required = ("userId", "movieId", "rating", "timestamp")
        for chunk in delimited_chunks(path, ",", self.rejects, self.chunk_rows, required, self.cfg.max_line_bytes):
            stamps = []
            for value in chunk.column("timestamp"):
                try:
                    stamps.append(int(value) * 1000)
                except ValueError:
                    stamps.append(None)
            rows = {
                "user_id": chunk.column("userId"),
                "item_id": chunk.column("movieId"),
                "rating": chunk.column("rating"),
                "timestamp_ms": stamps,
            }
            yield RawChunk(path, frame_from_rows(rows, chunk.lines))

    def meta_file(self) -> Path | None:
        path = (self.source if self.source.is_dir() else self.source.parent) / "movies.csv"
        return path if path.exists() else None

    def item_chunks(self) -> Iterator[pd.DataFrame]:
        path = self.meta_file()
        if path is None:
            return
        for chunk in delimited_chunks(path, ",", self.rejects, self.chunk_rows, ("movieId", "title", "genres"), self.cfg.max_line_bytes):
            genres = [
                [g for g in value.split("|") if g and g != "(no genres listed)"] or None
                for value in chunk.column("genres")
            ]
            rows = {
                "item_id": [v.strip() for v in chunk.column("movieId")],
                "title": [v.strip() or None for v in chunk.column("title")],
                "categories": genres,
            }
            yield item_frame(rows)
