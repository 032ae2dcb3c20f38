"""Issue 29 ("Reproducible anywhere"): what a run writes depends on its config and seed only.

- Python salts string hashes per process (``PYTHONHASHSEED``), so iterating a ``set`` of strings gives another
  order in every process: no such order may reach an output. The ShapesWorld vocabulary, the typo matcher, the
  detectors and the test-time loop are run under several hash seeds and must write the same.
- Two runs of the quick profile on one machine write the same files: every JSONL byte for byte, every
  metrics.json equal once timing is dropped (slow: two whole runs, about 20 minutes).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from artifacts import differences

from vpolib.paths import REPO_ROOT

# Run in a fresh interpreter per hash seed. A stand-in optimizer repeats its input (the query, then the hints of
# what the best video so far failed) and a stand-in video model draws what a prompt says, read through the
# world's vocabulary (synonyms, typos); the ShapesWorld detectors score it against the query's checklist.
LOOP = r"""
import json, random, sys, tempfile
from pathlib import Path

from vpolib import data, testtime
from vpolib.shapesworld import reward, vocabulary, world
from vpolib.shapesworld.render import render

out = {"synonyms": vocabulary.synonyms(), "world_words": list(vocabulary.world_words())}
# one edit from two world words with different meanings ("dopping": dropping = down, hopping = bouncing)
typos = ["rigth", "circel", "squre", "smill", "dowt", "dopping", "ropping", "sinting", "sitking", "cuge"]
out["canonical"] = {w: vocabulary.canonical_word(w) for w in typos}
tags = [["neg", "ar", "camera", "style"], ["seed", "fps", "neg", "motion"], ["style", "gs", "ar", "no"]]
out["tags"] = list(data.tag_counts([{"tags": [{"name": n} for n in names]} for names in tags]).items())


def draw(text, qid):
    rng = random.Random(qid)
    objects, background = vocabulary.read_world(text)
    scene = {"background": background or "black", "objects": []}
    for o in objects[:2] or [{}]:
        size, motion = o.get("size") or "large", o.get("motion") or "still"
        start, end = world._path(motion, world.SIZES[size], rng)
        scene["objects"].append({"shape": o.get("shape") or "circle", "size": size, "motion": motion,
                                 "colour": o.get("colour") or "red", "start": start, "end": end})
    return render(scene)


def score(prompts, ids):
    res = [reward.score_video(reward.checklist(by_id[i]), draw(p, i)) for p, i in zip(prompts, ids)]
    return [{**r, "answers": {k: "yes" if v else "no" for k, v in r["answers"].items()}} for r in res]


queries = [{"id": q["id"], "query": q["query"]} for q in world.make_queries(6, 3)]
queries += [{"id": "t1", "query": "a large red square dopping"}, {"id": "t2", "query": "small blue ball sitking"}]
by_id = {q["id"]: q["query"] for q in queries}
log = Path(tempfile.mkdtemp()) / "loop.jsonl"
testtime.run_loop("stub", queries, dict(by_id), lambda inputs, ids, rnd: list(inputs), score, score,
                  reward.checklist, 3, log)
out["loop"] = log.read_text()
sys.stdout.write(json.dumps(out))
"""


def run_with_hash_seeds(code: str, seeds: list[str]) -> list[str]:
    """``code``'s output in a fresh interpreter per hash seed (run side by side)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO_ROOT)},
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in seeds
    ]
    outs = [proc.communicate(timeout=600) for proc in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    return [out for out, _ in outs]


def test_set_order_never_reaches_the_outputs():
    """Under three hash seeds: the same world vocabulary (in the same order), the same canonical word for each
    typo, the same tag counts, and the same test-time loop log, byte for byte."""
    outs = run_with_hash_seeds(LOOP, ["0", "1", "2"])
    assert '"loop": "{' in outs[0]  # the loop wrote its log
    assert outs[1] == outs[0] and outs[2] == outs[0]


def run_quick(run_dir, hash_seed: str) -> None:
    cmd = [
        sys.executable,
        "-m",
        "vpolib",
        "run",
        "--profile",
        "quick",
        "--run-dir",
        str(run_dir),
        "--no-progress",
    ]
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}  # the kernels inherit it
    res = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, env=env)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]


@pytest.mark.slow
@pytest.mark.notebook
def test_two_quick_runs_write_the_same_artifacts(tmp_path):
    """Two whole quick-profile runs, each in its own run dir and under its own hash seed: every JSONL byte for
    byte, every metrics.json without its timing (model dirs it names written relative to the run dir)."""
    a, b = tmp_path / "a", tmp_path / "b"
    run_quick(a, "1")
    run_quick(b, "2")
    assert differences(a, b) == []
