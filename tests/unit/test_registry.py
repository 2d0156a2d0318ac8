"""Every registered model name resolves to a LookalikeModel class, and variants carry their overrides."""

import pytest

from glom_plugin.config import GlomConfig
from glom_plugin.models.base import LookalikeModel
from glom_plugin.models.registry import MODEL_REGISTRY, create_model, load_model_class, model_config


@pytest.mark.parametrize("name", list(MODEL_REGISTRY))
def test_every_registered_model_imports(name):
    assert issubclass(load_model_class(name), LookalikeModel)


def test_variants_apply_their_overrides():
    base = GlomConfig()
    assert model_config("glom-mean", base).glm.aggregator == "mean"
    assert model_config("glom-no-profiles", base).pm.use_profiles is False
    assert model_config("similarity-jaccard-prob", base).expand.aggregation == "probabilistic"
    assert model_config("similarity-jaccard-max", base.with_overrides(**{"expand.aggregation": "mean"})).expand.aggregation == "max"


def test_created_models_carry_the_variant_name():
    assert create_model("random", GlomConfig(), seed=3).name == "random"


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match="unknown model 'glom-attn9'; available: .*glom-seedset"):
        create_model("glom-attn9", GlomConfig())
