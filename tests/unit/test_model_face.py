"""One model face (issue 12): every model family fits, saves, loads and expands the same way.

For one registry name per model class: ``expand`` returns the top k of exactly what ``score_campaign``
gives for the realistic protocol's campaign over those seeds (``population_campaign`` with the seed
list's own non-seed sample), in the same order; a saved and reloaded model expands identically; the
saved directory says what it is.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from glom_plugin.config import GlomConfig
from glom_plugin.models.base import EmbeddingLookalikeModel, LookalikeModel
from glom_plugin.models.registry import create_model
from glom_plugin.models.saved import is_saved_model, load_model, save_model
from tests.support.model_face import FAST, evaluation_ranking
from tests.support.planted import make_planted_data

# One name per model class of the registry.
FAMILIES = [
    "glom-seedset", "pm", "glom-hybrid", "lr", "graphsage", "lightgcn", "pinterest", "metaheac",
    "similarity-jaccard-max", "similarity-cosine-prob", "segments", "graph-constraint", "cosine-centroid",
    "popularity", "random",
]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return make_planted_data(n_users=160, n_communities=4, n_items=60, seed=2)


@pytest.fixture(scope="module")
def fitted(data):
    cfg = GlomConfig().with_overrides(**FAST)
    cache: dict[str, LookalikeModel] = {}

    def get(name: str) -> LookalikeModel:
        if name not in cache:
            cache[name] = create_model(name, cfg, seed=5).fit(data)
        return cache[name]

    return get


def seeds_of(data, n: int = 12) -> list[str]:
    return [str(u) for u in data.user_ids[np.arange(0, 4 * n, 4)]]


@pytest.mark.parametrize("name", FAMILIES)
def test_expand_is_the_top_k_of_what_the_evaluation_scores(fitted, data, name):
    if name == "random":
        pytest.skip("random scores are a fresh draw per call: there is no fixed ranking to compare")
    model = fitted(name)
    seeds = seeds_of(data)
    result = model.expand(seeds, 25)
    rows, scores = evaluation_ranking(model, seeds, 25)
    assert len(result.rows) == 25 and not set(result.user_ids) & set(seeds)
    np.testing.assert_array_equal(result.rows, rows)
    np.testing.assert_allclose(result.scores, scores, atol=1e-6)


@pytest.mark.parametrize("name", FAMILIES)
def test_a_saved_model_loads_and_expands_the_same(fitted, data, tmp_path, name):
    model = fitted(name)
    seeds = seeds_of(data)
    directory = save_model(model, tmp_path / name, metrics={"note": "test"})
    assert is_saved_model(directory) and not list(tmp_path.glob(".*tmp"))
    meta = json.loads((directory / "model.json").read_text())
    assert meta["model_name"] == name and meta["kind"] == model.kind and meta["format_version"] == 2
    assert meta["model_class"].endswith(type(model).__name__)
    loaded = load_model(directory)
    assert type(loaded) is type(model) and loaded.name == name and loaded.n_users == model.n_users
    if name == "random":  # a fresh generator per fit: the first draw after loading equals the first after fitting
        again = create_model(name, model.config, seed=model.seed).fit(data)
        np.testing.assert_array_equal(loaded.expand(seeds, 25).rows, again.expand(seeds, 25).rows)
        return
    before, after = model.expand(seeds, 25), loaded.expand(seeds, 25)
    np.testing.assert_array_equal(before.user_ids, after.user_ids)
    np.testing.assert_allclose(before.scores, after.scores, atol=1e-6)
    if isinstance(model, EmbeddingLookalikeModel):
        assert (directory / "embedding" / "users.parquet").exists()  # readable without the model's code


def test_embedding_models_serve_centred_vectors_like_the_evaluation(fitted, data):
    """The vectors the index holds are the ones score_campaign compares (centred when expand.center)."""
    for name in ("pm", "glom-seedset"):
        model = fitted(name)
        np.testing.assert_array_equal(model.as_trained().user_embeddings, model.user_embeddings())
        assert not np.allclose(model.user_embeddings(), model.embeddings)  # centring happened


def test_per_campaign_models_refuse_explanations_and_unknown_seeds_clearly(fitted, data):
    model = fitted("lr")
    with pytest.raises(ValueError, match="per-campaign model"):
        model.expand(seeds_of(data), 5, explain=True)
    with pytest.raises(ValueError, match="none of the 2 seed ids is known"):
        model.expand(["nobody", "ghost"], 5)
    result = model.expand([*seeds_of(data), "ghost"], 5, threshold=0.0)
    assert result.unknown_seeds == ["ghost"] and len(result.rows) == 5


def test_a_threshold_keeps_only_scores_above_it(fitted, data):
    model = fitted("cosine-centroid")
    everyone = model.expand(seeds_of(data), 0, threshold=0.3)
    assert len(everyone.rows) > 0 and (everyone.scores >= 0.3 - 1e-6).all()
    assert np.all(np.diff(everyone.scores) <= 1e-7)


def test_a_third_party_fit_override_still_keeps_the_data(data):
    class Activity(LookalikeModel):
        def fit(self, data):  # the plugin habit: override fit itself
            self.counts = np.bincount(data.edges["user_idx"], minlength=data.n_users).astype(float)

        def score_campaign(self, campaign):
            return self.counts[campaign.candidates]

    model = Activity(GlomConfig()).fit(data)
    assert model.n_users == data.n_users and len(model.expand(seeds_of(data), 7).rows) == 7


@pytest.mark.parametrize("name", ["lr", "glom-seedset"])
def test_expand_batch_answers_with_the_trained_model_of_the_run(fitted, data, tmp_path, name):
    """`glom expand-batch` reads train.model's saved model (any family) and writes what expand returns."""
    import pandas as pd

    from glom_plugin.expand.batch_stage import run_expand_batch_stage
    from glom_plugin.layout import RunLayout
    from glom_plugin.models.saved import model_dir

    model = fitted(name)
    layout = RunLayout.at(tmp_path / "run")
    save_model(model, model_dir(layout, name))
    campaigns = tmp_path / "campaigns.jsonl"
    seeds = {"a": seeds_of(data, 12), "b": [str(u) for u in data.user_ids[100:130:2]]}
    campaigns.write_text("".join(json.dumps({"campaign": c, "seed_ids": s, "k": 9}) + "\n" for c, s in seeds.items()))
    cfg = model.config.with_overrides(**{"train.model": name, "expand.min_seeds": 5})
    out = tmp_path / "out.parquet"
    summary = run_expand_batch_stage(cfg, layout, campaigns, out, progress=False)
    written = pd.read_parquet(out)
    assert summary.scored == 2 and not summary.errors
    for campaign, campaign_seeds in seeds.items():
        expected = model.expand(campaign_seeds, 9)
        got = written[written["campaign"] == campaign]
        assert got["user_id"].tolist() == expected.user_ids.tolist()
        np.testing.assert_allclose(got["score"], expected.scores, atol=1e-6)
