"""The first pass of ingestion on every core: line blocks parsed, validated, hashed and digested in
worker processes, handed back in file order.

Why: parsing JSON lines is pure Python (~50 µs a review), the largest part of ingesting 10M reviews.
The main process keeps what needs one view of the whole file — reading and splitting the (gzip) stream,
exact-duplicate detection, the staged Parquet file, the per-user and per-item counts — and the workers do
the per-row work (``ingest.prepare_chunk``), each with its own reader instance. A worker records its
rejects (``RecordedRejects``) and the main process replays them chunk by chunk, so rejects, counts and
outputs are those of a single process. At most ``2 × workers`` blocks are in flight, so memory stays
bounded by a few chunks whatever the file size. Small inputs are read in-process: starting workers
costs a few seconds.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from glom_plugin.config import DataConfig
from glom_plugin.data.ingest import PreparedChunk, Section, _unmetered, prepare_chunk
from glom_plugin.data.readers.base import LineBlock, RatingScale, Reader
from glom_plugin.data.rejects import RecordedRejects

# Below this many bytes of interaction files, worker start-up outweighs the parallel parse.
MIN_PARALLEL_BYTES = 32 << 20
IN_FLIGHT_PER_WORKER = 2

_state: dict[str, Any] = {}


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def use_workers(reader: Reader, workers: int, min_bytes: int | None = None) -> bool:
    """Whether the first pass should run on ``workers`` processes for this reader and input
    (``min_bytes``: default ``MIN_PARALLEL_BYTES``)."""
    if workers < 2 or not type(reader).splits_lines:
        return False
    threshold = MIN_PARALLEL_BYTES if min_bytes is None else min_bytes
    return sum(Path(f).stat().st_size for f in reader.interaction_files()) >= threshold


def _init_worker(reader_class: type[Reader], data_cfg: dict[str, Any], source: str, chunk_rows: int,
                 scale: RatingScale, salt: str) -> None:
    recorder = RecordedRejects()
    _state["reader"] = reader_class(DataConfig(**data_cfg), Path(source), recorder, chunk_rows)  # type: ignore[arg-type]
    _state["scale"] = scale
    _state["salt"] = salt


def _prepare_block(block: LineBlock) -> PreparedChunk:
    reader: Reader = _state["reader"]
    recorder = RecordedRejects()
    reader.rejects = recorder  # type: ignore[assignment]
    prepared = prepare_chunk(reader.parse_block(block), _state["scale"], _state["salt"], recorder)
    prepared.rejects = recorder
    return prepared


def parallel_chunks(
    reader: Reader, scale: RatingScale, salt: str, workers: int, section: Section = _unmetered
) -> Iterator[PreparedChunk]:
    """``PreparedChunk`` per line block of ``reader``, in file order, computed by ``workers`` processes.
    Line-level rejects of the stream itself (a line too long, a damaged gzip) go to ``reader.rejects``
    here; each chunk's other rejects come back with it, to be replayed by the caller."""
    # spawn, not fork: the parent may hold threads (pyarrow, tqdm) that fork does not copy safely. The
    # salt reaches the workers through the spawn pipe only; it is never written or logged.
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(
        workers,
        initializer=_init_worker,
        initargs=(type(reader), reader.cfg.model_dump(), str(reader.source), reader.chunk_rows, scale, salt),
    )
    pending: deque[Any] = deque()
    try:
        blocks = reader.interaction_blocks()
        while True:
            with section("read"):
                block = next(blocks, None)
            if block is None:
                break
            pending.append(pool.apply_async(_prepare_block, (block,)))
            if len(pending) >= IN_FLIGHT_PER_WORKER * workers:
                with section("wait_workers"):
                    done = pending.popleft().get()
                yield done
        while pending:
            with section("wait_workers"):
                done = pending.popleft().get()
            yield done
        pool.close()
    finally:
        pool.terminate()
        pool.join()
