"""Ingestion: a publisher's files -> the normalized interactions / items / users tables.

One pass streams the raw file through the reader a chunk at a time: rows are validated (ids present,
rating a number inside the declared scale), user ids are salted-hashed (``hashing``), ratings are
normalized to [0, 1] (GLoM §3.3 mixes rating and sentiment on that scale), exact duplicates are
dropped, and everything else goes to a staging Parquet file. Then users and items below
``min_user_interactions`` / ``min_item_interactions`` are removed k-core style (counted, never
silent), the items table is joined with whatever metadata the layout has, and all outputs are
renamed into place together. A failure leaves no partial table behind; when it is the reject ratio
that fails, the rejects file (the thing to look at) is the one file written.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from glom_plugin.config import GlomConfig
from glom_plugin.data.dedup import DigestSet
from glom_plugin.data.hashing import hash_user_ids
from glom_plugin.data.readers.base import RatingScale, RawChunk, Reader
from glom_plugin.data.rejects import (
    DUPLICATE,
    EMPTY_ID,
    ID_NOT_SCALAR,
    MISSING_FIELD,
    RATING_NOT_NUMBER,
    RATING_OUT_OF_RANGE,
    TIMESTAMP_OUT_OF_RANGE,
    TRUNCATED_GZIP,
    RecordedRejects,
    RejectLog,
)
from glom_plugin.data.schema import INTERACTIONS_SCHEMA, ITEMS_SCHEMA, MAX_TIMESTAMP_MS, USERS_SCHEMA
from glom_plugin.layout import RunLayout

MAX_KCORE_ROUNDS = 20
FINAL_PASS_BATCH_ROWS = 1 << 19
# ``section(name)`` -> a context manager around one part of the work (a meter's, or nothing).
Section = Callable[[str], AbstractContextManager[object]]
_DIGEST_COLUMNS = ["user_id", "item_id", "rating", "review_title", "text", "timestamp_ms"]


def _unmetered(name: str) -> AbstractContextManager[object]:
    return nullcontext()


class IngestError(RuntimeError):
    """Ingestion refused the input (too many rejects, nothing left, unreadable layout)."""


@dataclass
class IngestReport:
    """What ingestion read, kept, rejected and filtered; written to ``layout.ingest_report``."""

    source_format: str
    source_files: list[str]
    meta_file: str | None
    rating_min: float
    rating_max: float
    rows_read: int = 0  # interaction lines/rows seen (parsed + rejected by the reader)
    rows_rejected: int = 0  # bad rows (duplicates excluded)
    rejects_by_reason: dict[str, int] = field(default_factory=dict)  # includes meta-file rejects
    meta_rejected: int = 0
    duplicates: int = 0
    rows_accepted: int = 0  # valid, distinct rows before the k-core filter
    users_before_filter: int = 0
    items_before_filter: int = 0
    min_user_interactions: int = 1
    min_item_interactions: int = 1
    kcore_rounds: int = 0
    filtered_interactions: int = 0
    filtered_users: int = 0
    filtered_items: int = 0
    # rows of filtered users with kept items (outside_interactions.parquet) and their distinct users
    outside_interactions: int = 0
    outside_users: int = 0
    n_interactions: int = 0
    n_users: int = 0
    n_items: int = 0
    n_items_with_metadata: int = 0
    share_with_text: float = 0.0
    reject_ratio: float = 0.0
    elapsed_s: float = 0.0
    outputs: dict[str, str] = field(default_factory=dict)
    # Seconds and peak RSS per part of the work (glom_plugin.stages.meter): {name: {"s", "peak_mb"}}.
    profile: dict[str, dict[str, float]] = field(default_factory=dict)

    def summary(self) -> str:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.rejects_by_reason.items())) or "none"
        return (
            f"ingest [{self.source_format}] read {self.rows_read:,} rows from {len(self.source_files)} file(s); "
            f"rejected {self.rows_rejected:,} ({self.reject_ratio:.2%}; {reasons}); duplicates {self.duplicates:,}; "
            f"accepted {self.rows_accepted:,} ({self.users_before_filter:,} users, {self.items_before_filter:,} items); "
            f"k-core (user>={self.min_user_interactions}, item>={self.min_item_interactions}, {self.kcore_rounds} rounds) "
            f"removed {self.filtered_interactions:,} interactions, {self.filtered_users:,} users, {self.filtered_items:,} items "
            f"({self.outside_users:,} of those users kept outside the graph with {self.outside_interactions:,} interactions); "
            f"kept {self.n_interactions:,} interactions, {self.n_users:,} users, {self.n_items:,} items "
            f"({self.n_items_with_metadata:,} with metadata), {self.share_with_text:.1%} with text; "
            f"rating scale [{self.rating_min:g}, {self.rating_max:g}]; {self.elapsed_s:.1f}s"
        )


# ------------------------------------------------------------------------------------------ validation


def _ids(values: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray, np.ndarray]:
    """(stripped string ids, missing mask, empty mask, not-an-id mask). An id is a string or an integer;
    a JSON list, object, boolean or fraction is not one (it would become an id like ``"[1, 2]"``)."""
    missing = values.isna().to_numpy()
    not_scalar = values.map(lambda v: isinstance(v, bool) or not isinstance(v, (str, int, np.integer))).to_numpy()
    not_scalar &= ~missing
    text = values.where(~missing & ~not_scalar, "").astype(str).str.strip()
    empty = (text == "").to_numpy() & ~missing & ~not_scalar
    return text, missing, empty, not_scalar


def _out_of_int64_range(values: pd.Series, bound: float) -> np.ndarray:
    number = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    return ~np.isnan(number) & (np.abs(number) >= bound)


def validate_chunk(chunk: RawChunk, scale: RatingScale, rejects: RejectLog) -> pd.DataFrame:
    """Rows of ``chunk`` that satisfy the interaction contract, with a float ``rating``; each other
    row becomes one reject naming file, line, field and reason (first failing check wins)."""
    frame = chunk.frame
    users, user_missing, user_empty, user_not_id = _ids(frame["user_id"])
    items, item_missing, item_empty, item_not_id = _ids(frame["item_id"])
    bad_stamp = _out_of_int64_range(frame["timestamp_ms"], MAX_TIMESTAMP_MS)
    raw_rating = frame["rating"]
    rating_missing = raw_rating.isna().to_numpy()
    is_bool = raw_rating.map(lambda v: isinstance(v, bool)).to_numpy()
    rating = pd.to_numeric(raw_rating.where(~is_bool, None), errors="coerce").to_numpy(dtype=np.float64)
    not_number = (np.isnan(rating) & ~rating_missing) | is_bool
    out_of_range = ~np.isnan(rating) & ((rating < scale.min) | (rating > scale.max) | ~np.isfinite(rating))

    checks: list[tuple[np.ndarray, str, str, Any]] = [
        (user_missing, "user_id", MISSING_FIELD, lambda i: "no user id"),
        (user_not_id, "user_id", ID_NOT_SCALAR, lambda i: f"a {type(frame['user_id'].iat[i]).__name__} is not an id"),
        (user_empty, "user_id", EMPTY_ID, lambda i: "user id is blank"),
        (item_missing, "item_id", MISSING_FIELD, lambda i: "no item id"),
        (item_not_id, "item_id", ID_NOT_SCALAR, lambda i: f"a {type(frame['item_id'].iat[i]).__name__} is not an id"),
        (item_empty, "item_id", EMPTY_ID, lambda i: "item id is blank"),
        (bad_stamp, "timestamp_ms", TIMESTAMP_OUT_OF_RANGE, lambda i: "beyond the year 2262 (not milliseconds?)"),
        (rating_missing, "rating", MISSING_FIELD, lambda i: "no rating"),
        # The offending value is described, not quoted: a shifted column could put a raw user id here.
        (not_number, "rating", RATING_NOT_NUMBER,
         lambda i: f"{type(raw_rating.iat[i]).__name__} value of {len(str(raw_rating.iat[i]))} characters"),
        (out_of_range, "rating", RATING_OUT_OF_RANGE,
         lambda i: f"value {rating[i]:g} outside [{scale.min:g}, {scale.max:g}]"),
    ]
    bad = np.zeros(len(frame), dtype=bool)
    lines = frame["_line"].to_numpy()
    for mask, field_name, reason, detail in checks:
        new = mask & ~bad
        for i in np.flatnonzero(new):
            rejects.add(chunk.source, int(lines[i]), field_name, reason, detail(i))
        bad |= new
    good = ~bad
    out = frame.loc[good].copy()
    out["user_id"] = users[good].to_numpy()
    out["item_id"] = items[good].to_numpy()
    out["rating"] = rating[good]
    for column in ("review_title", "text"):
        col = out[column]
        out[column] = col.where(col.isna(), col.astype(str))
    # An optional count beyond int64 is corrupt; it is dropped (null), the row is kept.
    votes = out["helpful_votes"]
    out["helpful_votes"] = votes.where(~_out_of_int64_range(votes, float(1 << 63)), None)
    return out


# ------------------------------------------------------------------------------------- table helpers


def _to_table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pandas(frame[list(schema.names)], schema=schema, preserve_index=False)


def _is_in(column: pa.ChunkedArray | pa.Array, keep: pa.Array) -> pa.Array:
    return pc.is_in(column, value_set=keep)


def _count(counter: Counter[str], values: pa.Array | pa.ChunkedArray) -> None:
    counts = pc.value_counts(values)
    counter.update(dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)))


# ---------------------------------------------------------------------------------------- the passes


@dataclass
class PreparedChunk:
    """One chunk after the per-row work of the first pass: valid rows with hashed user ids and normalized
    ratings as an ``INTERACTIONS_SCHEMA`` table (Arrow crosses a process boundary far cheaper than a frame
    of Python strings), their duplicate digests and source lines (``table`` empty when none was valid)."""

    source: Path
    table: pa.Table
    digests: np.ndarray
    lines: np.ndarray  # source line of each row, for duplicate rejects
    parsed: int  # rows the reader parsed (validation's input)
    # Rejects recorded away from the run's log (in a worker), to replay in order; None: already logged.
    rejects: RecordedRejects | None = None


def row_digests(rows: pd.DataFrame) -> np.ndarray:
    """64-bit digest of each row's identifying columns (``DigestSet`` finds exact duplicates by them)."""
    return pd.util.hash_pandas_object(rows[_DIGEST_COLUMNS].astype(object), index=False).to_numpy()


def prepare_chunk(
    chunk: RawChunk, scale: RatingScale, salt: str, rejects: RejectLog | RecordedRejects, section: Section = _unmetered
) -> PreparedChunk:
    """Validate a chunk's rows, hash their user ids, digest them: the first pass's work that needs no
    state from other chunks, so it can run in any process."""
    digests = np.empty(0, dtype=np.uint64)
    lines = np.empty(0, dtype=np.int64)
    if chunk.frame.empty:  # every line of the block was rejected by the reader
        return PreparedChunk(chunk.source, INTERACTIONS_SCHEMA.empty_table(), digests, lines, 0)
    with section("validate_rows"):
        rows = validate_chunk(chunk, scale, rejects)  # type: ignore[arg-type]
    if rows.empty:
        return PreparedChunk(chunk.source, INTERACTIONS_SCHEMA.empty_table(), digests, lines, len(chunk.frame))
    with section("hash_ids"):
        rows["user_id"] = hash_user_ids(rows["user_id"].to_numpy(), salt)
    with section("digest"):
        digests = row_digests(rows)
    with section("to_arrow"):
        rows["rating_norm"] = scale.normalize(rows["rating"].to_numpy())
        table = _to_table(rows, INTERACTIONS_SCHEMA)
    return PreparedChunk(chunk.source, table, digests, rows["_line"].to_numpy(), len(chunk.frame))


def sequential_chunks(
    reader: Reader, scale: RatingScale, salt: str, rejects: RejectLog, section: Section = _unmetered
) -> Iterator[PreparedChunk]:
    chunks = iter(reader.interaction_chunks())
    while True:
        with section("read"):
            chunk = next(chunks, None)
        if chunk is None:
            return
        yield prepare_chunk(chunk, scale, salt, rejects, section)


def first_pass(
    reader: Reader,
    scale: RatingScale,
    salt: str,
    rejects: RejectLog,
    out: Path,
    report: IngestReport,
    section: Section = _unmetered,
    workers: int = 1,
) -> tuple[Counter[str], Counter[str]]:
    """Validate, hash, normalize, dedup; stream accepted rows to ``out``; count per user and item.

    With ``workers`` > 1 and a reader that splits its files into line blocks, parsing, validation,
    hashing and digests run in that many worker processes (``parallel_ingest``), chunks in file order;
    deduplication, the staged file and the counts stay here, so the result is the same as with one.
    ``section(name)`` wraps each part of the work (the stage passes its meter's ``section``)."""
    from glom_plugin.data.parallel_ingest import parallel_chunks, use_workers

    digests = DigestSet()
    user_counts: Counter[str] = Counter()
    item_counts: Counter[str] = Counter()
    parsed = validation_rejected = 0
    if use_workers(reader, workers):
        prepared: Iterator[PreparedChunk] = parallel_chunks(reader, scale, salt, workers, section)
    else:
        prepared = sequential_chunks(reader, scale, salt, rejects, section)
    with pq.ParquetWriter(out, INTERACTIONS_SCHEMA) as writer, tqdm(
        desc="ingest", unit=" rows", unit_scale=True, disable=None
    ) as bar:
        for piece in prepared:
            if piece.rejects is not None:
                piece.rejects.replay(rejects)
            parsed += piece.parsed
            bar.update(piece.parsed)
            table = piece.table
            validation_rejected += piece.parsed - table.num_rows
            if table.num_rows == 0:
                continue
            with section("dedup"):
                fresh = digests.add_new(piece.digests)
                for line in piece.lines[~fresh]:
                    rejects.add(piece.source, int(line), None, DUPLICATE, "exact duplicate of an earlier review")
                report.duplicates += int((~fresh).sum())
                if not fresh.all():
                    table = table.filter(pa.array(fresh))
            with section("stage_write"):
                writer.write_table(table)
                _count(user_counts, table["user_id"])
                _count(item_counts, table["item_id"])
            report.rows_accepted += table.num_rows
    files = set(report.source_files)
    report.rows_rejected = sum(n for f, n in rejects.errors_by_file.items() if f in files)
    # Rows the reader could not parse (malformed lines, a truncated gzip's cut line) never reached a
    # chunk; rows rejected by validation did. Both are rows read.
    report.rows_read = parsed + report.rows_rejected - validation_rejected
    report.users_before_filter = len(user_counts)
    report.items_before_filter = len(item_counts)
    return user_counts, item_counts


def check_rejects(cfg: GlomConfig, rejects: RejectLog, files: list[str], report: IngestReport, layout: RunLayout) -> None:
    report.rejects_by_reason = dict(rejects.by_reason)
    report.reject_ratio = report.rows_rejected / report.rows_read if report.rows_read else 0.0
    if TRUNCATED_GZIP in rejects.first and cfg.data.truncated_gzip == "refuse":
        raise IngestError(
            f"{rejects.first[TRUNCATED_GZIP]}. How many rows are missing after the cut is unknown: "
            "fetch the complete file, or set data.truncated_gzip=keep to ingest the readable part."
        )
    if report.rows_read and report.reject_ratio > cfg.data.max_reject_ratio:
        firsts = "; ".join(rejects.first[r] for r in sorted(rejects.first) if r != DUPLICATE)
        raise IngestError(
            f"ingest of {', '.join(files)} rejected {report.rows_rejected:,} of {report.rows_read:,} rows "
            f"({report.reject_ratio:.1%}), above data.max_reject_ratio={cfg.data.max_reject_ratio:.1%}. "
            f"By reason: {dict(sorted(report.rejects_by_reason.items()))}. First of each: {firsts}. "
            f"Every rejected row is listed in {layout.rejects}."
        )
    if report.rows_accepted == 0:
        raise IngestError(f"ingest of {', '.join(files)} found no valid interaction rows; see {layout.rejects}")


def kcore(
    all_rows: Path, user_counts: Counter[str], item_counts: Counter[str], cfg: GlomConfig, report: IngestReport
) -> tuple[pa.Array, pa.Array]:
    """Iterate: drop users with < min_user and items with < min_item interactions, recount, until
    stable (removing an item can push a user under the bar). Each round rescans the staged ids only."""
    min_u, min_i = cfg.data.min_user_interactions, cfg.data.min_item_interactions
    keep_u = [u for u, c in user_counts.items() if c >= min_u]
    keep_i = [i for i, c in item_counts.items() if c >= min_i]
    rounds = 0
    while (len(keep_u) < len(user_counts) or len(keep_i) < len(item_counts)) and rounds < MAX_KCORE_ROUNDS:
        rounds += 1
        users_arr, items_arr = pa.array(keep_u, pa.string()), pa.array(keep_i, pa.string())
        user_counts, item_counts = Counter(), Counter()
        for batch in pq.ParquetFile(all_rows).iter_batches(columns=["user_id", "item_id"], batch_size=1 << 20):
            mask = pc.and_(_is_in(batch["user_id"], users_arr), _is_in(batch["item_id"], items_arr))
            _count(user_counts, pc.filter(batch["user_id"], mask))
            _count(item_counts, pc.filter(batch["item_id"], mask))
        keep_u = [u for u, c in user_counts.items() if c >= min_u]
        keep_i = [i for i, c in item_counts.items() if c >= min_i]
    report.kcore_rounds = rounds
    return pa.array(sorted(keep_u), pa.string()), pa.array(sorted(keep_i), pa.string())


def final_pass(all_rows: Path, keep_users: pa.Array, keep_items: pa.Array, stage: Path, report: IngestReport) -> None:
    """``interactions.parquet`` (rows of kept users and items) and ``users.parquet``; beside them
    ``outside_interactions.parquet``: rows of users the filter dropped with items it kept, so models can
    still score those users from their items without training on them (file order, as interactions)."""
    n_inter: Counter[str] = Counter()
    n_text: Counter[str] = Counter()
    outside_users: set[str] = set()
    report.outside_interactions = 0
    with pq.ParquetWriter(stage / "interactions.parquet", INTERACTIONS_SCHEMA) as writer, \
            pq.ParquetWriter(stage / "outside_interactions.parquet", INTERACTIONS_SCHEMA) as outside:
        # Large batches: pc.is_in builds its hash table of the kept ids (millions) on every call.
        for batch in pq.ParquetFile(all_rows).iter_batches(batch_size=FINAL_PASS_BATCH_ROWS):
            table = pa.Table.from_batches([batch]).cast(INTERACTIONS_SCHEMA)
            kept_user = _is_in(table["user_id"], keep_users)
            kept_item = _is_in(table["item_id"], keep_items)
            dropped_user = table.filter(pc.and_(pc.invert(kept_user), kept_item))
            if dropped_user.num_rows:
                outside.write_table(dropped_user)
                report.outside_interactions += dropped_user.num_rows
                outside_users.update(dropped_user["user_id"].to_pylist())
            table = table.filter(pc.and_(kept_user, kept_item))
            if table.num_rows == 0:
                continue
            writer.write_table(table)
            _count(n_inter, table["user_id"])
            has_text = pc.and_(pc.is_valid(table["text"]), pc.greater(pc.utf8_length(pc.fill_null(table["text"], "")), 0))
            _count(n_text, pc.filter(table["user_id"], has_text))
    report.outside_users = len(outside_users)
    report.n_interactions = int(sum(n_inter.values()))
    report.n_users = len(n_inter)
    report.filtered_interactions = report.rows_accepted - report.n_interactions
    report.filtered_users = report.users_before_filter - report.n_users
    report.share_with_text = round(sum(n_text.values()) / report.n_interactions, 6) if report.n_interactions else 0.0
    if report.n_interactions == 0:
        raise IngestError(
            f"no interaction survives min_user_interactions={report.min_user_interactions} and "
            f"min_item_interactions={report.min_item_interactions} ({report.rows_accepted:,} valid rows before filtering)"
        )
    users = sorted(n_inter)
    table = pa.table(
        {
            "user_id": pa.array(users, pa.string()),
            "n_interactions": pa.array([n_inter[u] for u in users], pa.int64()),
            "n_with_text": pa.array([n_text.get(u, 0) for u in users], pa.int64()),
        },
        schema=USERS_SCHEMA,
    )
    pq.write_table(table, stage / "users.parquet")


def write_items(reader: Reader, keep_items: pa.Array, out: Path, report: IngestReport) -> None:
    """One row per item that has interactions: its metadata when the layout has some (first record
    wins), nulls otherwise."""
    seen: set[str] = set()
    with pq.ParquetWriter(out, ITEMS_SCHEMA) as writer:
        for frame in reader.item_chunks():
            if frame.empty:
                continue
            frame = frame[frame["item_id"].notna()]
            frame = frame.assign(item_id=frame["item_id"].astype(str).str.strip())
            frame = frame[pc.is_in(pa.array(frame["item_id"], pa.string()), value_set=keep_items).to_numpy(zero_copy_only=False)]
            frame = frame[~frame["item_id"].isin(seen)].drop_duplicates("item_id")
            if frame.empty:
                continue
            frame = frame.assign(price=[p if p is None or (isinstance(p, float) and math.isfinite(p)) else None for p in frame["price"]])
            writer.write_table(_to_table(frame, ITEMS_SCHEMA))
            seen.update(frame["item_id"])
        report.n_items_with_metadata = len(seen)
        bare = [i for i in keep_items.to_pylist() if i not in seen]
        if bare:
            writer.write_table(_null_items(bare))
    report.n_items = len(keep_items)
    report.filtered_items = report.items_before_filter - report.n_items


def _null_items(item_ids: list[str]) -> pa.Table:
    columns = {name: pa.nulls(len(item_ids), ITEMS_SCHEMA.field(name).type) for name in ITEMS_SCHEMA.names}
    columns["item_id"] = pa.array(item_ids, pa.string())
    return pa.table(columns, schema=ITEMS_SCHEMA)
