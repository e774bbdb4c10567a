"""Preprocess owns only what it wrote (issue 20, section 1-2): a re-run keeps the user's files, a
source inside the output is refused, one writer per folder, a swap killed at any point is finished
by the next run or by verify, a dead worker fails the run instead of hanging it."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from cmcgns.data.manifest import read_manifest
from cmcgns.data.preprocess import swap
from cmcgns.data.synth.generate import generate
from cmcgns.errors import DataError
from cmcgns.plugins.manager import get_registry


def _run(raw, out, size=32, workers=1):
    return get_registry().get("dataset", "covidx").build({}).run(raw, out, size, workers)


@pytest.fixture
def covidx(tmp_path):
    raw = tmp_path / "raw"
    generate("covidx", raw, 24, seed=0, image_size=48)
    return raw


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.name.startswith(".preprocess"))


def test_a_rerun_keeps_files_and_folders_the_user_put_in_the_output(covidx, tmp_path):
    out = tmp_path / "out"
    _run(covidx, out)
    (out / "NOTES.txt").write_text("mine")
    (out / "analysis").mkdir()
    (out / "analysis" / "plot.png").write_bytes(b"png")
    _run(covidx, out, size=48)
    assert (out / "NOTES.txt").read_text() == "mine"
    assert (out / "analysis" / "plot.png").read_bytes() == b"png"
    assert read_manifest(out).meta["image_size"] == 48
    assert json.loads((out / swap.WRITTEN_NAME).read_text()) == sorted(
        p.name for p in out.iterdir() if p.name not in ("NOTES.txt", "analysis") and not swap.is_tool_entry(p.name)
    )


def test_a_user_entry_named_like_an_output_is_refused_before_anything_moves(covidx, tmp_path):
    out = tmp_path / "out"
    _run(covidx, out)
    (out / swap.WRITTEN_NAME).write_text(json.dumps(["manifest.jsonl", "meta.json", "images", "drop_report.json"]))
    (out / "splits").rename(tmp_path / "old-splits")
    (out / "splits").mkdir()
    (out / "splits" / "mine.txt").write_text("keep")
    before = _tree(out)
    with pytest.raises(DataError, match="splits: was not written by preprocess"):
        _run(covidx, out, size=48)
    assert _tree(out) == before and (out / "splits" / "mine.txt").read_text() == "keep"
    assert not [p for p in out.iterdir() if p.name.startswith(swap.STAGING_PREFIX)]  # the refused copy is gone


def test_a_source_inside_the_output_or_the_reverse_is_refused_untouched(covidx, tmp_path):
    out = tmp_path / "out"
    _run(covidx, out)
    inner = out / "raw"
    os.rename(covidx, inner)
    with pytest.raises(DataError, match="lies inside --out"):
        _run(inner, out)
    assert (inner / "train.txt").is_file()
    with pytest.raises(DataError, match="lies inside --source"):
        _run(inner, inner / "prepared")
    assert not (inner / "prepared").exists()


def test_out_dot_prepares_the_current_folder(covidx, tmp_path, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    _run(covidx, swap.Path("."))
    assert read_manifest(here).rows and not list(tmp_path.glob(".*partial*"))
    _run(covidx, swap.Path("."), size=48)  # and again, in place
    assert read_manifest(here).meta["image_size"] == 48


def test_a_second_writer_is_refused_at_once_naming_the_holder(covidx, tmp_path):
    out = tmp_path / "out"
    _run(covidx, out)
    before = _tree(out)
    with swap.preprocess_lock(out), pytest.raises(DataError, match=r"in use by pid \d+"):
        _run(covidx, out, size=48)
    assert _tree(out) == before


def test_a_foreign_folder_is_refused_naming_its_first_entry_and_left_as_it_was(covidx, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "b.txt").write_text("keep")
    (mine / "a.txt").write_text("keep")
    with pytest.raises(DataError, match=r"not empty and not a prepared dataset \(first entry: a.txt\)"):
        _run(covidx, mine)
    assert sorted(p.name for p in mine.iterdir()) == ["a.txt", "b.txt"]


KILL_SCRIPT = """
import os, sys
from pathlib import Path
from cmcgns.data.preprocess import swap
from cmcgns.plugins.manager import get_registry

point = sys.argv[3]
real_move, real_commit = swap._move, swap._commit
moved = {"clearing": 0, "filling": 0}

def move(src, dst):
    real_move(src, dst)
    phase = "clearing" if dst.parent.name.startswith(swap.PREVIOUS_PREFIX) else "filling"
    moved[phase] += 1
    if phase == point and moved[phase] == 2:
        os._exit(9)  # as kill -9: no handler, no finally runs

def commit(out, new, journal):
    if point == "commit":
        (out / swap.WRITTEN_NAME).write_text("[]")  # half-way through committing
        os._exit(9)
    real_commit(out, new, journal)

swap._move, swap._commit = move, commit
get_registry().get("dataset", "covidx").build({}).run(Path(sys.argv[1]), Path(sys.argv[2]), 48, 1)
"""


@pytest.mark.parametrize("point", ["clearing", "filling", "commit"])
@pytest.mark.parametrize("finisher", ["verify", "rerun"])
def test_a_swap_killed_at_any_point_is_finished_by_verify_or_the_next_run(covidx, tmp_path, point, finisher):
    from cmcgns.data.preprocess.verify import verify

    out = tmp_path / "out"
    _run(covidx, out, size=32)
    (out / "NOTES.txt").write_text("mine")
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILL_SCRIPT), str(covidx), str(out), point], capture_output=True
    )
    assert killed.returncode == 9, killed.stderr.decode()[-2000:]
    assert (out / swap.JOURNAL_NAME).is_file()
    if finisher == "verify":
        assert verify(out) == []
    else:
        _run(covidx, out, size=48)
    assert read_manifest(out).meta["image_size"] == 48  # the killed run's result, complete
    assert (out / "NOTES.txt").read_text() == "mine"
    assert not (out / swap.JOURNAL_NAME).exists()
    assert not [p for p in out.iterdir() if p.name.startswith((swap.STAGING_PREFIX, swap.PREVIOUS_PREFIX))]
    assert verify(out) == []


def test_a_folder_an_older_version_left_mid_swap_is_restored(covidx, tmp_path):
    from cmcgns.data.preprocess.verify import verify

    out = tmp_path / "out"
    _run(covidx, out)
    out.rename(tmp_path / ".out.previous-4242")  # killed between the two renames of the old swap
    assert verify(out) == [] and read_manifest(out).rows
    assert not list(tmp_path.glob(".out.previous-*"))


def test_a_dead_image_worker_fails_the_run_in_one_line_and_leaves_the_output_as_it_was(covidx, tmp_path, monkeypatch):
    import cmcgns.data.preprocess.base as base
    from cmcgns.testing.faults import die_in_worker

    generate("covidx", covidx, 160, seed=0, image_size=48)  # enough images for two workers
    out = tmp_path / "out"
    _run(covidx, out)
    before = _tree(out)
    monkeypatch.setattr(base, "_resize_one", die_in_worker)  # pickled by name: the spawned worker runs it
    with pytest.raises(DataError, match="a worker process died"):
        _run(covidx, out, size=48, workers=2)
    assert _tree(out) == before
