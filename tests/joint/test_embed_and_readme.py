"""`cmcgns embed` and the README's zero-shot example, run as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from cmcgns.cli.app import app
from cmcgns.data.manifest import read_manifest

runner = CliRunner()


def test_embed_images_and_texts_and_never_overwrite_silently(finished_run, synthetic_mimic, tmp_path):
    model = str(finished_run.run_dir / "model")
    images = synthetic_mimic / "images"
    out = tmp_path / "img.npy"
    res = runner.invoke(app, ["embed", "--model", model, "--images", str(images), "--out", str(out)])
    assert res.exit_code == 0, res.output
    matrix = np.load(out)
    index = (tmp_path / "img.index.txt").read_text().splitlines()
    assert matrix.shape == (len(read_manifest(synthetic_mimic).rows), 32) == (len(index), 32)
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1, atol=1e-5) and index == sorted(index)
    texts = tmp_path / "reports.jsonl"
    texts.write_text(
        '{"id": "a", "text": "FINDINGS: Small right effusion. IMPRESSION: Effusion."}\n\n{"text": "Clear."}\n'
    )
    res = runner.invoke(app, ["embed", "--model", model, "--texts", str(texts), "--out", str(out)])
    assert res.exit_code == 2 and "already exists; pass --overwrite" in res.output
    assert np.load(out).shape[0] == len(index)  # untouched
    res = runner.invoke(app, ["embed", "--model", model, "--texts", str(texts), "--out", str(out), "--overwrite"])
    assert res.exit_code == 0, res.output
    assert np.load(out).shape == (2, 32) and (tmp_path / "img.index.txt").read_text() == "a\n3\n"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"txt": 1}\n')
    res = runner.invoke(app, ["embed", "--model", model, "--texts", str(bad), "--out", str(tmp_path / "b.npy")])
    assert res.exit_code == 2 and "bad.jsonl:1: not a" in res.output
    res = runner.invoke(app, ["embed", "--model", model, "--out", str(tmp_path / "c.npy")])
    assert res.exit_code == 2 and "exactly one of --images or --texts" in res.output


def test_the_readme_zero_shot_example_runs_as_written(finished_run, synthetic_mimic, capsys):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## The whole model") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 12
    rows = read_manifest(synthetic_mimic).rows[:2]
    code = code.replace('"RUN/model"', repr(str(finished_run.run_dir / "model")))
    code = code.replace('["a.png", "b.dcm"]', repr([str(synthetic_mimic / r["image"]) for r in rows]))
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    probabilities = [float(v) for v in re.findall(r"[0-9.]+(?:e-?\d+)?", printed)]
    assert "effusion" in printed and abs(sum(probabilities) - 1) < 1e-4
