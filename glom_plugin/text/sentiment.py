"""Review sentiment on [0, 1], the s̃ of the polarity score (§3.3).

The paper scores reviews with the fine-tuned RoBERTa of Hartmann et al. [25] (SiEBERT). Two backends
share one interface, found by name through ``SENTIMENT_BACKENDS`` (short name -> dotted class path,
the Feast ``ONLINE_STORE_CLASS_FOR_TYPE`` pattern, so a third-party backend is one map entry):

* ``"vader"`` — vaderSentiment, rule based, offline, ~50 µs per review on one core; the default so the
  pipeline runs anywhere. VADER's compound score in [-1, 1] is mapped to [0, 1] by (c + 1) / 2.
* ``"hf"`` — a local Hugging Face sequence-classification model (e.g. a SiEBERT download) at
  ``PolarityConfig.hf_model_path``, loaded with transformers from that path only (never the Hub); the
  score is the probability of the positive class.

Missing or blank text gets NaN: the caller (``glom_plugin.graph.polarity``) then falls back to the
rating alone and records that in ``polarity_source``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from tqdm.auto import tqdm

from glom_plugin.config import PolarityConfig
from glom_plugin.plugins import load_class

# Short name -> "module:Class". Each class takes the PolarityConfig and scores a list of non-empty texts.
SENTIMENT_BACKENDS: dict[str, str] = {
    "vader": "glom_plugin.text.sentiment:VaderSentiment",
    "hf": "glom_plugin.text.sentiment:HuggingFaceSentiment",
}


class SentimentBackend(Protocol):
    """Scores non-empty texts; returns float64 values in [0, 1] (1 = most positive)."""

    name: str

    def score_batch(self, texts: list[str]) -> np.ndarray: ...


class VaderSentiment:
    """VADER compound score mapped from [-1, 1] to [0, 1]."""

    name = "vader"
    # A pure function of the text: worker processes may score disjoint texts (text/sentiment_scorer.py).
    parallel = True

    def __init__(self, cfg: PolarityConfig) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()

    def score_batch(self, texts: list[str]) -> np.ndarray:
        compound = np.fromiter(
            (self._analyzer.polarity_scores(text)["compound"] for text in texts),
            dtype=np.float64,
            count=len(texts),
        )
        return (compound + 1.0) / 2.0


class HuggingFaceSentiment:
    """A local transformers sentiment classifier (the paper's SiEBERT when that is what the path holds).

    Loaded with ``local_files_only=True``: the pipeline must work offline, and a missing path is a
    configuration error, not a reason to download.
    """

    name = "hf"

    def __init__(self, cfg: PolarityConfig) -> None:
        from pathlib import Path

        if not cfg.hf_model_path:
            raise ValueError(
                "polarity.sentiment_backend='hf' needs polarity.hf_model_path (a local model directory)"
            )
        path = Path(cfg.hf_model_path)
        if not path.is_dir():
            raise FileNotFoundError(
                f"polarity.hf_model_path={str(path)!r} is not a directory holding a local model"
            )
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self._model = AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True)
        self._model.eval()
        self._device = "cuda" if torch.cuda.is_available() else "cpu"
        self._model.to(self._device)
        self._positive = self._positive_label_index(self._model.config.id2label)

    @staticmethod
    def _positive_label_index(id2label: dict[int, str]) -> int:
        """The class whose label names it positive (SiEBERT: {0: NEGATIVE, 1: POSITIVE}); the last class otherwise."""
        for index, label in id2label.items():
            if str(label).lower().startswith("pos"):
                return int(index)
        return max(int(i) for i in id2label)

    def score_batch(self, texts: list[str]) -> np.ndarray:
        encoded = self._tokenizer(texts, padding=True, truncation=True, max_length=512, return_tensors="pt")
        encoded = {key: value.to(self._device) for key, value in encoded.items()}
        with self._torch.no_grad():
            probabilities = self._torch.softmax(self._model(**encoded).logits, dim=-1)
        return probabilities[:, self._positive].double().cpu().numpy()


def create_sentiment_backend(cfg: PolarityConfig) -> SentimentBackend:
    """Instantiate the backend named by ``cfg.sentiment_backend`` (a registered name or ``module:Class``)."""
    cls = load_class(cfg.sentiment_backend, SENTIMENT_BACKENDS, SentimentBackend, "polarity.sentiment_backend")
    return cls(cfg)  # type: ignore[call-arg]


def sentiment_backend_key(cfg: PolarityConfig) -> str:
    """Identifies which scorer produced cached sentiment, so a cache from another backend is never reused."""
    if cfg.sentiment_backend == "hf":
        return f"hf:{cfg.hf_model_path}"
    return cfg.sentiment_backend


def score_sentiment(
    texts: Sequence[str | None], cfg: PolarityConfig, backend: SentimentBackend | None = None
) -> np.ndarray:
    """Sentiment in [0, 1] per text, NaN where the text is missing or blank. Batched with a progress bar."""
    scores = np.full(len(texts), np.nan, dtype=np.float64)
    present = [i for i, text in enumerate(texts) if isinstance(text, str) and text.strip()]
    if not present:
        return scores
    backend = backend or create_sentiment_backend(cfg)
    batch = max(1, cfg.batch_size)
    with tqdm(total=len(present), desc=f"sentiment ({backend.name})", unit="review", leave=False) as bar:
        for start in range(0, len(present), batch):
            chunk = present[start : start + batch]
            values = backend.score_batch([texts[i] for i in chunk])  # type: ignore[misc]
            scores[chunk] = np.clip(values, 0.0, 1.0)
            bar.update(len(chunk))
    return scores
