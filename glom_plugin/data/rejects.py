"""The rejects log: every row ingestion does not keep, with file, line, field and reason.

Nothing is dropped silently: a malformed or out-of-range row becomes one JSON line here and a count
in the ingest report. Raw user ids never appear (the detail text is built from values that are not
user ids), so the rejects file is as shareable as the normalized tables.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import IO

# Reject reasons (the ``reason`` field); tests and the report refer to these names.
MALFORMED_JSON = "malformed json"
MALFORMED_ROW = "malformed row"
MISSING_FIELD = "missing field"
EMPTY_ID = "empty id"
RATING_NOT_NUMBER = "rating not a number"
RATING_OUT_OF_RANGE = "rating out of range"
BAD_ENCODING = "bad encoding"
TRUNCATED_GZIP = "truncated gzip"
CORRUPT_GZIP = "corrupt gzip"
LINE_TOO_LONG = "line too long"
UNTERMINATED_QUOTE = "unterminated quote"
ID_NOT_SCALAR = "id not a string"
TIMESTAMP_OUT_OF_RANGE = "timestamp out of range"
DUPLICATE = "duplicate"

# Reasons that do not count towards ``max_reject_ratio``: exact duplicates are dropped and counted,
# but they are not bad data.
NOT_ERRORS = frozenset({DUPLICATE})


class RejectLog:
    """Streams reject records to a temporary file beside ``target``; ``commit`` renames it into place."""

    def __init__(self, target: Path) -> None:
        self.target = Path(target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.target.name}.{os.getpid()}.", suffix=".tmp", dir=self.target.parent)
        self._tmp = Path(tmp)
        self._fh: IO[str] | None = os.fdopen(fd, "w", encoding="utf-8")
        self.by_reason: Counter[str] = Counter()
        self.errors_by_file: Counter[str] = Counter()
        self.first: dict[str, str] = {}

    def add(
        self, file: str | Path, line: int | None, field: str | None, reason: str, detail: str = "", rows: int = 1
    ) -> None:
        """One reject record; ``rows`` > 1 when it stands for several rows that could not be read at all
        (the unread rest of a corrupt gzip, ``readers/lines.py``), so they count against the reject ratio."""
        record = {"file": str(file), "line": line, "field": field, "reason": reason, "detail": detail}
        if rows != 1:
            record["rows"] = rows
        assert self._fh is not None, "reject log already closed"
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.by_reason[reason] += rows
        if reason not in NOT_ERRORS:
            self.errors_by_file[str(file)] += rows
        self.first.setdefault(reason, describe(record))

    def add_many(self, file: str | Path, lines: list[int], field: str | None, reason: str, details: list[str]) -> None:
        for line, detail in zip(lines, details, strict=True):
            self.add(file, line, field, reason, detail)

    def errors(self) -> int:
        """Rejected rows that count as bad data (duplicates excluded)."""
        return sum(n for reason, n in self.by_reason.items() if reason not in NOT_ERRORS)

    def commit(self) -> Path:
        self._close()
        os.replace(self._tmp, self.target)
        return self.target

    def discard(self) -> None:
        self._close()
        self._tmp.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class RecordedRejects:
    """``RejectLog.add`` calls kept in order, to be replayed into the run's log by ``replay``.

    Why: ingestion's parse workers (``glom_plugin.data.parallel_ingest``) run in other processes; they
    record their rejects here and the main process replays them chunk by chunk, so the rejects file,
    the counts and the first reject of each reason come out as one process would have written them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int | None, str | None, str, str, int]] = []

    def add(
        self, file: str | Path, line: int | None, field: str | None, reason: str, detail: str = "", rows: int = 1
    ) -> None:
        self.calls.append((str(file), line, field, reason, detail, rows))

    def add_many(self, file: str | Path, lines: list[int], field: str | None, reason: str, details: list[str]) -> None:
        for line, detail in zip(lines, details, strict=True):
            self.add(file, line, field, reason, detail)

    def replay(self, log: RejectLog) -> None:
        for file, line, field, reason, detail, rows in self.calls:
            log.add(file, line, field, reason, detail, rows=rows)


def describe(record: dict) -> str:
    """``file:line field 'x': reason (detail)`` — the shape every ingestion error message uses."""
    where = f"{record['file']}:{record['line']}" if record.get("line") is not None else str(record["file"])
    field = f" field {record['field']!r}" if record.get("field") else ""
    detail = f" ({record['detail']})" if record.get("detail") else ""
    return f"{where}{field}: {record['reason']}{detail}"
