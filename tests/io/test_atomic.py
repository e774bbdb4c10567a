import pytest

from cmcgns.io.atomic import atomic_open, write_json


def test_an_exception_mid_write_leaves_the_previous_file(tmp_path):
    target = tmp_path / "results.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_open(target, "w") as handle:
        handle.write('{"v": 2')
        raise RuntimeError("killed mid-write")
    assert target.read_text().strip().replace(" ", "").replace("\n", "") == '{"v":1}'
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary left behind


def test_append_after_a_torn_last_line_keeps_the_new_row_whole(tmp_path):
    import json

    from cmcgns.io.atomic import append_jsonl

    path = tmp_path / "results.jsonl"
    append_jsonl(path, {"a": 1})
    with path.open("a") as handle:
        handle.write('{"a": 2, "b"')  # a writer killed mid-line
    append_jsonl(path, {"a": 3})
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {"a": 1} and json.loads(lines[-1]) == {"a": 3} and len(lines) == 3


def test_a_full_disk_names_the_file_being_written(tmp_path):
    import errno

    import torch

    from cmcgns.cli.errors import reports_errors

    target = tmp_path / "backbone_mm.pth"
    with pytest.raises(OSError) as caught, atomic_open(target, "wb"):
        raise OSError(errno.ENOSPC, "No space left on device")  # what write() raises: no file named
    assert caught.value.filename == str(target) and caught.value.errno == errno.ENOSPC

    def torch_save_on_a_full_disk():
        with atomic_open(target, "wb") as handle:
            torch.save({"x": torch.zeros(4)}, handle)
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 123 vs 456")

    import typer

    with pytest.raises(typer.Exit):
        reports_errors(torch_save_on_a_full_disk)()
    assert not target.exists() and not list(tmp_path.glob("*.tmp"))


def test_the_command_line_error_for_a_full_disk_names_the_file(tmp_path, capsys):
    import errno

    import typer

    from cmcgns.cli.errors import reports_errors

    def full():
        with atomic_open(tmp_path / "summary.json", "w") as handle:
            handle.write("{}")
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(typer.Exit):
        reports_errors(full)()
    err = capsys.readouterr().err
    assert f"{tmp_path / 'summary.json'}: No space left on device" in err.replace("\n", "") and "a file" not in err
