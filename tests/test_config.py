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


@pytest.mark.parametrize(
    "text,needle",
    [
        ("train: {lr: -1}\n", "train.lr"),
        ("trian: {}\n", "trian"),
        ("[1, 2]\n", "mapping"),
        ("a: [\n", "not valid YAML"),
    ],
)
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


@pytest.mark.parametrize(
    "name", ["cm-cgns-vit-b16", "cm-cgns-resnet50", "cm-cgns-vit-b16-official", "convirt", "mgca", "demo"]
)
def test_packaged_configs_load_by_name_and_validate_their_components(name):
    from cmcgns.training.pretrain import resolve_components

    cfg = resolve_components(load_config(PretrainConfig, name))
    if name.startswith("cm-cgns"):
        assert cfg.sampler.name == "cm-cgns" and cfg.sampler.options["num_clusters"] == 128
        assert cfg.objective.sampler_on == "local_report" and cfg.objective.local_image == "simsiam"
        assert cfg.model.embed_dim == 768 and cfg.data.image_size == 224 and cfg.train.batch_size == 64
        assert (cfg.train.optimizer, cfg.train.lr, cfg.train.weight_decay, cfg.train.warmup_epochs) == (
            "adam",
            1e-5,
            1e-6,
            1,
        )
        assert [(s.epochs, s.reconstruction, s.reset_optimizer) for s in cfg.stages] == [
            (10, False, True),
            (20, True, True),
        ]
        assert cfg.head.options["decoder_layers"] == 6 and cfg.head.options["scale"] == 10.0
        official = name.endswith("-official")  # the official code verbatim; the others: the setting that learns
        assert cfg.sampler.options["memory"] == ("official" if official else "queue")
        assert cfg.model.cross_attention == ("sigmoid" if official else "cosine")
        assert cfg.objective.local_report_temperature == (1.0 if official else 0.1)
        assert cfg.sampler.options["hard_negative_weighting"] == ("logit" if official else "count")


@pytest.mark.parametrize("name", ["cm-cgns-vit-b16", "convirt"])
def test_paper_configs_fail_clearly_without_local_text_model_and_data(name, tmp_path):
    from cmcgns.training.pretrain import pretrain

    cfg = load_config(PretrainConfig, name, [f"run_dir={tmp_path}/run"])
    with pytest.raises(ConfigError) as info:
        pretrain(cfg, progress=False)
    message = str(info.value)
    assert "model.text.path is not set" in message and "data.manifest is not set" in message
    assert not (tmp_path / "run").exists()  # nothing generated or written before the check
    cfg = load_config(
        PretrainConfig,
        name,
        [
            f"run_dir={tmp_path}/run",
            f"data.manifest={tmp_path}",
            "model.image.pretrained_path=null",
            f"model.text.path={tmp_path}/no-such-bert",
        ],
    )
    with pytest.raises(ConfigError, match=r"model.text.path: .*no-such-bert does not exist"):
        pretrain(cfg, progress=False)


def test_unknown_config_name_lists_the_packaged_ones():
    with pytest.raises(ConfigError, match="packaged: .*cm-cgns-vit-b16"):
        load_config(PretrainConfig, "cm-cgns-vit-b17")


def test_stage_needs_exactly_one_length():
    with pytest.raises(ConfigError, match="exactly one of steps or epochs"):
        load_config(PretrainConfig, None, ["stages=[{name: a, steps: 2, epochs: 1}]"])
    cfg = load_config(
        PretrainConfig, None, ["stages=[{name: a, epochs: 1.5}, {name: b, steps: 3}]", "train.warmup_epochs=0.5"]
    )
    assert cfg.stage_steps(steps_per_epoch=10) == [15, 3] and cfg.warmup_steps(10) == 5


def test_component_options_can_be_set_without_naming_the_component():
    cfg = load_config(PretrainConfig, None, ["sampler.options.num_clusters=4", "head.options.decoder_layers=2"])
    assert (cfg.sampler.name, cfg.sampler.options) == ("cm-cgns", {"num_clusters": 4})
    assert (cfg.head.name, cfg.head.options) == ("cm-mir", {"decoder_layers": 2})


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "head.options.num_heads=3",
            "head.options.num_heads=3 does not divide model.embed_dim=128; use one of 1, 2, 4, 8, 16",
        ),
        ("model.pool_heads=5", "model.pool_heads=5 does not divide model.embed_dim=128"),
    ],
)
def test_heads_that_do_not_divide_the_width_fail_at_print_config_before_any_data(
    override, message, tmp_path, monkeypatch
):
    from typer.testing import CliRunner

    from cmcgns.cli.app import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["pretrain", "-c", "demo", "--set", override, "--print-config"])
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert not any(tmp_path.iterdir())  # nothing generated or written


def test_a_yaml_alias_bomb_is_refused_before_it_is_built(tmp_path):
    import pytest

    from cmcgns.benchmark.suite_file import load_suite
    from cmcgns.config.loading import load_yaml
    from cmcgns.errors import ConfigError

    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [{', '.join(['*' + previous] * 9)}]")
    bomb = tmp_path / "suite.yaml"
    bomb.write_text("\n".join(lines) + "\ntasks: [rsna-cls]\n")
    assert len(bomb.read_bytes()) < 700
    with pytest.raises(ConfigError, match="aliases expand to more than 100,000 nodes"):
        load_suite(bomb)
    assert load_yaml("base: &b {x: 1}\nother: *b\n") == {"base": {"x": 1}, "other": {"x": 1}}  # a few aliases are fine


def test_a_key_given_twice_inside_one_set_value_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"value is not valid YAML \(key 'lr' is given twice") as caught:
        apply_overrides({}, ["train={lr: 0.1, lr: 0.2}"])
    assert "\n" not in str(caught.value)
    assert apply_overrides({}, ["train={lr: 0.1, seed: 2}"]) == {"train": {"lr": 0.1, "seed": 2}}


@pytest.mark.parametrize("vocab", [0, -5, 12])
def test_a_text_model_vocabulary_too_small_to_hold_anything_is_refused(tmp_path, vocab):
    from cmcgns.errors import DataError
    from cmcgns.models.tiny_text import train_text_model

    with pytest.raises(DataError, match=f"--vocab-size {vocab}: must be at least 100"):
        train_text_model(["No effusion."], tmp_path / "text", vocab_size=vocab)
    assert not (tmp_path / "text").exists()
