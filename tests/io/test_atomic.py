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
