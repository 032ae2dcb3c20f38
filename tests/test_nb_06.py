"""Notebook 06 on the smoke profile (the smoke_run fixture runs the chain 01..07 once per session)."""

import json
import re

import nbformat
import pytest

from vpolib.analysis import OUTCOMES

pytestmark = pytest.mark.notebook


def test_06_evaluate(smoke_stage):
    run_dir, stage, m = smoke_stage("06_evaluate")
    results = json.loads((stage / "results.json").read_text())
    methods = m["methods"]["text"]
    # no local LLM on the smoke profile: the few-shot baseline is skipped on real queries (with a note)
    assert methods == ["raw", "rule", "sft", "vpo", "vpo-paper"]
    assert m["methods"]["video"] == ["caption", "fewshot", "raw", "rule", "sft", "vpo", "vpo-paper"]
    # 03 and 05 prompt 6 held-out queries, real and ShapesWorld in turn: 3 of each are evaluated
    assert (m["n_text_queries"], m["n_video_queries"]) == (3, 3)
    assert m["judge"] == {"resumed": 0, "judged": 3 * 5, "failed": 0, "unparsable": 0}
    assert m["video"] == {"resumed": 0, "rendered": 3 * 7 * 2, "failed": 0}  # 2 eval seeds on smoke
    assert any("fewshot" in n for n in results["notes"])
    # every (method, query) judged once, nothing failed
    assert m["judge"]["judged"] + m["judge"]["resumed"] == m["n_text_queries"] * len(methods)
    assert m["judge"]["failed"] == 0 and m["n_text_queries"] > 0
    for row in results["text"]["all"]:
        assert sum(row[o] for o in OUTCOMES) == pytest.approx(100.0)
        assert all(row[f"{o}_lo"] <= row[o] <= row[f"{o}_hi"] for o in OUTCOMES)
    assert {r["baseline"] for r in results["text"]["win_rates"]} == set(methods) - {"vpo"}
    # video metrics on the held-out ShapesWorld queries, every method plus the caption oracle
    assert m["n_video_queries"] > 0 and "caption" in m["methods"]["video"]
    n_videos = m["n_video_queries"] * len(m["methods"]["video"]) * results["n"]["video_seeds"]
    assert results["n"]["video_seeds"] == 2 and m["video"]["rendered"] + m["video"]["resumed"] == n_videos
    assert all(0.0 <= r <= 1.0 for r in m["reward"].values())
    assert results["video"]["dimensions"]
    # on ShapesWorld the few-shot row is the ShapesWorld teacher (the SFT data's source), as GPT-4o in the paper
    assert "fewshot" in m["methods"]["video"]
    assert [r["baseline"] for r in results["video"]["sft_over_raw"]] == ["raw"]
    assert [r["target"] for r in results["text"]["sft_over_raw"]] == ["sft"]
    assert_issue_24(results, m, methods)
    assert "beyond" not in results  # notebook 07's (beyond.json)
    # the report is one self-contained file
    html = (stage / "report.html").read_text()
    assert all(src.startswith("data:") for src in re.findall(r'src="([^"]*)"', html))
    assert "data:image/gif;base64," in html
    assert_static_browser(stage / "06_evaluate.ipynb")
    # SFT's and VPO's videos side by side where VPO changed the prompt (or the one-line "none" when it never did)
    nb = nbformat.read(stage / "06_evaluate.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "views.evaluation.side_by_side" in c.source)
    shown = "".join(o.get("data", {}).get("text/html", "") for o in cell.outputs)
    assert "data:image/gif;base64," in shown or "No held-out query" in shown


def assert_issue_24(results, m, methods):
    """Evaluation that can separate: prompts changed vs SFT, and sampled decoding (smoke: 2 samples x 2 seeds)."""
    trained = sorted(x for x in methods if x.startswith("vpo"))
    for kind in ("text", "video"):
        rows = results[kind]["changed_vs_sft"]
        assert [r["method"] for r in rows] == trained and all(0.0 <= r["share"] <= 1.0 for r in rows)
        assert all(r["n"] == m[f"n_{kind}_queries"] and r["changed"] <= r["n"] for r in rows)
    sampled = results["video"]["sampled"]
    assert (sampled["samples"], sampled["temperature"], sampled["seeds"]) == (2, 0.7, 2)
    overall = {(r["method"], r["decoding"]): r for r in sampled["overall"]}
    assert set(overall) == {(x, d) for x in ("sft", "vpo") for d in ("greedy", "sampled")}
    assert all(r["reward_lo"] <= r["reward"] <= r["reward_hi"] and r["n"] == 3 for r in overall.values())
    greedy = {r["method"]: r["reward"] for r in results["video"]["overall"]}
    assert overall[("vpo", "greedy")]["reward"] == greedy["vpo"]  # greedy beside sampled: the same numbers
    assert [(r["decoding"], r["baseline"]) for r in sampled["win_rates"]] == [
        ("greedy", "sft"),
        ("sampled", "sft"),
    ]
    # 2 methods x 2 samples x 3 queries x 2 seeds
    assert results["counts"]["sampled"] == {"resumed": 0, "rendered": 24, "failed": 0}
    assert set(m["sampled_reward"]) == {f"{x}/{d}" for x in ("sft", "vpo") for d in ("greedy", "sampled")}


def assert_static_browser(path):
    """Headless, the browser cell shows a static table (HTML), not a widget."""
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "browser.show_browser" in c.source)
    kinds = {k for o in cell.outputs for k in o.get("data", {})}
    assert "text/html" in kinds and "application/vnd.jupyter.widget-view+json" not in kinds


def _hand_made_run(run_dir):
    """A run dir with only what notebook 06 reads (the data contracts), for running it alone."""
    from vpolib.io import write_jsonl

    real = ["a cute dog on the grass", "a bloody fight between two men -neg blue", "a cat playing piano"]
    heldout = [
        {
            "id": f"dpo-{i:05d}",
            "source": "dpo",
            "query": q,
            "content": q.split(" -")[0],
            "tags": [],
            "flags": ["harmful"] if "bloody" in q else [],
            "harmful_terms": [],
        }
        for i, q in enumerate(real)
    ]
    heldout += [
        {
            "id": "shapes-00000",
            "source": "shapes",
            "query": "red ball going right",
            "content": "red ball",
            "tags": [],
            "flags": [],
            "harmful_terms": [],
            "scene": {},
            "caption": "A small red circle moves from the left edge to the right across a black background.",
        }
    ]
    write_jsonl(run_dir / "01_data/splits/heldout.jsonl", heldout)
    write_jsonl(run_dir / "01_data/splits/vbench_pairs.jsonl", [])
    for stage, method in (("03_sft", "sft"), ("05_dpo", "vpo")):
        write_jsonl(
            run_dir / stage / "heldout_prompts.jsonl",
            [
                {
                    "id": r["id"],
                    "query": r["query"],
                    "method": method,
                    "prompt": f"{r.get('caption') or r['content']}, vivid detail and smooth motion",
                }
                for r in heldout
            ],
        )


@pytest.mark.slow
def test_06_alone_on_hand_made_inputs(tmp_path):
    """Notebook 06 by itself (tiny CogVideoX video backend), then again without notebook 05's prompts."""
    from vpolib.run import run

    _hand_made_run(tmp_path)
    overrides = {"video.backend": "cogvideox", "video.cogvideox_model": "tiny"}
    assert run("smoke", "06", "06", tmp_path, overrides, progress=False) == 0
    m = json.loads((tmp_path / "06_evaluate" / "metrics.json").read_text())
    # raw, rule, sft, vpo on the text side; on video also the ShapesWorld teacher (fewshot) and the caption
    # 6 videos (one ShapesWorld query x raw, rule, fewshot, sft, vpo, caption) x the smoke profile's 2 eval seeds
    assert m["judge"]["judged"] == 3 * 4 and m["video"]["rendered"] == 6 * 2
    results = json.loads((tmp_path / "06_evaluate" / "results.json").read_text())
    assert any("sampled decoding: sft skipped" in n for n in results["notes"])  # no saved models here
    assert_static_browser(tmp_path / "06_evaluate" / "06_evaluate.ipynb")
    (tmp_path / "05_dpo" / "heldout_prompts.jsonl").unlink()
    assert run("smoke", "06", "06", tmp_path, overrides, progress=False) == 1
    nb = nbformat.read(tmp_path / "06_evaluate" / "06_evaluate.ipynb", as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors and errors[0]["ename"] == "FileNotFoundError" and "'vpo'" in errors[0]["evalue"]


def test_06_playground_runs_headless(smoke_stage):
    # papermill has no widget frontend: the playground cell shows one example, rendered for raw, SFT and VPO
    _, stage, _ = smoke_stage("06_evaluate")
    gifs = sorted(p.name for p in (stage / "playground").glob("*.gif"))
    assert gifs == ["query000_0.gif", "query001_0.gif", "query002_0.gif"]
