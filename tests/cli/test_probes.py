"""Reliability probes on configs, the command line, plugins and the gate
(../shared/spec/reliability-probes.md): one line naming the file or field and the fix, exit 2."""

import importlib.metadata
import re

import pytest
import torch
from typer.testing import CliRunner

from cmcgns.cli.app import app
from cmcgns.config import load_config
from cmcgns.config.schema import PretrainConfig
from cmcgns.errors import CmcgnsError, ConfigError, DataError, PluginError
from cmcgns.plugins import manager


def _cli(*args):
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def test_a_list_entry_of_a_default_section_can_be_overridden():
    cfg = load_config(PretrainConfig, None, ["stages.0.steps=5", "sampler.options.num_clusters=4"])
    assert cfg.stages[0].steps == 5 and cfg.sampler.options == {"num_clusters": 4}
    with pytest.raises(ConfigError, match="index 7 is out of range \\(the list has 2 entries\\)"):
        load_config(PretrainConfig, None, ["stages.7.steps=5"])


def test_a_wrong_key_lists_the_valid_ones():
    with pytest.raises(
        ConfigError, match="train.lrr: Extra inputs are not permitted; valid keys here: batch_size, .*lr,"
    ):
        load_config(PretrainConfig, None, ["train.lrr=5"])


@pytest.mark.parametrize("value", [".inf", ".nan"])
def test_a_non_finite_setting_is_refused_before_training(value):
    with pytest.raises(ConfigError, match="train.lr: Input should be a finite number"):
        load_config(PretrainConfig, None, [f"train.lr={value}"])


def test_yaml_that_is_not_utf8_or_repeats_a_key_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"train:\n  lr: 0.1 \xff\xfe\n")
    with pytest.raises(ConfigError, match="bad.yaml: not UTF-8 text"):
        load_config(PretrainConfig, bad)
    twice = tmp_path / "twice.yaml"
    twice.write_text("train: {batch_size: 4}\ntrain: {lr: 1.0}\n")
    with pytest.raises(ConfigError, match="twice.yaml: not valid YAML: .*key 'train' is given twice"):
        load_config(PretrainConfig, twice)


def test_a_negative_seed_is_refused_by_the_command_line():
    code, output = _cli("finetune", "--task", "covidx-cls", "--seed", "-1")
    assert code == 2 and "greater than or equal to 0" in output


def test_an_os_error_is_one_line_naming_the_file(monkeypatch, tmp_path):
    import cmcgns.training.pretrain as loop

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system", str(tmp_path / "run" / "config.resolved.yaml"))

    monkeypatch.setattr(loop, "save_resolved_config", read_only)
    monkeypatch.setattr(loop, "busy_machine_hint", lambda threads: None)  # a loaded machine adds its own line
    code, output = _cli("pretrain", "-c", "demo", "--set", f"run_dir={tmp_path / 'run'}")
    assert code == 2 and output == f"error: {tmp_path / 'run' / 'config.resolved.yaml'}: Read-only file system"


def test_a_checkpoint_that_cannot_be_written_keeps_the_earlier_one(tmp_path, monkeypatch):
    from cmcgns.training import checkpoint as ckpt

    ckpt.save_checkpoint(tmp_path, 2, {"step": 2}, keep=3)

    def disk_full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 123 vs 456")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(CmcgnsError, match="step_00000004.pt: cannot write checkpoint .*free disk space"):
        ckpt.save_checkpoint(tmp_path, 4, {"step": 4}, keep=3)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step_00000002.pt"]
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.endswith(".tmp")]


def _plugin(monkeypatch, tmp_path, source, name="probe_plugin"):
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = importlib.metadata.EntryPoint(name="probe", value=name, group="cmcgns")
    monkeypatch.setattr(manager.importlib.metadata, "entry_points", lambda group: [ep])


def test_a_plugin_that_exits_at_import_is_named_not_obeyed(monkeypatch, tmp_path):
    _plugin(monkeypatch, tmp_path, "import sys\nsys.exit(3)\n", "exiting_plugin")
    (failure,) = manager.build_registry().failures
    assert failure.plugin == "probe" and "failed to load (exiting_plugin, from ?): SystemExit: 3" in failure.error


def test_a_plugin_reusing_a_builtin_name_is_the_one_blamed(monkeypatch, tmp_path):
    _plugin(
        monkeypatch,
        tmp_path,
        "from cmcgns.plugins import hookimpl\n@hookimpl\ndef register_negative_samplers(register):\n"
        "    register('cm-cgns', lambda o, **k: None)\n",
        "dup_plugin",
    )
    registry = manager.build_registry()
    (failure,) = registry.failures
    assert "'cm-cgns': already registered by plugin 'cmcgns'; plugin 'probe' must use another name" in failure.error
    assert registry.get("negative_sampler", "cm-cgns").plugin == "cmcgns"  # the built-in stays


def test_a_misspelled_hook_is_an_error_not_ignored(monkeypatch, tmp_path):
    _plugin(
        monkeypatch,
        tmp_path,
        "from cmcgns.plugins import hookimpl\n@hookimpl\ndef register_samplers_typo(register):\n    pass\n",
        "typo_plugin",
    )
    (failure,) = manager.build_registry().failures
    assert failure.plugin == "probe"  # the entry point's name, not the module's repr
    assert re.search("register_samplers_typo.*hooks are .*register_negative_samplers", failure.error)
    assert "did you mean register_negative_samplers?" in failure.error and "<module" not in failure.error


def test_the_gate_refuses_a_task_typo_and_inverted_bounds(tmp_path):
    from cmcgns.benchmark.gate import check_tasks_exist, load_expected

    typo = tmp_path / "expected.yaml"
    typo.write_text("- {task: covidx_cls, fraction: 1.0, metric: auroc, min: 0.6}\n")
    with pytest.raises(ConfigError, match="unknown task\\(s\\) covidx_cls; registered: .*covidx-cls"):
        check_tasks_exist(load_expected(typo), typo, manager.build_registry().names("downstream_task"))
    inverted = tmp_path / "inverted.yaml"
    inverted.write_text("- {task: covidx-cls, fraction: 1.0, metric: auroc, min: 0.9, max: 0.1}\n")
    with pytest.raises(ConfigError, match="min 0.9 is above max 0.1"):
        load_expected(inverted)


def test_a_covidx_list_that_is_not_utf8_is_one_line(tmp_path):
    from cmcgns.data.synth.generate import generate
    from cmcgns.plugins.manager import get_registry

    raw = tmp_path / "raw"
    generate("covidx", raw, 10, seed=0, image_size=48)
    (raw / "train.txt").write_bytes((raw / "train.txt").read_bytes() + b"\xff\xfe bad\n")
    with pytest.raises(DataError, match="train.txt: not UTF-8 text"):
        get_registry().get("dataset", "covidx").build({}).run(raw, tmp_path / "out", 32, 1)


def test_a_broken_plugin_is_listed_by_plugins_and_only_warned_about_elsewhere(monkeypatch, tmp_path):
    _plugin(monkeypatch, tmp_path, "raise ImportError('needs libfoo')\n", "needs_lib_plugin")
    monkeypatch.setattr(manager, "_REGISTRY", None)
    code, out = _cli("plugins")
    assert code == 0 and "FAILED plugin 'probe'" in out and "ImportError: needs libfoo" in out
    monkeypatch.setattr(manager, "_REGISTRY", None)
    code, out = _cli("pretrain", "--print-config", "--sampler", "in-batch")
    assert code == 0 and "plugin 'probe'" in out and manager.DISABLE_EXTERNAL_ENV in out
    monkeypatch.setattr(manager, "_REGISTRY", None)
    code, out = _cli("pretrain", "--print-config", "--sampler", "probe-sampler")  # what the plugin would have given
    assert code == 2 and "unknown negative_sampler 'probe-sampler'" in out and "'probe' was skipped" in out
    monkeypatch.setattr(manager, "_REGISTRY", None)


@pytest.mark.parametrize(
    "body,message",
    [
        ("raise RuntimeError('no GPU here')", "failed to build: RuntimeError: no GPU here"),
        ("return None", "its factory returned None"),
        ("raise SystemExit(4)", "failed to build: SystemExit: 4"),
    ],
)
def test_a_third_party_factory_that_fails_is_named(monkeypatch, tmp_path, body, message):
    _plugin(
        monkeypatch,
        tmp_path,
        "from cmcgns.plugins import hookimpl\n"
        f"def make(options, **kwargs):\n    {body}\n"
        "@hookimpl\ndef register_negative_samplers(register):\n    register('bad-factory', make)\n",
        f"factory_plugin_{abs(hash(body))}",
    )
    component = manager.build_registry().get("negative_sampler", "bad-factory")
    with pytest.raises(PluginError, match=f"'bad-factory' \\(plugin probe\\).*{re.escape(message)}"):
        component.build({})
