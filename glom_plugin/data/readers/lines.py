"""Line streams from plain or gzip files that survive a truncated or corrupt gzip and count what it lost.

Public dumps are often cut short or damaged. ``gzip.open`` raises somewhere inside its buffer and loses
the bytes it had decoded, so we drive ``zlib`` ourselves: every byte that decompresses is used (a corrupt
block is replayed in small pieces so the readable part before the damage is kept), every complete line
before the break is yielded, and the break becomes one reject that *weighs* the rows it lost:

- corrupt data mid-file: the compressed bytes after the damage could not be read; they are converted to
  rows at the rate of the part that was read (``rows = unread_bytes * lines_read / bytes_read``), so a
  file that lost half its rows counts half its rows against ``data.max_reject_ratio``;
- truncation (the stream ends before its end-of-stream marker): what is missing was never on disk, so
  its size is unknown; the reject weighs the partial last line and ingestion refuses the file unless
  ``data.truncated_gzip=keep`` says the readable part is wanted (``glom_plugin.data.ingest``).

A UTF-8 byte-order mark at the start of the file is dropped (Excel writes one); a line longer than
``max_line_bytes`` is skipped to its end and rejected, so one runaway line cannot exhaust memory.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

from glom_plugin.data.rejects import CORRUPT_GZIP, LINE_TOO_LONG, TRUNCATED_GZIP, RejectLog

_BLOCK = 1 << 20
_SALVAGE_PIECE = 1 << 10
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
MAX_LINE_BYTES = 64 << 20
# Without any line read before the damage there is no measured rate: assume one row per this many
# compressed bytes (compressed review lines are ~100-300 bytes, so this under-counts: "at least").
_FALLBACK_BYTES_PER_ROW = 1 << 10


class GzipDamage(Exception):
    """The compressed stream broke ``offset`` bytes into a file of ``size`` bytes."""

    def __init__(self, kind: str, offset: int, size: int, detail: str) -> None:
        super().__init__(detail)
        self.kind, self.offset, self.size, self.detail = kind, offset, size, detail


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def _plain_blocks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while True:
            raw = fh.read(_BLOCK)
            if not raw:
                return
            yield raw


def lost_rows(damage: GzipDamage, lines_read: int) -> int:
    """Rows the unread compressed bytes held, at the read part's rate (at least the broken line)."""
    unread = max(damage.size - damage.offset, 0)
    if lines_read and damage.offset:
        estimate = round(unread * lines_read / damage.offset)
    else:
        estimate = unread // _FALLBACK_BYTES_PER_ROW
    return max(int(estimate), 1)


def iter_lines(
    path: str | Path, rejects: RejectLog, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[tuple[int, bytes]]:
    """``(line_number, raw_bytes)`` for every complete line (1-based, newline and ``\\r`` stripped).

    A truncated or corrupt gzip ends the stream with one reject naming the line where it broke and
    weighing the rows lost (see the module docstring); everything before it is yielded."""
    path = Path(path)
    blocks = _gzip_blocks(path) if is_gzip(path) else _plain_blocks(path)
    pending = b""
    line_no = 0
    first = True
    skipping = False  # inside a line longer than max_line_bytes
    try:
        for block in blocks:
            if first:
                block = block[len(_BOM):] if block.startswith(_BOM) else block
                first = False
            pending += block
            parts = pending.split(b"\n")
            pending = parts.pop()
            for part in parts:
                line_no += 1
                if skipping:
                    rejects.add(path, line_no, None, LINE_TOO_LONG, f"line longer than {max_line_bytes:,} bytes")
                    skipping = False
                    continue
                if len(part) > max_line_bytes:
                    rejects.add(path, line_no, None, LINE_TOO_LONG, f"line longer than {max_line_bytes:,} bytes")
                    continue
                yield line_no, part.rstrip(b"\r")
            if len(pending) > max_line_bytes:
                pending, skipping = b"", True
    except GzipDamage as damage:
        lost = lost_rows(damage, line_no)
        rejects.add(
            path, line_no + 1, None, damage.kind,
            f"{damage.detail} at byte {damage.offset:,} of {damage.size:,}; "
            f"kept the {line_no} complete lines before it; counted {lost:,} row(s) as lost",
            rows=lost,
        )
        return
    if skipping:
        rejects.add(path, line_no + 1, None, LINE_TOO_LONG, f"line longer than {max_line_bytes:,} bytes")
    elif pending:
        line_no += 1
        yield line_no, pending.rstrip(b"\r")


def _gzip_blocks(path: Path) -> Iterator[bytes]:
    """Decompressed blocks; raises ``GzipDamage`` at a truncation or on corrupt data. Concatenated gzip
    members (``cat a.gz b.gz``) are followed, as gzip(1) does; a file that ends exactly after a complete
    member is not mistaken for a truncated one."""
    size = path.stat().st_size
    decomp = zlib.decompressobj(wbits=31)
    started = False
    with open(path, "rb") as fh:
        while True:
            offset = fh.tell()
            raw = fh.read(_BLOCK)
            if not raw:
                break
            while raw:
                started = True
                snapshot = decomp.copy()
                try:
                    out = decomp.decompress(raw)
                except zlib.error as exc:
                    # Replay the block in small pieces from before it: keep what decodes ahead of the damage.
                    yield from _salvage(snapshot, raw, offset, size, exc)
                    raise AssertionError("unreachable: _salvage always raises") from exc
                if out:
                    yield out
                if decomp.eof:
                    consumed = len(raw) - len(decomp.unused_data)
                    raw = decomp.unused_data
                    offset += consumed
                    decomp = zlib.decompressobj(wbits=31)
                    started = False
                    if raw and not raw.startswith(_GZIP_MAGIC):
                        raw = b""  # trailing bytes after the last member: gzip(1) ignores them too
                else:
                    raw = b""
    tail = decomp.flush()
    if tail:
        yield tail
    if started and not decomp.eof:
        raise GzipDamage(TRUNCATED_GZIP, size, size, "the file ends before its end-of-stream marker")


def _salvage(decomp, raw: bytes, offset: int, size: int, original: zlib.error) -> Iterator[bytes]:
    """Feed ``raw`` piece by piece; yield the output until the damaged piece, then raise ``GzipDamage``."""
    for start in range(0, len(raw), _SALVAGE_PIECE):
        try:
            out = decomp.decompress(raw[start : start + _SALVAGE_PIECE])
        except zlib.error as exc:
            raise GzipDamage(CORRUPT_GZIP, offset + start, size, f"zlib: {exc}") from exc
        if out:
            yield out
        if decomp.eof:
            break
    raise GzipDamage(CORRUPT_GZIP, offset + len(raw), size, f"zlib: {original}") from original
