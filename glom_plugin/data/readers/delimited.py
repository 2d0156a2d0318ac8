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
from glom_plugin.data.readers.lines import iter_lines
from glom_plugin.data.rejects import MALFORMED_ROW, MISSING_FIELD, RejectLog


@dataclass
class DelimitedChunk:
    header: list[str]
    lines: list[int]
    rows: list[list[str]]

    def column(self, name: str) -> list[str]:
        i = self.header.index(name)
        return [row[i] for row in self.rows]


def delimited_chunks(
    path: Path, delimiter: str, rejects: RejectLog, chunk_rows: int, required: tuple[str, ...] = ()
) -> Iterator[DelimitedChunk]:
    """Chunks of well-formed rows (right field count); a wrong count is a ``malformed row`` reject."""
    header: list[str] | None = None
    lines: list[int] = []
    texts: list[str] = []
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL

    def flush() -> DelimitedChunk:
        assert header is not None
        rows: list[list[str]] = []
        kept: list[int] = []
        for line_no, row in zip(lines, csv.reader(texts, delimiter=delimiter, quoting=quoting), strict=True):
            if len(row) != len(header):
                rejects.add(path, line_no, None, MALFORMED_ROW, f"expected {len(header)} fields, got {len(row)}")
                continue
            rows.append(row)
            kept.append(line_no)
        return DelimitedChunk(header, kept, rows)

    for line_no, raw in iter_lines(path, rejects):
        text = decode_line(raw, path, line_no, rejects)
        if text is None:
            continue
        if header is None:
            header = [h.strip().lstrip("\ufeff") for h in next(csv.reader([text], delimiter=delimiter, quoting=quoting))]
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
        for chunk in delimited_chunks(path, "\t", self.rejects, self.chunk_rows, required):
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
        for chunk in delimited_chunks(path, "\t", self.rejects, self.chunk_rows, required):
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
        for chunk in delimited_chunks(path, ",", self.rejects, self.chunk_rows, required):
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
        for chunk in delimited_chunks(path, ",", self.rejects, self.chunk_rows, ("movieId", "title", "genres")):
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
