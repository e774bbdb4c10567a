import dataclasses
import importlib.metadata
import re

import pytest

from cmcgns.errors import PluginError
from cmcgns.plugins import manager
from cmcgns.plugins.registry import Registry
from cmcgns.samplers import in_batch
from cmcgns.testing.sampler_contract import check_sampler


def test_builtins_registered_through_hooks():
    reg = manager.build_registry()
    assert {"cm-cgns", "in-batch", "cluster-ns"} <= set(reg.names("negative_sampler"))
    assert {"cm-mir", "mae-pixel"} <= set(reg.names("reconstruction_head"))
    assert {"rsna-det", "siim-seg", "chexpert-cls"} <= set(reg.names("downstream_task"))
    assert reg.get("negative_sampler", "cm-cgns").source == "builtin"


def test_each_builtin_registers_itself_beside_its_code():
    """Every module in BUILTIN_PLUGINS carries the hook for its own components, and nothing else registers built-ins."""
    import pluggy

    from cmcgns.plugins import hookspecs
    from cmcgns.plugins.registry import KINDS

    seen: dict[str, str] = {}
    for module_name in manager.BUILTIN_PLUGINS:
        pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        pm.add_hookspecs(hookspecs)
        pm.register(importlib.import_module(module_name))
        reg = Registry()
        for kind, hook in KINDS.items():
            for impl in getattr(pm.hook, hook).get_hookimpls():
                impl.function(register=reg.make_register(kind, module_name, "0", "builtin"))
        names = [c.name for c in reg.components()]
        assert names, f"{module_name} registers nothing"
        for n in names:
            assert n not in seen, f"{n} registered by {seen.get(n)} and {module_name}"
            seen[n] = module_name
    full = manager.build_registry()
    assert set(seen) == {c.name for c in full.components() if c.source == "builtin"}
    assert seen["cm-cgns"] == "cmcgns.samplers.cm_cgns" and seen["cm-mir"] == "cmcgns.heads.cm_mir"


def test_a_dataset_plugin_cannot_take_the_name_of_preprocess_verify():
    with pytest.raises(PluginError, match="'verify', a name reserved"):
        Registry().make_register("dataset", "p", "1", "x")("verify", lambda o: None)


def test_registry_refuses_options_that_would_ignore_a_typo():
    import pydantic

    from cmcgns.plugins import Options

    class Loose(pydantic.BaseModel):
        k: int = 1

    class Strict(Options):
        k: int = 1

    reg = Registry()
    with pytest.raises(PluginError, match="accept unknown keys.*cmcgns.plugins.Options"):
        reg.make_register("negative_sampler", "p", "1", "x")("loose", lambda o, **k: None, options=Loose)
    reg.make_register("negative_sampler", "p", "1", "x")("strict", lambda o, **k: None, options=Strict)
    from cmcgns.errors import ConfigError

    with pytest.raises(ConfigError, match="kk"):
        reg.get("negative_sampler", "strict").validate_options({"kk": 2})


def test_plugins_json_lists_each_components_options_with_types_and_defaults():
    import json

    from typer.testing import CliRunner

    from cmcgns.cli.app import app

    result = CliRunner().invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    k = rows["cm-cgns"]["options"]["num_clusters"]
    assert k["type"] == "int" and k["default"] == 128 and not k["required"] and "K" in k["description"]
    assert rows["cm-mir"]["options"]["decoder_layers"]["default"] == 6
    assert rows["hardest-k"]["options"]["k"]["default"] == 4
    assert rows["in-batch"]["options"] == {}


def test_example_third_party_plugin_is_discovered_and_can_be_disabled(monkeypatch):
    reg = manager.build_registry()
    comp = reg.get("negative_sampler", "hardest-k")
    assert comp.source == "entry point cmcgns-hardest-negatives" and comp.version == "0.1.0"
    monkeypatch.setenv(manager.DISABLE_EXTERNAL_ENV, "1")
    assert "hardest-k" not in manager.build_registry().names("negative_sampler")


def _fake_entry_points(monkeypatch, value):
    ep = importlib.metadata.EntryPoint(name="broken", value=value, group="cmcgns")
    monkeypatch.setattr(manager.importlib.metadata, "entry_points", lambda group: [ep])


def _only_failure(registry) -> str:
    assert [f.plugin for f in registry.failures] == ["broken"]
    return registry.failures[0].error


def test_broken_plugin_is_left_out_and_named(monkeypatch):
    _fake_entry_points(monkeypatch, "no_such_module_xyz")
    registry = manager.build_registry()
    assert re.search("failed to load.*no_such_module_xyz", _only_failure(registry))
    assert "cm-cgns" in registry.names("negative_sampler")  # the built-ins go on


def test_duplicate_name_error_names_both_plugins():
    reg = Registry()
    reg.make_register("negative_sampler", "one", "1", "x")("dup", lambda o, **k: None)
    with pytest.raises(
        PluginError,
        match="duplicate negative_sampler name 'dup': already registered by plugin 'one'; plugin 'two' must",
    ):
        reg.make_register("negative_sampler", "two", "1", "y")("dup", lambda o, **k: None)


def test_plugin_raising_in_hook_is_reported(monkeypatch, tmp_path):
    mod = tmp_path / "raising_plugin.py"
    mod.write_text(
        "from cmcgns.plugins import hookimpl\n@hookimpl\ndef register_negative_samplers(register):\n    raise RuntimeError('boom')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    _fake_entry_points(monkeypatch, "raising_plugin")
    error = _only_failure(manager.build_registry())
    assert "'broken' failed in register_negative_samplers: RuntimeError: boom" in error


def test_unknown_component_lists_available():
    from cmcgns.errors import ConfigError

    with pytest.raises(ConfigError, match="available: .*cm-cgns"):
        manager.build_registry().get("negative_sampler", "nope")


@pytest.mark.parametrize("name", ["cm-cgns", "in-batch", "cluster-ns", "hardest-k"])
def test_sampler_contract(name):
    comp = manager.build_registry().get("negative_sampler", name)
    # init_threshold 1.0: the memory initialises at once, so the contract exercises the clustered loss
    options = {"num_clusters": 4, "init_threshold": 1.0, "ema_rate": 0.05} if name in ("cm-cgns", "cluster-ns") else {}
    check_sampler(lambda: comp.build(options, embed_dim=16), embed_dim=16)


def test_contract_catches_a_sampler_that_does_not_learn():
    class Frozen(in_batch.InBatchSampler):
        def forward(self, problem):
            out = super().forward(problem)
            return type(out)(out.loss.detach().requires_grad_() * 0 + 3.0, {})

    with pytest.raises(AssertionError, match="did not decrease"):
        check_sampler(Frozen)


def test_contract_catches_a_sampler_that_trains_other_ranks_anchors():
    class Leaky(in_batch.InBatchSampler):
        def forward(self, problem):
            full = dataclasses.replace(problem, local_rows=slice(0, problem.anchors.shape[0]))
            return super().forward(full)

    with pytest.raises(AssertionError, match="outside local_rows"):
        check_sampler(Leaky)


def test_contract_catches_host_float_statistics():
    class HostStats(in_batch.InBatchSampler):
        def forward(self, problem):
            out = super().forward(problem)
            return type(out)(out.loss, {"loss": float(out.loss)})

    with pytest.raises(AssertionError, match="0-dim tensor"):
        check_sampler(HostStats)


def test_example_plugin_can_skip_same_report_rows():
    comp = manager.build_registry().get("negative_sampler", "hardest-k")
    check_sampler(lambda: comp.build({"k": 3, "skip_same_group": True}, embed_dim=16), embed_dim=16)


def test_the_example_plugin_readme_commands_run_as_written():
    """Each `cmcgns ...` line of the plugin's README, split the way bash splits it, resolves a config
    (`pretrain --print-config`) or lists the plugins."""
    import shlex
    from pathlib import Path

    from typer.testing import CliRunner

    from cmcgns.cli.app import app

    readme = Path(__file__).resolve().parents[2] / "plugins" / "cmcgns-hardest-negatives" / "README.md"
    commands = [line.strip() for line in readme.read_text().splitlines() if line.startswith("    cmcgns ")]
    assert len(commands) >= 3
    for command in commands:
        args = shlex.split(command, comments=True)[1:]
        if args[0] == "pretrain":
            args.append("--print-config")
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, (command, res.output)
        if args[0] == "pretrain":
            assert "name: hardest-k" in res.output and "k: 4" in res.output
