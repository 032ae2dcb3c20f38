"""vpolib.progress: loop progress to the runner's JSON file, and the runner's one updating line."""

from __future__ import annotations

import io
import json
import time

from vpolib import progress
from vpolib.progress import StageProgressCallback, read_progress, track
from vpolib.run import StageLine, clock, status_line


def test_track_writes_progress_and_eta(tmp_path, monkeypatch):
    path = tmp_path / "progress.json"
    monkeypatch.setenv(progress.ENV, str(path))
    monkeypatch.setattr(progress, "MIN_INTERVAL", 0.0)
    seen = []
    for i in track(range(4), desc="rendering"):
        time.sleep(0.01)
        seen.append((i, read_progress(path)))
    assert [i for i, _ in seen] == [0, 1, 2, 3]
    assert [s["done"] for _, s in seen] == [0, 1, 2, 3]  # read inside the loop, before the update
    last = read_progress(path)
    assert last["desc"] == "rendering" and last["done"] == last["total"] == 4 and last["eta"] == 0.0
    assert last["closed"] and not seen[-1][1]["closed"]
    assert seen[1][1]["eta"] is not None and seen[1][1]["eta"] > 0  # elapsed / done * remaining


def test_nested_tracks_report_the_inner_then_the_outer(tmp_path, monkeypatch):
    path = tmp_path / "progress.json"
    monkeypatch.setenv(progress.ENV, str(path))
    for _ in track([1, 2], desc="outer"):
        for _ in track(iter([1, 2, 3]), desc="inner"):  # no len(): total unknown
            assert read_progress(path)["desc"] == "inner" and read_progress(path)["total"] is None
        assert read_progress(path)["desc"] == "outer"


def test_track_without_runner_is_plain_and_quiet(monkeypatch, capsys):
    monkeypatch.delenv(progress.ENV, raising=False)
    assert list(track(range(3), desc="x", disable=True)) == [0, 1, 2]
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""


def test_trainer_callback_reports_steps(tmp_path, monkeypatch):
    from types import SimpleNamespace

    path = tmp_path / "progress.json"
    monkeypatch.setenv(progress.ENV, str(path))
    monkeypatch.setattr(progress, "MIN_INTERVAL", 0.0)
    cb = StageProgressCallback("SFT steps")
    from transformers import TrainerCallback

    assert isinstance(cb, TrainerCallback)
    state = SimpleNamespace(max_steps=63, global_step=0)
    cb.on_train_begin(None, state, None)
    state.global_step = 12
    cb.on_step_end(None, state, None)
    assert {k: read_progress(path)[k] for k in ("desc", "done", "total")} == {
        "desc": "SFT steps",
        "done": 12,
        "total": 63,
    }
    cb.on_train_end(None, state, None)
    assert cb.task is None


def test_status_line_and_clock():
    assert clock(75.2) == "1:15" and clock(3725) == "1:02:05" and clock(None) == "?"
    state = {"desc": "SFT steps", "done": 12, "total": 63, "eta": 330.0}
    assert (
        status_line("[3/6] 03_sft", 130, state) == "[3/6] 03_sft · SFT steps 12/63 · 2:10 elapsed · ETA 5:30"
    )
    assert status_line("[3/6] 03_sft", 5, None) == "[3/6] 03_sft · 0:05 elapsed"
    assert (
        status_line("[3/6] 03_sft", 5, {**state, "closed": True})
        == "[3/6] 03_sft · SFT steps 12/63 done · 0:05 elapsed"
    )


def test_stage_line_updates_one_line(tmp_path):
    path = tmp_path / "progress.json"
    out = io.StringIO()
    out.isatty = lambda: True  # a terminal: every poll may update the line
    with StageLine("[1/2] 01_x", path, stream=out, interval=0.05) as line:
        path.write_text(json.dumps({"desc": "judging", "done": 1, "total": 4, "eta": 3.0}))
        time.sleep(0.3)
        line.finish("[1/2] 01_x · ok in 0.3 s")
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n") and text.rstrip().endswith("ok in 0.3 s")
    assert "judging 1/4" in text and "ETA 0:03" in text and "\r" in text
    assert not path.exists()  # removed at stage end


def test_sft_training_reports_its_steps(tiny_dir, tmp_path, monkeypatch):
    """The trainer builders carry the callback: a real 2-step SFT run writes 'SFT steps 2/2'."""
    from vpolib.models import load_causal_lm
    from vpolib.trainers import build_sft_trainer

    path = tmp_path / "progress.json"
    monkeypatch.setenv(progress.ENV, str(path))
    model, tok = load_causal_lm(str(tiny_dir))
    rows = [
        {
            "prompt": [{"role": "user", "content": f"q{i}"}],
            "completion": [{"role": "assistant", "content": "a"}],
        }
        for i in range(4)
    ]
    knobs = {"max_steps": 2, "per_device_train_batch_size": 2, "use_cpu": True, "logging_steps": 1}
    trainer = build_sft_trainer(model, tok, rows, [], knobs, tmp_path / "out", seed=0)
    trainer.train()
    state = read_progress(path)
    assert (state["desc"], state["done"], state["total"], state["closed"]) == ("SFT steps", 2, 2, True)
