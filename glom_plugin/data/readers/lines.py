"""Line streams from plain or gzip files that survive a truncated gzip.

Public dumps are often cut short (the shared Amazon 2014 files are the first ~3.3 MB of each gzip).
``gzip.open`` raises ``EOFError`` somewhere inside its buffer and loses the bytes it had decoded,
so we drive ``zlib`` ourselves: every byte that decompresses is used, every complete line before
the cut is kept, and the cut itself becomes one reject ("truncated gzip at line N").
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

from glom_plugin.data.rejects import CORRUPT_GZIP, TRUNCATED_GZIP, RejectLog

_BLOCK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"


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


def iter_lines(path: str | Path, rejects: RejectLog) -> Iterator[tuple[int, bytes]]:
    """``(line_number, raw_bytes)`` for every complete line (1-based, newline and ``\\r`` stripped).

    A truncated or corrupt gzip ends the stream with one reject naming the line where it broke;
    the partial last line (if any) is that rejected line. Everything before it is yielded."""
    path = Path(path)
    blocks = _gzip_blocks(path) if is_gzip(path) else _plain_blocks(path)
    pending = b""
    line_no = 0
    try:
        for block in blocks:
            pending += block
            parts = pending.split(b"\n")
            pending = parts.pop()
            for part in parts:
                line_no += 1
                yield line_no, part.rstrip(b"\r")
    except EOFError:
        rejects.add(path, line_no + 1, None, TRUNCATED_GZIP,
                    f"truncated gzip at line {line_no + 1}; kept the {line_no} complete lines before it")
        return
    except zlib.error as exc:
        rejects.add(path, line_no + 1, None, CORRUPT_GZIP,
                    f"corrupt gzip at line {line_no + 1} ({exc}); kept the {line_no} complete lines before it")
        return
    if pending:
        line_no += 1
        yield line_no, pending.rstrip(b"\r")


def _gzip_blocks(path: Path) -> Iterator[bytes]:
    """Decompressed blocks; raises ``EOFError`` at a truncation and ``zlib.error`` on corrupt data.
    Concatenated gzip members (``cat a.gz b.gz``) are followed, as gzip(1) does; a file that ends
    exactly after a complete member is not mistaken for a truncated one."""
    decomp = zlib.decompressobj(wbits=31)
    started = False
    with open(path, "rb") as fh:
        while True:
            raw = fh.read(_BLOCK)
            if not raw:
                break
            while raw:
                started = True
                out = decomp.decompress(raw)
                if out:
                    yield out
                if decomp.eof:
                    raw = decomp.unused_data
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
        raise EOFError("compressed stream ended before the end-of-stream marker")
