import json

import pytest
import yaml

from typer.testing import CliRunner

from cmcgns.cli.app import app

runner = CliRunner()


def test_plugins_json_lists_builtins_and_example():
    res = runner.invoke(app, ["plugins", "--json"])
    assert res.exit_code == 0
    rows = json.loads(res.output)
    names = {(r["kind"], r["name"]) for r in rows}
    assert ("negative_sampler", "cm-cgns") in names and ("negative_sampler", "hardest-k") in names
    assert {"name", "version", "kind", "source"} <= set(rows[0])


def test_pretrain_print_config_applies_overrides_and_sampler():
    res = runner.invoke(app, ["pretrain", "--print-config", "--sampler", "in-batch", "--set", "train.lr=0.01"])
    assert res.exit_code == 0, res.output
    assert "lr: 0.01" in res.output and "name: in-batch" in res.output


def test_bad_config_exits_2_with_message(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sampler: {name: cm-cgns, options: {num_clusters: 1}}\n")
    res = runner.invoke(app, ["pretrain", "--config", str(cfg), "--print-config"])
    assert res.exit_code == 2
    assert "num_clusters" in res.output and "cm-cgns" in res.output


def test_unknown_sampler_is_a_clear_error():
    res = runner.invoke(app, ["pretrain", "--print-config", "--sampler", "nope"])
    assert res.exit_code == 2 and "unknown negative_sampler 'nope'" in res.output


def test_synth_preprocess_verify(tmp_path):
    assert (
        runner.invoke(
            app, ["synth", "covidx", "--out", str(tmp_path / "raw"), "--n", "10", "--image-size", "48"]
        ).exit_code
        == 0
    )
    res = runner.invoke(
        app,
        ["preprocess", "covidx", "--source", str(tmp_path / "raw"), "--out", str(tmp_path / "p"), "--image-size", "32"],
    )
    assert res.exit_code == 0, res.output
    assert runner.invoke(app, ["preprocess", "verify", str(tmp_path / "p")]).exit_code == 0
    (tmp_path / "p" / "meta.json").write_text("{")
    res = runner.invoke(app, ["preprocess", "verify", str(tmp_path / "p")])
    assert res.exit_code == 1 and "meta.json" in res.output


@pytest.mark.parametrize("name", ["demo", "cm-cgns-vit-b16", "cm-cgns-vit-b16-official", "cm-cgns-resnet50", "mgca"])
def test_switching_the_sampler_or_head_of_a_packaged_config_starts_from_its_defaults(name):
    """The config's cm-cgns options were written for cm-cgns; switching to another sampler used to
    fail with "num_clusters: Extra inputs are not permitted"."""
    res = runner.invoke(app, ["pretrain", "-c", name, "--print-config", "--sampler", "in-batch"])
    assert res.exit_code == 0, res.output
    assert yaml.safe_load(res.output)["sampler"]["name"] == "in-batch"
    res = runner.invoke(
        app,
        ["pretrain", "-c", name, "--print-config", "--set", "head.name=none", "--set", "stages=[{name: a, steps: 2}]"],
    )
    assert res.exit_code == 0, res.output
    assert yaml.safe_load(res.output)["head"] == {"name": "none", "options": {}}


def test_options_given_with_the_switch_apply_on_top_of_the_new_defaults():
    args = [
        "pretrain",
        "-c",
        "demo",
        "--print-config",
        "--set",
        "sampler.options.num_clusters=7",
        "--sampler",
        "cluster-ns",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    sampler = yaml.safe_load(res.output)["sampler"]
    assert sampler["name"] == "cluster-ns" and sampler["options"]["num_clusters"] == 7
    # naming the config's own sampler again keeps the file's options
    res = runner.invoke(app, ["pretrain", "-c", "demo", "--print-config", "--sampler", "cm-cgns"])
    assert yaml.safe_load(res.output)["sampler"]["options"]["memory"] == "queue"
