from vpolib.io import append_jsonl, done_keys, read_jsonl, write_jsonl


def test_append_after_a_cut_line_starts_a_new_line(tmp_path):
    path = tmp_path / "log.jsonl"
    append_jsonl(path, {"id": 1})
    with open(path, "a") as f:
        f.write('{"id": 2, "tex')  # a kill mid-write
    append_jsonl(path, {"id": 3})
    records, errors = read_jsonl(path)
    assert records == [{"id": 1}, {"id": 3}]
    assert [e["line"] for e in errors] == [2]
    assert done_keys(path, "id") == {1, 3}


def test_write_jsonl_replaces_atomically(tmp_path):
    path = tmp_path / "x.jsonl"
    write_jsonl(path, [{"a": "é"}])
    write_jsonl(path, [{"b": 1}, {"c": 2}])
    assert read_jsonl(path) == ([{"b": 1}, {"c": 2}], [])
    assert not list(tmp_path.glob("*.tmp"))
    assert done_keys(tmp_path / "missing.jsonl", "id") == set()


def test_read_json_reads_what_write_json_wrote(tmp_path):
    from vpolib.io import read_json, write_json

    write_json(tmp_path / "m.json", {"run_id": "r1", "stages": {"01_data": {"seconds": 9.5}}})
    assert read_json(tmp_path / "m.json") == {"run_id": "r1", "stages": {"01_data": {"seconds": 9.5}}}
