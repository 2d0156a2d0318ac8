"""Seed and id lists as advertisers send them: one id per line, or a CSV with a ``user_id`` column.

``glom hash-ids`` (raw ids -> salted hashes) and ``glom expand`` (hashed seeds -> lookalikes) read the
same layouts through this one parser, so a file one accepts the other accepts too: a CSV's header and
its other columns (``id,score``) are never taken for ids, a UTF-8 byte-order mark (Excel) is dropped,
CRLF line ends are fine, and a file that is not UTF-8 is one clear error naming the line.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

ID_COLUMN = "user_id"


@dataclass(frozen=True)
class IdList:
    """The ids of a list file and where each came from; ``header``/``rows`` keep a CSV's other columns."""

    path: Path
    ids: list[str]
    lines: list[int]
    header: list[str] | None = None  # None: one id per line
    rows: list[list[str]] | None = None

    @property
    def is_csv(self) -> bool:
        return self.header is not None


def _text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ValueError(
            f"{path}, line {line}: not UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        ) from None


def read_id_list(path: str | Path) -> IdList:
    """Ids in file order (duplicates kept; callers decide). Blank lines are skipped; a blank id in a
    CSV row, or whitespace inside a one-per-line id, is an error naming file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"id file {path} does not exist")
    lines = _text(path).splitlines()
    first = next((line for line in lines if line.strip()), None)
    if first is None:
        raise ValueError(f"{path}: the file is empty")
    if path.suffix.lower() == ".csv" or "," in first:
        return _read_csv(path, lines)
    ids: list[str] = []
    numbers: list[int] = []
    for number, line in enumerate(lines, start=1):
        value = line.strip()
        if not value:
            continue
        if any(ch.isspace() for ch in value):
            raise ValueError(f"{path}, line {number}, field {ID_COLUMN}: the id contains whitespace")
        ids.append(value)
        numbers.append(number)
    return IdList(path, ids, numbers)


def _read_csv(path: Path, lines: list[str]) -> IdList:
    reader = csv.reader(io.StringIO("\n".join(lines)))
    header = [h.strip() for h in next(reader)]
    if ID_COLUMN not in header:
        raise ValueError(f"{path}, line 1: CSV header {header} has no {ID_COLUMN!r} column")
    col = header.index(ID_COLUMN)
    ids: list[str] = []
    numbers: list[int] = []
    rows: list[list[str]] = []
    for row in reader:
        number = reader.line_num
        if not row:  # a blank line
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}, line {number}: expected {len(header)} fields, got {len(row)}")
        value = row[col].strip()
        if not value:
            raise ValueError(f"{path}, line {number}, field {ID_COLUMN}: empty id")
        ids.append(value)
        numbers.append(number)
        rows.append(row)
    return IdList(path, ids, numbers, header, rows)
