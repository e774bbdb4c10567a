import dataclasses
import importlib.metadata

import pytest

from cmcgns.errors import PluginError
from cmcgns.plugins import manager
from cmcgns.plugins.registry import Registry
from cmcgns.samplers import cm_cgns, in_batch
from cmcgns.testing.sampler_contract import check_sampler


def test_builtins_registered_through_hooks():
    reg = manager.build_registry()
    assert {"cm-cgns", "in-batch", "cluster-ns"} <= set(reg.names("negative_sampler"))
    assert {"cm-mir", "mae-pixel"} <= set(reg.names("reconstruction_head"))
    assert {"rsna-det", "siim-seg", "chexpert-cls"} <= set(reg.names("downstream_task"))
    assert reg.get("negative_sampler", "cm-cgns").source == "builtin"


def test_example_third_party_plugin_is_discovered_and_can_be_disabled(monkeypatch):
    reg = manager.build_registry()
    comp = reg.get("negative_sampler", "hardest-k")
    assert comp.source == "entry point cmcgns-hardest-negatives" and comp.version == "0.1.0"
    monkeypatch.setenv(manager.DISABLE_EXTERNAL_ENV, "1")
    assert "hardest-k" not in manager.build_registry().names("negative_sampler")


def _fake_entry_points(monkeypatch, value):
    ep = importlib.metadata.EntryPoint(name="broken", value=value, group="cmcgns")
    monkeypatch.setattr(manager.importlib.metadata, "entry_points", lambda group: [ep])


def test_broken_plugin_error_names_it(monkeypatch):
    _fake_entry_points(monkeypatch, "no_such_module_xyz")
    with pytest.raises(PluginError, match="broken.*no_such_module_xyz.*failed to load"):
        manager.build_registry()


def test_duplicate_name_error_names_both_plugins():
    reg = Registry()
    reg.make_register("negative_sampler", "one", "1", "x")("dup", lambda o, **k: None)
    with pytest.raises(PluginError, match="duplicate negative_sampler name 'dup'.*'one'.*'two'"):
        reg.make_register("negative_sampler", "two", "1", "y")("dup", lambda o, **k: None)


def test_plugin_raising_in_hook_is_reported(monkeypatch, tmp_path):
    mod = tmp_path / "raising_plugin.py"
    mod.write_text("from cmcgns.plugins import hookimpl\n@hookimpl\ndef register_negative_samplers(register):\n    raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _fake_entry_points(monkeypatch, "raising_plugin")
    with pytest.raises(PluginError, match="'broken' failed in register_negative_samplers: RuntimeError: boom"):
        manager.build_registry()


def test_unknown_component_lists_available():
    with pytest.raises(Exception, match="available: .*cm-cgns"):
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
