"""Benchmarks protocol: rewritten prompt for sampling, original prompt for scoring (VBench's file names and
VisionReward's checklist), on hand-made run dirs."""

from __future__ import annotations

import json

import pytest

from vpolib import benchmarks
from vpolib.config import load_config
from vpolib.io import read_jsonl, write_jsonl
from vpolib.paths import REPO_ROOT

VBENCH = REPO_ROOT / "data" / "vbench"


def test_vbench_prompts_are_the_946_of_its_full_info():
    rows = benchmarks.load_prompts("vbench", VBENCH, None, None)
    assert len(rows) == 946
    assert rows[0] == {
        "id": "vbench-0000",
        "query": "In a still frame, a stop sign",
        "dimension": ["temporal_flickering"],
    }
    assert len(benchmarks.load_prompts("vbench", VBENCH, None, 5)) == 5
    with pytest.raises(ValueError, match="monetbench_file"):
        benchmarks.load_prompts("monetbench", VBENCH, None, None)


def test_render_rows_keep_the_original_prompt_and_give_each_sample_its_own_row():
    prompts = [{"id": "vbench-0000", "query": "a cat"}, {"id": "vbench-0001", "query": "a dog"}]
    rows = benchmarks.render_rows(prompts, ["A fluffy cat ...", "A dog ..."], samples=2)
    assert [r["id"] for r in rows] == ["vbench-0000-0", "vbench-0000-1", "vbench-0001-0", "vbench-0001-1"]
    assert [r["query"] for r in rows] == ["a cat", "a cat", "a dog", "a dog"]
    assert rows[3]["prompts"] == ["A dog ..."]


def test_vbench_layout_names_videos_by_the_original_prompt(tmp_path):
    stage = tmp_path / "vpo"
    (stage / "videos").mkdir(parents=True)
    recs = []
    for i in range(2):
        (stage / "videos" / f"v{i}.mp4").write_bytes(b"video %d" % i)
        recs.append(
            {
                "id": f"vbench-0007-{i}",
                "query": "a red car",
                "prompt": "A shiny red car ...",
                "video": f"videos/v{i}.mp4",
            }
        )
    write_jsonl(stage / "renders.jsonl", recs)
    files = benchmarks.vbench_layout(stage, tmp_path / "layout")
    assert [f.name for f in files] == ["a red car-0.mp4", "a red car-1.mp4"]
    assert files[1].read_bytes() == b"video 1"
    write_jsonl(stage / "renders.jsonl", [{**recs[0], "query": "a/b"}])
    with pytest.raises(ValueError, match="file name"):
        benchmarks.vbench_layout(stage, tmp_path / "layout2")


def test_vbench_commands_and_results(tmp_path):
    cmds = benchmarks.vbench_commands(
        tmp_path / "v", ["color", "scene"], tmp_path / "out", VBENCH / "x.json", "vbench"
    )
    assert cmds[1][:2] == ["vbench", "evaluate"] and cmds[1][cmds[1].index("--dimension") + 1] == "scene"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a_eval_results.json").write_text(
        json.dumps({"color": [0.8125, [{"video_path": "x"}]]})
    )
    (tmp_path / "out" / "b_eval_results.json").write_text(json.dumps({"scene": [0.25, []]}))
    assert benchmarks.read_vbench(tmp_path / "out") == {"color": 0.8125, "scene": 0.25}


def test_prepare_then_collect_on_a_run_dir(tmp_path):
    cfg = load_config(
        "smoke",
        {
            "analysis.benchmarks": ["vbench"],
            "analysis.benchmark_methods": ["raw"],
            "analysis.benchmark_limit": 3,
        },
    )
    paths = benchmarks.prepare(cfg, tmp_path, "vbench")
    rows = read_jsonl(paths["raw"])[0]
    assert len(rows) == 3 * 5 and all(r["prompts"] == [r["query"]] for r in rows)  # raw: the prompt as given
    stage = benchmarks.bench_dir(tmp_path, "vbench", "raw")
    write_jsonl(stage / "scores.jsonl", [{"score": 1.0}, {"score": 2.0}])
    (stage / "vbench_results").mkdir()
    (stage / "vbench_results" / "r_eval_results.json").write_text(json.dumps({"color": [0.5, []]}))
    out = benchmarks.collect(cfg, tmp_path)
    assert out == {"vbench": [{"method": "raw", "videos": 2, "visionreward": 1.5, "color": 0.5}]}
    assert json.loads((tmp_path / "06_evaluate" / "benchmarks.json").read_text()) == out
