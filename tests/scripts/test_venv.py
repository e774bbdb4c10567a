"""scripts/venv.sh: every checkout runs its own code. The pinned dependencies are shared (one base
venv keyed by the pins); the editable install of cmcgns is per checkout (CHECKOUT/.venv), so a
second clone at another commit never runs the first clone's code."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _venv(checkout: Path) -> Path:
    out = subprocess.run(["bash", "scripts/venv.sh"], cwd=checkout, check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def _probe(venv: Path) -> str:
    """Where this venv's cmcgns and the example plugin come from, and the clone's marker."""
    code = (
        "import cmcgns, importlib.metadata as m; "
        "ep = [e for e in m.entry_points(group='cmcgns') if e.name == 'hardest_negatives'][0]; "
        "print(cmcgns.__file__, ep.load().__file__, getattr(cmcgns, 'CHECKOUT_PROBE', '-'))"
    )
    elsewhere = venv.parent.parent  # not inside any checkout: `python -c` puts the working directory first
    run = subprocess.run([venv / "bin/python", "-c", code], cwd=elsewhere, check=True, capture_output=True, text=True)
    return run.stdout


@pytest.mark.slow
def test_two_clones_at_different_commits_each_run_their_own_code(tmp_path):
    if _git(ROOT, "rev-parse", "--is-inside-work-tree") != "true":
        pytest.skip("not a git checkout")
    first, second = tmp_path / "first", tmp_path / "second"
    for clone in (first, second):
        _git(tmp_path, "clone", "-q", "--no-hardlinks", str(ROOT), str(clone))
    init = second / "cmcgns" / "__init__.py"
    init.write_text(init.read_text() + '\nCHECKOUT_PROBE = "second"\n')
    _git(second, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "probe")
    assert _git(first, "rev-parse", "HEAD") != _git(second, "rev-parse", "HEAD")

    first_venv, second_venv = _venv(first), _venv(second)
    assert first_venv == first / ".venv" and second_venv == second / ".venv"
    before = _probe(first_venv)
    assert _probe(second_venv).split() == [
        str(second / "cmcgns" / "__init__.py"),
        str(second / "plugins" / "cmcgns-hardest-negatives" / "cmcgns_hardest_negatives" / "__init__.py"),
        "second",
    ]
    _venv(second)  # setting up one checkout again changes nothing for the other
    assert _probe(first_venv) == before and before.split()[0] == str(first / "cmcgns" / "__init__.py")
    assert before.split()[2] == "-"
    # the tools run on the checkout's interpreter too: pytest through the overlay sees its cmcgns
    ran = subprocess.run(
        [first_venv / "bin/python", "-m", "pytest", "--version"], check=True, capture_output=True, text=True
    )
    assert "pytest" in ran.stdout + ran.stderr
