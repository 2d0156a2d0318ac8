"""Exact-duplicate detection in bounded memory: 8 bytes per kept row, no Python objects per row.

Rows are reduced to a 64-bit digest (``pandas.util.hash_pandas_object``); digests live in a few
sorted numpy runs merged like a binary counter (an LSM tree in miniature), so a membership test is
a handful of ``searchsorted`` calls and 10M rows cost ~80 MB. Two different rows share a digest
with probability ~n²/2^65 (≈3e-6 at 10M rows): an accepted, documented approximation.
"""

from __future__ import annotations

import numpy as np


class DigestSet:
    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def __len__(self) -> int:
        return int(sum(len(run) for run in self._runs))

    def add_new(self, digests: np.ndarray) -> np.ndarray:
        """Record ``digests``; return a mask that is True where a digest was not seen before
        (earlier in this call or in any earlier call). The first occurrence is the one kept."""
        digests = np.asarray(digests, dtype=np.uint64)
        fresh = np.zeros(len(digests), dtype=bool)
        if not len(digests):
            return fresh
        uniq, first = np.unique(digests, return_index=True)
        unseen = np.ones(len(uniq), dtype=bool)
        for run in self._runs:
            pos = np.searchsorted(run, uniq)
            pos[pos == len(run)] = len(run) - 1
            unseen &= run[pos] != uniq
        fresh[first[unseen]] = True
        self._push(uniq[unseen])
        return fresh

    def _push(self, run: np.ndarray) -> None:
        if not len(run):
            return
        self._runs.append(run)
        # Merge while the newest run is at least half the size of the one before: O(log n) runs.
        while len(self._runs) > 1 and len(self._runs[-1]) * 2 >= len(self._runs[-2]):
            newest = self._runs.pop()
            older = self._runs.pop()
            self._runs.append(np.sort(np.concatenate([older, newest]), kind="mergesort"))
