import json

import nbformat
import pytest

from vpolib.run import committed_reference, discover_notebooks, parse_sets, run, select


def _nb(path, code):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "cpu"\nrun_dir = ""\noverrides = {}')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_parse_sets_reads_yaml_values():
    assert parse_sets(["data.limit=100", "x=true", "name=abc", "f=0.5"]) == {
        "data.limit": 100,
        "x": True,
        "name": "abc",
        "f": 0.5,
    }
    with pytest.raises(SystemExit):
        parse_sets(["novalue"])


def test_select_range(tmp_path):
    for name in ("01_a", "02_b", "03_c"):
        _nb(tmp_path / f"{name}.ipynb", "pass")
    found = discover_notebooks(tmp_path)
    assert list(found) == ["01", "02", "03"]
    assert [p.stem for p in select(found, "2", None)] == ["02_b", "03_c"]
    assert [p.stem for p in select(found, None, "01")] == ["01_a"]


def test_run_writes_manifest_and_stops_at_failure(tmp_path, capsys):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    code = (
        "from vpolib import start_stage\n"
        "stage = start_stage('{name}', profile, run_dir, overrides)\n"
        "stage.path('out.txt').write_text(str(stage.cfg.data.heldout_size))\n"
        "stage.finish({{'n': stage.cfg.data.heldout_size}}, ['out.txt'])"
    )
    _nb(nbs / "01_ok.ipynb", code.format(name="01_ok"))
    _nb(nbs / "02_boom.ipynb", "raise RuntimeError('boom in cell')")
    _nb(nbs / "03_never.ipynb", "pass")
    run_dir = tmp_path / "run"
    code = run("smoke", None, None, run_dir, {"data.heldout_size": 9}, notebook_dir=nbs, progress=False)
    assert code == 1
    err = capsys.readouterr().err
    assert "02_boom" in err and "boom in cell" in err and "02_boom.ipynb" in err
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["stages"]["01_ok"]["status"] == "ok"
    assert manifest["stages"]["02_boom"]["status"] == "failed"
    assert "03_never" not in manifest["stages"]
    assert json.loads((run_dir / "01_ok" / "metrics.json").read_text()) == {"n": 9}
    assert (run_dir / "01_ok" / "01_ok.ipynb").exists() and (run_dir / "02_boom" / "02_boom.ipynb").exists()
    assert manifest["seed"] == 42 and manifest["versions"]["torch"]


def test_run_shows_progress_line_and_keeps_notebooks_small(tmp_path, capsys):
    """A stage's track() loop and its tqdm bars reach the runner's line, not the executed notebook."""
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _nb(
        nbs / "01_loop.ipynb",
        "import time\nfrom tqdm.auto import tqdm\nfrom vpolib.progress import track\n"
        "for _ in track(range(6), desc='busy loop'):\n    time.sleep(0.3)\n"
        "for _ in tqdm(range(3), desc='a bar'):\n    pass",
    )
    assert run("smoke", None, None, tmp_path / "run", {}, notebook_dir=nbs, progress=True) == 0
    out = capsys.readouterr().out
    assert "\r[1/1] 01_loop · busy loop " in out and "/6 · " in out
    assert "[1/1] 01_loop · ok in " in out
    nb = nbformat.read(tmp_path / "run" / "01_loop" / "01_loop.ipynb", as_version=4)
    assert nb.cells[-1].outputs == []  # no progress bar, no progress text
    assert not (tmp_path / "run" / "progress.json").exists()


def test_a_run_is_verified_only_against_a_committed_reference_run(tmp_path):
    run = tmp_path / "run"
    (run / "06_evaluate").mkdir(parents=True)
    (tmp_path / "docs" / "results" / "quick").mkdir(parents=True)
    (tmp_path / "docs" / "results" / "quick" / "verify_float32_vs_bfloat16.json").write_text("{}")
    assert (
        committed_reference("quick", run, tmp_path) is None
    )  # no results.json there: nothing to verify against
    (tmp_path / "docs" / "results" / "quick" / "results.json").write_text("{}")
    assert committed_reference("quick", run, tmp_path) is None  # the run did not finish stage 06
    (run / "06_evaluate" / "results.json").write_text("{}")
    assert committed_reference("quick", run, tmp_path) == tmp_path / "docs" / "results" / "quick"
