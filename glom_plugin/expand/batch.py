"""Many campaigns at once (GLoM §3.7 for a night's worth of audiences): one blocked matrix product of every
user against every campaign, and a running per-campaign top k.

Scoring campaign by campaign reads the whole embedding matrix once per campaign; here it is read once per
*chunk* of campaigns. For each block of users the scores against the chunk's queries come from one GEMM
(``mean``: the campaigns' centroids; ``max`` / ``probabilistic``: every seed of every campaign, reduced per
campaign with ``reduceat``), seeds are masked out, and only scores that beat a campaign's current k-th
best (and reach its T) leave the block. Each campaign's short list is then re-scored exactly as online
(``expander.shortlist_ranking``): the same users, order (best first, ties by lower row) and scores.

Memory: the embedding matrix is only read; the working set is one score block (``block_bytes``), the
block's normalised rows and the chunk's running top k (``state_entries``), so it stays a fraction of the
matrix however many campaigns there are.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from glom_plugin.expand.aggregation import AGGREGATIONS, SeedSet, l2_normalize
from glom_plugin.expand.expander import RESCORE_SLACK, SEARCH_MARGIN, shortlist_ranking

BLOCK_BYTES = 16 << 20  # one block of float32 scores (32 MB: same speed, +40 MB peak)
STATE_ENTRIES = 4 << 20  # running (campaign, score, row) entries kept per chunk
MAX_QUERY_COLUMNS = 8192  # query columns (centroids or seeds) per chunk
MERGE_FACTOR = 4  # merge buffered entries once they outnumber the kept ones this many times
# blocks queued per thread, at most: a deep queue keeps the threads busy while the caller merges; each
# finished block holds only its survivors, many for the first blocks (weak gate), so the queue starts at
# one block per thread and deepens as blocks are taken (``_in_order``)
AHEAD_PER_THREAD = 8
_T = TypeVar("_T")


@dataclass(frozen=True)
class BatchCampaign:
    """One campaign's resolved seed rows, its k and its T (None: no threshold)."""

    name: str
    seed_rows: np.ndarray
    k: int
    threshold: float | None = None


@dataclass(frozen=True)
class BatchRanking:
    campaign: BatchCampaign
    rows: np.ndarray  # best first
    scores: np.ndarray  # float32, aligned with rows


def _queries(embeddings: np.ndarray, chunk: list[BatchCampaign], aggregation: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(d x columns) query matrix and, for per-seed aggregations, each campaign's first column."""
    if aggregation == "mean":
        centroids = [SeedSet.of(embeddings[c.seed_rows]).centroid for c in chunk]
        return np.ascontiguousarray(np.stack(centroids).T), None
    seeds = l2_normalize(embeddings[np.concatenate([c.seed_rows for c in chunk])])
    starts = np.cumsum([0] + [len(c.seed_rows) for c in chunk[:-1]])
    return np.ascontiguousarray(seeds.T), starts


def _aggregate(sims: np.ndarray, aggregation: str, starts: np.ndarray | None) -> np.ndarray:
    if aggregation == "mean":
        return sims
    if aggregation == "max":
        return np.maximum.reduceat(sims, starts, axis=1)
    clipped = np.clip(sims, 0.0, 1.0 - 1e-7, out=sims)
    return -np.expm1(np.add.reduceat(np.log1p(-clipped, out=clipped), starts, axis=1))


def _inverse_norms(embeddings: np.ndarray, rows: int = 1 << 16) -> np.ndarray:
    """1 / |e_u| for every user (4 bytes a user), so a block is normalised with one multiply."""
    out = np.empty(len(embeddings), dtype=np.float32)
    for start in range(0, len(embeddings), rows):
        block = np.asarray(embeddings[start : start + rows], dtype=np.float32)
        out[start : start + rows] = 1.0 / np.maximum(np.sqrt(np.add.reduce(block * block, axis=1)), 1e-12)
    return out


def _float32_at_least(threshold: float | None) -> np.float32:
    """The largest float32 g with (score > g) <=> (score >= threshold) for float32 scores."""
    if threshold is None:
        return np.float32(-np.inf)
    t = np.float32(threshold)
    if float(t) < threshold:
        t = np.nextafter(t, np.float32(np.inf))
    return np.nextafter(t, np.float32(-np.inf))


def _descending_key(scores: np.ndarray) -> np.ndarray:
    """uint64 keys whose ascending order is the float32 scores' descending order (IEEE bits, sign-folded)."""
    bits = (-scores.astype(np.float32)).view(np.uint32)
    folded = np.where(bits & np.uint32(0x80000000), ~bits, bits | np.uint32(0x80000000))
    return folded.astype(np.uint64)


class _RunningTopK:
    """Per campaign, the best k (score, row) seen so far, as padded (campaigns x k_max) arrays.

    New entries are buffered and merged in bulk (one lexsort), so the cost is O(entries log entries)
    overall, not per block; the k-th best used for pruning may lag a merge behind, which only lets a few
    more entries through — never drops one that belongs.
    """

    def __init__(self, ks: np.ndarray) -> None:
        self.ks = ks
        self.k_max = int(ks.max())
        n = len(ks)
        self.scores = np.full((n, self.k_max), -np.inf, dtype=np.float32)
        self.rows = np.full((n, self.k_max), -1, dtype=np.int64)
        self.kth = np.full(n, -np.inf, dtype=np.float32)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending_size = 0

    def add(self, campaigns: np.ndarray, scores: np.ndarray, rows: np.ndarray) -> None:
        self._pending.append((campaigns, scores, rows))
        self._pending_size += len(campaigns)
        if self._pending_size >= MERGE_FACTOR * self.scores.size:
            self.merge()

    def merge(self) -> None:
        if not self._pending:
            return
        live = self.rows >= 0
        held_c = np.nonzero(live)[0]
        campaigns = np.concatenate([held_c] + [p[0] for p in self._pending])
        scores = np.concatenate([self.scores[live]] + [p[1] for p in self._pending])
        rows = np.concatenate([self.rows[live]] + [p[2] for p in self._pending])
        self._pending, self._pending_size = [], 0
        # By campaign, best first, ties by lower row: held entries come first and pending ones in block
        # order, so position order *is* row order among ties, and one stable sort of a 64-bit key
        # (campaign, descending score) does what a three-key lexsort would.
        order = np.argsort((campaigns.astype(np.uint64) << np.uint64(32)) | _descending_key(scores), kind="stable")
        campaigns, scores, rows = campaigns[order], scores[order], rows[order]
        first = np.searchsorted(campaigns, campaigns, side="left")
        rank = np.arange(len(campaigns)) - first
        keep = rank < self.ks[campaigns]
        campaigns, scores, rows, rank = campaigns[keep], scores[keep], rows[keep], rank[keep]
        self.scores.fill(-np.inf)
        self.rows.fill(-1)
        self.scores[campaigns, rank] = scores
        self.rows[campaigns, rank] = rows
        self.kth = self.scores[np.arange(len(self.ks)), self.ks - 1]

    def result(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        self.merge()
        live = self.rows[c] >= 0
        return self.rows[c][live], self.scores[c][live]


def campaign_chunks(campaigns: list[BatchCampaign], aggregation: str, state_entries: int) -> Iterator[list[BatchCampaign]]:
    """Consecutive campaigns whose query columns and padded running top k (campaigns x largest k) fit."""
    chunk: list[BatchCampaign] = []
    columns = k_max = 0
    for campaign in campaigns:
        width = 1 if aggregation == "mean" else len(campaign.seed_rows)
        wider = max(k_max, campaign.k)
        if chunk and (columns + width > MAX_QUERY_COLUMNS or (len(chunk) + 1) * wider > state_entries):
            yield chunk
            chunk, columns, wider = [], 0, campaign.k
        chunk.append(campaign)
        columns += width
        k_max = wider
    if chunk:
        yield chunk


def rank_campaigns(
    embeddings: np.ndarray,
    campaigns: list[BatchCampaign],
    aggregation: str = "mean",
    block_bytes: int = BLOCK_BYTES,
    state_entries: int = STATE_ENTRIES,
    progress: Callable[[int], None] | None = None,
    threads: int | None = None,
) -> Iterator[BatchRanking]:
    """Each campaign's exact top k (score >= T) over every non-seed user, in input order, chunk by chunk.

    ``threads`` blocks are scored at once (None: one per core), each with a single-threaded BLAS product:
    the product is all a multi-threaded BLAS would spread over the cores, while the masking and the
    survivor scan after it are single-threaded NumPy, so one block per core keeps every core busy through
    both. Survivors are merged in block order, so the answer does not depend on ``threads``.
    ``progress(n_users)`` is called after each block of users of each chunk.
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; choose one of {AGGREGATIONS}")
    for campaign in campaigns:
        if len(campaign.seed_rows) == 0 or campaign.k < 1:
            raise ValueError(f"campaign {campaign.name!r}: needs at least one seed and k >= 1")
    workers = max(1, threads if threads is not None else (os.cpu_count() or 1))
    inverse_norms = _inverse_norms(embeddings)
    with ExitStack() as stack:
        pool = None
        if workers > 1:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=workers, thread_name_prefix="expand-batch"))
        for chunk in campaign_chunks(campaigns, aggregation, state_entries):
            yield from _rank_chunk(embeddings, inverse_norms, chunk, aggregation, block_bytes, progress, pool, workers)


def _rank_chunk(
    embeddings: np.ndarray,
    inverse_norms: np.ndarray,
    chunk: list[BatchCampaign],
    aggregation: str,
    block_bytes: int,
    progress: Callable[[int], None] | None,
    pool: ThreadPoolExecutor | None,
    workers: int,
) -> Iterator[BatchRanking]:
    """One chunk of campaigns: every block of users scored against the chunk's queries, survivors kept."""
    n = len(embeddings)
    queries, starts = _queries(embeddings, chunk, aggregation)
    block = max(1, min(n, block_bytes // (4 * queries.shape[1])))
    # k + SEARCH_MARGIN per campaign and T - RESCORE_SLACK: the short list that exact_similarity
    # re-scores, exactly as the online path does (expander.shortlist_ranking)
    top = _RunningTopK(np.array([min(c.k + SEARCH_MARGIN, n) for c in chunk]))
    floors = np.array(
        [_float32_at_least(None if c.threshold is None else c.threshold - RESCORE_SLACK) for c in chunk], dtype=np.float32
    )
    seed_rows = np.concatenate([c.seed_rows for c in chunk])
    seed_campaign = np.repeat(np.arange(len(chunk)), [len(c.seed_rows) for c in chunk])
    by_row = np.argsort(seed_rows, kind="stable")
    seed_rows, seed_campaign = seed_rows[by_row], seed_campaign[by_row]

    def block_scores(start: int, stop: int) -> np.ndarray:
        units = embeddings[start:stop] * inverse_norms[start:stop, None]  # BLAS pass only; re-scored exactly
        scores = _aggregate(units @ queries, aggregation, starts)
        lo, hi = np.searchsorted(seed_rows, [start, stop])
        scores[seed_rows[lo:hi] - start, seed_campaign[lo:hi]] = -np.inf  # seeds are never lookalikes
        return scores

    def survivors(scores: np.ndarray, start: int, gate: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # flatnonzero + divmod: ~10x faster than a 2-D nonzero over the same block
        r, c = np.divmod(np.flatnonzero(scores > gate[None, :]), scores.shape[1])
        return c, scores[r, c], r + start

    def scored_block(start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # the gate read here may lag a merge behind: a k-th best so far only ever bounds the final one from
        # below, so a stale one lets a few more entries through and never drops one that belongs
        return survivors(block_scores(start, min(n, start + block)), start, np.maximum(top.kth, floors))

    first_stop = min(n, block)
    scores = block_scores(0, first_stop)
    gate = floors
    if top.k_max < first_stop:
        # nothing kept yet: the block's own k-th best bounds each campaign's final k-th best from below;
        # ties with it pass (the lower row must be able to win them in the merge)
        kth = np.partition(scores, first_stop - top.k_max, axis=0)[first_stop - top.k_max]  # one copy, not two
        gate = np.maximum(gate, np.nextafter(kth, np.float32(-np.inf)))
    top.add(*survivors(scores, 0, gate))
    top.merge()  # from here on every campaign's k-th best prunes
    del scores
    if progress is not None:
        progress(first_stop)
    starts_left = range(first_stop, n, block)
    if pool is None:
        results: Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]] = map(scored_block, starts_left)
    else:
        results = _in_order(pool, scored_block, starts_left, ahead=AHEAD_PER_THREAD * workers, first_ahead=workers)
    for done, (start, kept) in enumerate(zip(starts_left, results, strict=True), start=1):
        top.add(*kept)
        if done & (done - 1) == 0:
            # also merge after 1, 2, 4, 8, ... blocks: the first block's k-th best is a weak gate (a block
            # holds few of a campaign's lookalikes), and cheap early merges tighten it before the bulk
            # of the users streams through, so later blocks let far fewer entries through
            top.merge()
        if progress is not None:
            progress(min(n, start + block) - start)
    for i, campaign in enumerate(chunk):
        rows, scores = top.result(i)
        ascending = np.argsort(rows)
        seeds = SeedSet.of(embeddings[campaign.seed_rows])
        rows, scores = shortlist_ranking(
            embeddings, rows[ascending], scores[ascending], seeds, aggregation, campaign.k, campaign.threshold
        )
        yield BatchRanking(campaign, rows, scores)


def _in_order(
    pool: ThreadPoolExecutor, work: Callable[[int], _T], items: Iterable[int], ahead: int, first_ahead: int
) -> Iterator[_T]:
    """``map(work, items)`` on ``pool``, in order, with at most ``first_ahead`` results in flight at first,
    one more per result taken, up to ``ahead``: the first blocks prune with a weak gate and return many
    survivors, so only a few run at once until the early merges have tightened it."""
    pending: deque[Future[_T]] = deque()
    remaining = iter(items)
    taken = 0
    while True:
        while len(pending) < min(ahead, first_ahead + taken):
            item = next(remaining, None)
            if item is None:
                break
            pending.append(pool.submit(work, item))
        if not pending:
            return
        yield pending.popleft().result()
        taken += 1
