"""The one config: layered resolution and validation."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from glom_plugin.config import GlomConfig, load_config, parse_override


def test_defaults_follow_the_paper_protocol():
    cfg = GlomConfig()
    assert cfg.evaluate.negative_ratio == 10  # seed:non-seed = 1:10 (§4.1)
    assert cfg.evaluate.runs == 5  # mean of five runs (Table 2)
    assert cfg.glm.aggregator in {"mean", "attn1", "attn2"}


def test_yaml_then_overrides_win(tmp_path: Path):
    path = tmp_path / "cfg.yaml"
    path.write_text("pm:\n  dim: 16\nglm:\n  aggregator: mean\n")
    cfg = load_config(path, ["pm.dim=32", "evaluate.models=[pm, lr]"], run_dir="x")
    assert cfg.pm.dim == 32  # override beats YAML
    assert cfg.glm.aggregator == "mean"  # YAML beats default
    assert cfg.evaluate.models == ["pm", "lr"]
    assert cfg.run_dir == "x"


def test_unknown_keys_and_bad_values_are_rejected(tmp_path: Path):
    with pytest.raises(KeyError, match="unknown config key"):
        GlomConfig().with_overrides(**{"pm.dimension": 3})
    with pytest.raises(ValidationError):
        GlomConfig().with_overrides(**{"polarity.alpha": 1.5})
    path = tmp_path / "bad.yaml"
    path.write_text("pm:\n  dimm: 4\n")
    with pytest.raises(ValidationError):
        load_config(path)


def test_parse_override_parses_yaml_values():
    assert parse_override("pm.lr=0.5") == ("pm.lr", 0.5)
    assert parse_override("expand.threshold=null") == ("expand.threshold", None)
    with pytest.raises(ValueError):
        parse_override("pm.lr")


def test_salt_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("GLOM_ID_SALT", "s3cret")
    assert GlomConfig().id_salt() == "s3cret"
    # the salt never appears in the dumped config that is logged with runs
    assert "s3cret" not in str(GlomConfig().model_dump())
