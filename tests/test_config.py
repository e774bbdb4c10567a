import pytest

from cmcgns.config import load_config, save_resolved_config
from cmcgns.config.loading import RESOLVED_CONFIG_NAME
from cmcgns.config.overrides import apply_overrides
from cmcgns.config.schema import PretrainConfig
from cmcgns.errors import ConfigError


def test_overrides_parse_yaml_values_and_nest():
    data = apply_overrides({}, ["train.lr=1e-3", "stages=[{name: a, steps: 2}]", "model.text.path=/x"])
    assert data == {"train": {"lr": 1e-3}, "stages": [{"name": "a", "steps": 2}], "model": {"text": {"path": "/x"}}}


def test_yaml_file_with_override_wins(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: {lr: 0.1, batch_size: 4}\n")
    cfg = load_config(PretrainConfig, path, ["train.lr=0.5"])
    assert cfg.train.lr == 0.5 and cfg.train.batch_size == 4


@pytest.mark.parametrize("text,needle", [("train: {lr: -1}\n", "train.lr"), ("trian: {}\n", "trian"), ("[1, 2]\n", "mapping"),
                                         ("a: [\n", "not valid YAML")])
def test_bad_config_names_file_and_field(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(PretrainConfig, path)
    assert str(path) in str(info.value) and needle in str(info.value)


def test_reconstruction_stage_requires_a_head():
    with pytest.raises(ConfigError, match="head.name is 'none'"):
        load_config(PretrainConfig, None, ["head.name=none"])


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(PretrainConfig, None, ["train.seed=7"])
    written = save_resolved_config(cfg, tmp_path)
    assert written.name == RESOLVED_CONFIG_NAME
    assert load_config(PretrainConfig, written) == cfg
