"""§3.3 polarity: p_uv = α·r̃ + (1−α)·s̃, like/dislike against the item's average sentiment, rating fallback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from glom_plugin.config import GlomConfig, PolarityConfig
from glom_plugin.data.schema import POLARITY_SCHEMA
from glom_plugin.graph.polarity import polarity_from_sentiment, review_texts, score_review_sentiment
from glom_plugin.text.sentiment import SENTIMENT_BACKENDS, create_sentiment_backend, score_sentiment


def frame(rows: list[tuple[str, str, float, float | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "rating_norm": [r[2] for r in rows],
            "sentiment": [np.nan if r[3] is None else r[3] for r in rows],
        }
    )


def test_hand_computed_polarity_and_likes() -> None:
    # Item X has reviews with sentiment 0.9, 0.5 -> average 0.7.
    rows = [
        ("u1", "X", 1.0, 0.9),  # p = .5*1 + .5*.9 = .95; .9 >= .7 and rating favourable -> like
        ("u2", "X", 0.75, 0.5),  # p = .625; .5 < .7 -> dislike
        ("u1", "Y", 0.0, 0.8),  # only review of Y: sentiment == average, but 1 star -> dislike (rating guard)
        (
            "u3",
            "Y",
            0.5,
            None,
        ),  # no text: p = rating; u3 mean rating = (0.5 + 1.0) / 2 = .75 -> .5 < .75 dislike
        ("u3", "Z", 1.0, None),  # no text: 1.0 >= .75 -> like
    ]
    out = polarity_from_sentiment(frame(rows), PolarityConfig(alpha=0.5))
    assert list(out.columns) == [f.name for f in POLARITY_SCHEMA]
    assert out["polarity"].tolist() == pytest.approx([0.95, 0.625, 0.4, 0.5, 1.0])
    assert out["liked"].tolist() == [True, False, False, False, True]
    assert out["polarity_source"].tolist() == ["rating+sentiment"] * 3 + ["rating"] * 2
    assert out["sentiment"].isna().tolist() == [False, False, False, True, True]


@pytest.mark.parametrize(
    ("alpha", "expected"), [(0.0, [0.9, 0.5]), (1.0, [1.0, 0.75]), (0.25, [0.925, 0.5625])]
)
def test_alpha_edge_cases(alpha: float, expected: list[float]) -> None:
    rows = [("u1", "X", 1.0, 0.9), ("u2", "X", 0.75, 0.5), ("u3", "X", 0.5, None)]
    out = polarity_from_sentiment(frame(rows), PolarityConfig(alpha=alpha))
    assert out["polarity"].tolist()[:2] == pytest.approx(expected)
    assert out["polarity"].iloc[2] == pytest.approx(0.5)  # no text: the rating whatever alpha is
    # alpha does not change like/dislike, which compares sentiment with the item average
    assert out["liked"].tolist()[:2] == [True, False]


def test_item_averages_come_from_the_frame_given() -> None:
    rows = [("u1", "X", 1.0, 0.6), ("u2", "X", 1.0, 0.9)]
    both = polarity_from_sentiment(frame(rows), PolarityConfig())
    alone = polarity_from_sentiment(frame(rows[:1]), PolarityConfig())
    assert both["liked"].tolist() == [False, True]  # 0.6 < mean 0.75
    assert alone["liked"].tolist() == [True]  # without u2's (held-out) review, u1's review is the average


def test_duplicate_pairs_are_refused() -> None:
    with pytest.raises(ValueError, match="repeat a"):
        polarity_from_sentiment(frame([("u1", "X", 1.0, 0.5), ("u1", "X", 0.5, 0.5)]), PolarityConfig())


def test_vader_sentiment_is_on_unit_interval_and_nan_for_missing() -> None:
    scores = score_sentiment(
        ["I love it, wonderful quality!", None, "   ", "Terrible. Broke in a day, awful."], PolarityConfig()
    )
    assert scores[0] > 0.75 and scores[3] < 0.25
    assert np.isnan(scores[1]) and np.isnan(scores[2])


def test_backend_registry() -> None:
    assert set(SENTIMENT_BACKENDS) >= {"vader", "hf"}
    with pytest.raises(ValueError, match="unknown polarity.sentiment_backend"):
        create_sentiment_backend(PolarityConfig(sentiment_backend="nope"))
    with pytest.raises(ValueError, match="hf_model_path"):
        create_sentiment_backend(PolarityConfig(sentiment_backend="hf"))


def test_review_text_joins_title_and_body() -> None:
    interactions = pd.DataFrame({"review_title": ["Great", None, " "], "text": ["works", "ok", None]})
    assert review_texts(interactions) == ["Great. works", "ok", None]


def test_score_review_sentiment_reuses_cache() -> None:
    interactions = pd.DataFrame(
        {
            "user_id": ["u1", "u2"],
            "item_id": ["X", "X"],
            "rating_norm": [1.0, 0.0],
            "review_title": [None, None],
            "text": ["Love it", "Hate it, awful"],
        }
    )
    cache = pd.DataFrame({"user_id": ["u1"], "item_id": ["X"], "sentiment": [0.123]})
    out = score_review_sentiment(interactions, GlomConfig(), cache=cache)
    assert out["sentiment"].iloc[0] == 0.123  # from the cache, not rescored
    assert out["sentiment"].iloc[1] < 0.5
    assert list(out.columns[:5]) == list(interactions.columns)


def test_hf_backend_loads_a_local_model_and_returns_positive_probability(tmp_path) -> None:
    """A tiny randomly initialised classifier saved locally stands in for a SiEBERT download: the test
    checks loading from a path (never the Hub), batching, and that the POSITIVE column is the one read."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    vocab = tmp_path / "vocab.txt"
    vocab.write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie", "very"])
    )
    tokenizer = BertTokenizer(str(vocab))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=9,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        num_labels=2,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
    )
    model = BertForSequenceClassification(config).eval()
    tokenizer.save_pretrained(tmp_path)
    model.save_pretrained(tmp_path)

    cfg = PolarityConfig(sentiment_backend="hf", hf_model_path=str(tmp_path), batch_size=2)
    texts = ["very good movie", None, "bad movie", "good"]
    scores = score_sentiment(texts, cfg)
    assert np.isnan(scores[1])
    with torch.no_grad():
        encoded = tokenizer(["very good movie", "bad movie", "good"], padding=True, return_tensors="pt")
        expected = torch.softmax(model(**encoded).logits, dim=-1)[:, 1].numpy()
    assert scores[[0, 2, 3]] == pytest.approx(expected, abs=1e-5)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        create_sentiment_backend(PolarityConfig(sentiment_backend="hf", hf_model_path=str(tmp_path / "nope")))


def test_repeat_reviews_are_averaged_into_one_edge() -> None:
    from glom_plugin.graph.polarity import merge_repeat_reviews

    scored = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u1", "u3", "u3"],
            "item_id": ["X", "X", "X", "Y", "Y", "Y"],
            "rating_norm": [1.0, 0.5, 0.25, 0.75, 0.0, 1.0],
            "sentiment": [0.8, np.nan, 0.4, 0.6, np.nan, np.nan],
            "text": ["a", None, "c", "d", None, None],
        }
    )
    merged, folded = merge_repeat_reviews(scored)
    assert folded == 2
    rows = {(r.user_id, r.item_id): r for r in merged.itertuples(index=False)}
    assert len(rows) == 4 == len(merged)
    assert rows[("u1", "X")].rating_norm == pytest.approx(0.75) and rows[
        ("u1", "X")
    ].sentiment == pytest.approx(0.8)
    assert rows[("u3", "Y")].rating_norm == pytest.approx(0.5) and np.isnan(rows[("u3", "Y")].sentiment)
    assert rows[("u2", "X")].rating_norm == 0.25
    polarity = polarity_from_sentiment(merged, PolarityConfig())
    assert not polarity.duplicated(["user_id", "item_id"]).any()
    untouched, none = merge_repeat_reviews(scored.iloc[[2, 3]])
    assert none == 0 and len(untouched) == 2
