"""The one registry loader: short names and ``module:Class`` paths resolve alike for every registry,
unknown names list what exists, and a class of the wrong kind is refused with its path."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import pytest

from glom_plugin.config import GlomConfig, PolarityConfig
from glom_plugin.data.readers import READER_REGISTRY, Reader, reader_class
from glom_plugin.data.readers.delimited import MALReader
from glom_plugin.graph.lsh import CANDIDATE_BACKENDS, load_candidate_backend, minhash_candidate_pairs
from glom_plugin.graph.similarity import resolve_similarity_backend
from glom_plugin.models.base import LookalikeModel
from glom_plugin.models.random_scores import RandomModel
from glom_plugin.models.registry import create_model, load_model_class
from glom_plugin.plugins import load_class, load_function, load_object, resolve_path
from glom_plugin.text.profiles import create_builder
from glom_plugin.text.sentiment import VaderSentiment, create_sentiment_backend

REGISTRY = {"reader-mal": "glom_plugin.data.readers.delimited:MALReader"}


class Scorer(Protocol):
    def score_batch(self, texts: list[str]) -> np.ndarray: ...


class NotAScorer:
    """Has no ``score_batch``: refused by the Scorer protocol check."""


class ThirdPartySentiment:
    """A backend that lives outside the package's registry, loaded by its ``module:Class`` path."""

    name = "third-party"

    def __init__(self, cfg: PolarityConfig) -> None:
        self.cfg = cfg

    def score_batch(self, texts: list[str]) -> np.ndarray:
        return np.full(len(texts), 0.25)


def test_a_short_name_and_its_path_load_the_same_class():
    assert load_class("reader-mal", REGISTRY, Reader, "data.source_format") is MALReader
    assert load_class(REGISTRY["reader-mal"], REGISTRY, Reader, "data.source_format") is MALReader
    assert load_class(REGISTRY["reader-mal"], {}, Reader, "data.source_format") is MALReader


def test_unknown_name_lists_the_available_names_and_the_setting():
    with pytest.raises(ValueError) as error:
        load_class("yelp", READER_REGISTRY, Reader, "data.source_format", also=("synthetic",))
    message = str(error.value)
    assert message.startswith("unknown data.source_format 'yelp'; available: ")
    for name in [*READER_REGISTRY, "synthetic"]:
        assert name in message
    assert "package.module:Name" in message


def test_a_path_that_is_not_a_python_path_is_an_unknown_name():
    for text in ("glom_plugin.models.lr", "a b:C", ":Class", "module:"):
        with pytest.raises(ValueError, match="unknown model"):
            resolve_path(text, {}, "model")


def test_wrong_base_class_is_refused_with_its_path():
    with pytest.raises(TypeError, match=r"model 'glom_plugin.data.readers.delimited:MALReader'.*LookalikeModel"):
        load_class("glom_plugin.data.readers.delimited:MALReader", {}, LookalikeModel, "model")
    with pytest.raises(TypeError, match="is not a class"):
        load_class("glom_plugin.graph.lsh:minhash_candidate_pairs", {}, Reader, "data.source_format")


def test_protocols_are_checked_by_their_methods():
    here = f"{__name__}:ThirdPartySentiment"
    assert load_class(here, {}, Scorer, "polarity.sentiment_backend") is ThirdPartySentiment
    with pytest.raises(TypeError, match=r"does not implement Scorer: lacks \['score_batch'\]"):
        load_class(f"{__name__}:NotAScorer", {}, Scorer, "polarity.sentiment_backend")


def test_missing_module_and_missing_attribute_name_the_entry():
    with pytest.raises(ModuleNotFoundError, match="similarity backend 'nowhere.at_all:fn' lives in nowhere.at_all"):
        load_function("nowhere.at_all:fn", {}, "similarity backend")
    with pytest.raises(ImportError, match="glom_plugin.graph.lsh has no attribute 'no_such_function'"):
        load_object("glom_plugin.graph.lsh:no_such_function", {}, "LSH backend")
    with pytest.raises(TypeError, match="is not callable"):
        load_function("glom_plugin.graph.lsh:MERSENNE_PRIME", {}, "LSH backend")


def test_every_registry_accepts_module_class_paths():
    assert load_model_class("glom_plugin.models.random_scores:RandomModel") is RandomModel
    assert create_model("glom_plugin.models.random_scores:RandomModel", GlomConfig()).name.endswith("RandomModel")
    assert reader_class("glom_plugin.data.readers.delimited:MALReader") is MALReader
    assert load_candidate_backend(CANDIDATE_BACKENDS["numpy"]) is minhash_candidate_pairs
    assert load_candidate_backend("numpy") is minhash_candidate_pairs
    memory = resolve_similarity_backend("memory")
    assert resolve_similarity_backend("glom_plugin.graph.similarity:pearson_similarity_memory") is memory
    backend = create_sentiment_backend(PolarityConfig(sentiment_backend=f"{__name__}:ThirdPartySentiment"))
    assert isinstance(backend, ThirdPartySentiment)
    assert backend.score_batch(["a", "b"]).tolist() == [0.25, 0.25]
    assert isinstance(create_sentiment_backend(PolarityConfig()), VaderSentiment)


def test_every_registry_names_its_setting_when_a_name_is_unknown(tmp_path: Path):
    cases = [
        (lambda: load_model_class("glom-attn9"), "unknown model 'glom-attn9'"),
        (lambda: reader_class("yelp"), "unknown data.source_format 'yelp'"),
        (lambda: resolve_similarity_backend("nope"), "unknown similarity backend 'nope'"),
        (lambda: load_candidate_backend("nope"), "unknown LSH backend 'nope'"),
        (
            lambda: create_sentiment_backend(PolarityConfig(sentiment_backend="nope")),
            "unknown polarity.sentiment_backend 'nope'",
        ),
        (
            lambda: create_builder(GlomConfig().with_overrides(**{"profiles.builder": "nope"}), tmp_path),
            "unknown profiles.builder 'nope'",
        ),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    builder = create_builder(GlomConfig(), tmp_path)
    assert builder.name == "offline"
