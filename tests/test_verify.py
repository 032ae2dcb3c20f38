"""`python -m vpolib verify`: an identical copy of the reference reproduces; a planted difference is flagged."""

import json
import shutil

from vpolib.paths import REPO_ROOT
from vpolib.verify import main, verify

REFERENCE = REPO_ROOT / "docs" / "results" / "cpu"


def as_run(tmp_path):
    """The committed reference laid out as a run dir (what `make publish` copied, put back in place)."""
    run = tmp_path / "run"
    for src, dst in (("results.json", "06_evaluate/results.json"), ("manifest.json", "manifest.json"),
                     ("02_metrics.json", "02_refine/metrics.json")):  # fmt: skip
        (run / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REFERENCE / src, run / dst)
    return run


def test_an_identical_copy_reproduces(tmp_path, capsys):
    rows, text = verify(as_run(tmp_path), REFERENCE)
    assert rows and {r["verdict"] for r in rows} <= {"same", "within CI"}
    assert f"{len(rows)} of {len(rows)} figures reproduce; 0 do not" in text
    assert main([str(as_run(tmp_path / "b")), "--against", str(REFERENCE), "--strict"]) == 0


def test_a_planted_difference_is_flagged(tmp_path, capsys):
    run = as_run(tmp_path)
    path = run / "06_evaluate" / "results.json"
    results = json.loads(path.read_text())
    vpo = next(r for r in results["video"]["overall"] if r["method"] == "vpo")
    vpo["reward"] = vpo["reward_hi"] + 0.01  # just above the reference's CI
    path.write_text(json.dumps(results))
    metrics = json.loads((run / "02_refine" / "metrics.json").read_text())
    metrics["n_sft"] -= 1
    (run / "02_refine" / "metrics.json").write_text(json.dumps(metrics))
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["versions"]["torch"] = "9.9"
    (run / "manifest.json").write_text(json.dumps(manifest))
    rows, text = verify(run, REFERENCE)
    flagged = {r["figure"]: r["verdict"] for r in rows if r["verdict"] not in ("same", "within CI")}
    assert flagged == {"video reward: vpo": "OUTSIDE CI", "n_sft": "DIFFERENT"}
    assert "torch         9.9 | 2.13.0+cpu   <- differs" in text
    assert main([str(run), "--against", str(REFERENCE), "--strict"]) == 1
    assert main([str(tmp_path / "nope")]) == 2 and "not a run dir" in capsys.readouterr().err


def test_two_runs_of_ones_own_compare_and_write_json(tmp_path, capsys):
    """--against takes another finished run dir too (two dtypes, two machines); --json keeps the rows."""
    a, b = as_run(tmp_path / "a"), as_run(tmp_path / "b")
    path = b / "06_evaluate" / "results.json"
    results = json.loads(path.read_text())
    results["n"]["heldout"] += 1
    path.write_text(json.dumps(results))
    assert main([str(a), "--against", str(b), "--json", str(tmp_path / "v.json")]) == 0
    saved = json.loads((tmp_path / "v.json").read_text())
    flagged = [r["figure"] for r in saved["rows"] if r["verdict"] == "DIFFERENT"]
    assert flagged == ["n heldout"] and saved["run"] == saved["reference"]
    assert main([str(a), "--against", str(tmp_path / "nowhere")]) == 2
    assert "no committed reference" in capsys.readouterr().err
