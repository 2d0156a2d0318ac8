"""``SentimentScorer`` gives exactly ``score_sentiment``'s values (VADER, one text at a time, one process)
on real review text from Digital Music, in one process and across worker processes."""

from __future__ import annotations

import gzip
import json
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from glom_plugin.config import PolarityConfig
from glom_plugin.graph.polarity import review_text_values
from glom_plugin.text.sentiment import score_sentiment
from glom_plugin.text.sentiment_scorer import SentimentScorer


@pytest.fixture(scope="module")
def music_texts(data_dir: Path) -> list[str | None]:
    path = data_dir / "amazon-digital-music-2014" / "reviews_Digital_Music_5.json.gz"
    with gzip.open(path, "rt") as lines:
        records = [json.loads(line) for line in islice(lines, 1_500)]
    texts = review_text_values([r.get("summary") for r in records], [r.get("reviewText") for r in records])
    # Repeats, blanks and missing texts, as real tables have them.
    return texts + texts[:300] + ["", "   ", None, texts[0]]


def test_scores_equal_vader_in_process_and_in_workers(music_texts: list[str | None]) -> None:
    cfg = PolarityConfig()
    expected = score_sentiment(music_texts, cfg)
    with SentimentScorer(cfg, workers=1) as local:
        np.testing.assert_array_equal(local.score(music_texts), expected, strict=True)
        assert local.texts_scored == len({t for t in music_texts if isinstance(t, str) and t.strip()})
    with SentimentScorer(cfg, workers=2, min_parallel_texts=1) as parallel:
        first = parallel.score(music_texts[:900])
        second = parallel.score(music_texts[900:])  # partly answered by the memo
        assert parallel._pool is not None  # the workers did the scoring
    np.testing.assert_array_equal(np.concatenate([first, second]), expected, strict=True)
    assert np.isnan(expected[-4:-1]).all() and not np.isnan(expected[:-4]).any()


def test_memo_is_bounded(music_texts: list[str | None]) -> None:
    with SentimentScorer(PolarityConfig(), workers=1, memo_entries=50) as scorer:
        scorer.score(music_texts[:400])
        assert len(scorer._memo) == 50
        again = scorer.score(music_texts[:400])
    np.testing.assert_array_equal(again, score_sentiment(music_texts[:400], PolarityConfig()), strict=True)
