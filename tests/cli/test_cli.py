import json

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
