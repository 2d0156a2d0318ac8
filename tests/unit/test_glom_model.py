"""GLoM end to end on planted communities, the registry variants, and the TrainedModel artifact."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from glom_plugin.config import GlomConfig
from glom_plugin.models.artifact import TrainedModel
from glom_plugin.models.registry import create_model
from tests.support.planted import make_campaigns, make_planted_data, training_view

torch.set_num_threads(1)


def small_cfg(**extra) -> GlomConfig:
    return GlomConfig(device="cpu").with_overrides(
        **{
            "pm.dim": 16,
            "pm.epochs": 12,
            "pm.batch_size": 256,
            "glm.epochs": 6,
            "glm.batch_size": 512,
            **extra,
        }
    )


@pytest.fixture(scope="module")
def planted():
    data = make_planted_data(n_users=300, n_items=120, seed=0, with_profiles=True)
    campaigns = make_campaigns(data, n_campaigns=8, seed=1)
    return training_view(data, campaigns), campaigns


def mean_pr_auc(model, campaigns) -> tuple[float, float]:
    aps = [average_precision_score(labels, model.score_campaign(c)) for c, labels in campaigns]
    chance = [labels.mean() for _, labels in campaigns]
    return float(np.mean(aps)), float(np.mean(chance))


@pytest.mark.parametrize("name", ["glom-attn1", "glom-mean", "glom-attn2"])
def test_glom_beats_random_by_a_wide_margin(planted, name):
    data, campaigns = planted
    model = create_model(name, small_cfg(), seed=0).fit(data)
    assert model.user_embeddings().shape == (data.n_users, 16)
    pr_auc, chance = mean_pr_auc(model, campaigns)
    assert pr_auc > 2.5 * chance, (name, pr_auc, chance)


@pytest.mark.parametrize("name", ["glom-no-pm", "glom-no-similarity", "glom-no-polarity", "glom-no-profiles"])
def test_ablations_fit_and_remove_what_they_say(planted, name):
    data, campaigns = planted
    model = create_model(name, small_cfg(**{"pm.epochs": 4, "glm.epochs": 3}), seed=0).fit(data)
    relations = model.glm_result.triples.counts()
    assert ("similar" in relations) == (name != "glom-no-similarity")
    assert ("likes" in relations) == (name != "glom-no-polarity")
    if name == "glom-no-pm":
        assert model.pm_result is None
    if name == "glom-no-profiles":
        assert not model.pm_result.model.uses_profiles
    else:
        assert model.pm_result is None or model.pm_result.model.uses_profiles
    pr_auc, chance = mean_pr_auc(model, campaigns)
    assert pr_auc > chance  # every variant learns something from the graph


def test_trained_model_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    model = TrainedModel(
        model_name="glom-attn1",
        user_ids=np.array(["aa", "bb", "cc"]),
        user_embeddings=rng.normal(size=(3, 4)).astype(np.float32),
        item_ids=np.array(["x", "y"]),
        item_embeddings=rng.normal(size=(2, 4)).astype(np.float32),
        config={"pm": {"dim": 4}},
        metrics={"glm": {"best_val_mrr": 0.5}},
        state_dict={"glm": {"w": torch.ones(2, 2)}, "relation_names": ["interacted"]},
    )
    target = tmp_path / "models" / "glm"
    model.save(target)
    model.save(target)  # overwriting an existing artifact works and leaves no temporary directory
    assert sorted(p.name for p in target.parent.iterdir()) == ["glm"]
    loaded = TrainedModel.load(target, with_state=True)
    np.testing.assert_array_equal(loaded.user_ids, model.user_ids)
    np.testing.assert_array_equal(loaded.user_embeddings, model.user_embeddings)
    np.testing.assert_array_equal(loaded.item_embeddings, model.item_embeddings)
    assert loaded.user_embeddings.dtype == np.float32
    assert loaded.config == model.config and loaded.metrics == model.metrics
    assert loaded.created_at == model.created_at and loaded.model_name == "glom-attn1"
    assert torch.equal(loaded.state_dict["glm"]["w"], torch.ones(2, 2))
    assert json.loads((target / "model.json").read_text())["dim"] == 4


def test_trained_model_without_items_and_bad_inputs(tmp_path):
    model = TrainedModel("pm", np.array(["a"]), np.ones((1, 2), np.float32))
    loaded = TrainedModel.load(model.save(tmp_path / "m"))
    assert loaded.item_embeddings is None and len(loaded.item_ids) == 0
    with pytest.raises(ValueError, match="duplicates"):
        TrainedModel("pm", np.array(["a", "a"]), np.ones((2, 2)))
    with pytest.raises(ValueError, match="user_embeddings"):
        TrainedModel("pm", np.array(["a", "b"]), np.ones((3, 2)))
    with pytest.raises(FileNotFoundError, match="model.json"):
        TrainedModel.load(tmp_path / "nothing")
