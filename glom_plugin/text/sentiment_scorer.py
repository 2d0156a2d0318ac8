"""Sentiment of many reviews at once: each distinct text scored once, on every core.

Why: the graph stage scores every review (§3.3's s̃), and VADER is pure Python (~100 µs a review), so
at 10M reviews it is most of the stage. Two exact savings, neither of which changes a score:

* **Distinct texts only.** A score depends on the text alone, so identical texts (short stock reviews,
  repeated titles, generated data) are scored once: per call through ``pandas.factorize``, and across
  calls through a memo of up to ``memo_entries`` texts (bounded, so memory stays flat on data whose
  texts never repeat).
* **All cores.** Backends marked ``parallel = True`` (VADER: a deterministic function of the text) score
  the distinct texts in worker processes, one backend per worker, in order-preserving chunks. Others
  (a Hugging Face model, which brings its own threads and memory) run in this process.

``SentimentScorer(cfg).score(texts)`` returns the same float64 values as
``glom_plugin.text.sentiment.score_sentiment(texts, cfg)``: NaN for missing/blank text, backend scores
clipped to [0, 1].
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from glom_plugin.config import PolarityConfig
from glom_plugin.data.parallel_ingest import available_cores
from glom_plugin.text.sentiment import SentimentBackend, create_sentiment_backend

# Texts handed to a worker at once: large enough to hide the pickling, small enough to balance the cores.
WORKER_CHUNK = 2_000
# Below this many distinct texts the worker start-up (~1 s to import and build VADER) is not worth it.
MIN_PARALLEL_TEXTS = 20_000
MEMO_ENTRIES = 1_000_000

_worker_backend: SentimentBackend | None = None


def _init_worker(cfg_data: dict[str, Any]) -> None:
    global _worker_backend
    _worker_backend = create_sentiment_backend(PolarityConfig(**cfg_data))


def _score_in_worker(texts: list[str]) -> np.ndarray:
    assert _worker_backend is not None, "sentiment worker used before its initializer ran"
    return np.asarray(_worker_backend.score_batch(texts), dtype=np.float64)


class SentimentScorer:
    """Scores texts with ``cfg.sentiment_backend``; reusable across calls (the memo and the worker pool
    live as long as the scorer). Use as a context manager, or call ``close``, to stop the workers."""

    def __init__(
        self,
        cfg: PolarityConfig,
        workers: int | None = None,
        memo_entries: int = MEMO_ENTRIES,
        min_parallel_texts: int = MIN_PARALLEL_TEXTS,
    ) -> None:
        self.cfg = cfg
        self.workers = available_cores() if workers is None else max(1, workers)
        self.memo_entries = memo_entries
        self.min_parallel_texts = min_parallel_texts
        self._memo: dict[str, float] = {}
        self._backend: SentimentBackend | None = None
        self._pool: Any = None
        self.texts_seen = 0
        self.texts_scored = 0  # distinct texts the backend actually scored

    def __enter__(self) -> SentimentScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None

    # ------------------------------------------------------------------------------------------ scoring

    def score(self, texts: Sequence[str | None]) -> np.ndarray:
        """float64 per text: the backend's score clipped to [0, 1]; NaN where the text is missing or blank."""
        values = np.asarray(texts, dtype=object) if not isinstance(texts, np.ndarray) else texts
        scores = np.full(len(values), np.nan, dtype=np.float64)
        if not len(values):
            return scores
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        present = np.fromiter(
            (isinstance(text, str) and bool(text.strip()) for text in uniques), dtype=bool, count=len(uniques)
        )
        unique_scores = np.full(len(uniques), np.nan, dtype=np.float64)
        todo: list[int] = []
        for position in np.flatnonzero(present):
            known = self._memo.get(uniques[position])
            if known is None:
                todo.append(int(position))
            else:
                unique_scores[position] = known
        if todo:
            fresh = np.clip(self._score_distinct([uniques[i] for i in todo]), 0.0, 1.0)
            unique_scores[todo] = fresh
            room = self.memo_entries - len(self._memo)
            if room > 0:
                self._memo.update(zip((uniques[i] for i in todo[:room]), fresh[:room].tolist(), strict=True))
        self.texts_seen += int((codes >= 0).sum())
        self.texts_scored += len(todo)
        valid = codes >= 0
        scores[valid] = unique_scores[codes[valid]]
        return scores

    def _score_distinct(self, texts: list[str]) -> np.ndarray:
        if self._parallel(len(texts)):
            chunks = [texts[i : i + WORKER_CHUNK] for i in range(0, len(texts), WORKER_CHUNK)]
            return np.concatenate(list(self._worker_pool().imap(_score_in_worker, chunks)))
        backend = self._local_backend()
        batch = max(1, self.cfg.batch_size)
        parts = [np.asarray(backend.score_batch(texts[i : i + batch]), dtype=np.float64)
                 for i in range(0, len(texts), batch)]
        return np.concatenate(parts)

    def _parallel(self, n_texts: int) -> bool:
        if self.workers < 2 or (n_texts < self.min_parallel_texts and self._pool is None):
            return False
        return bool(getattr(self._local_backend(), "parallel", False))

    def _local_backend(self) -> SentimentBackend:
        if self._backend is None:
            self._backend = create_sentiment_backend(self.cfg)
        return self._backend

    def _worker_pool(self) -> Any:
        if self._pool is None:
            # spawn, not fork: the parent may hold torch / DGL threads, which fork does not copy safely.
            context = multiprocessing.get_context("spawn")
            self._pool = context.Pool(self.workers, initializer=_init_worker, initargs=(self.cfg.model_dump(),))
        return self._pool
