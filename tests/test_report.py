"""The self-contained HTML report."""

from __future__ import annotations

import json
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from vpolib.results import findings, markdown_table, results_json, stage_metrics  # noqa: E402
from vpolib.views import evaluation, report  # noqa: E402


def test_report_is_self_contained(tmp_path):
    gif = tmp_path / "v.gif"
    frames = [Image.fromarray(np.full((8, 8, 3), i * 30, dtype=np.uint8)) for i in range(3)]
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    fig, ax = plt.subplots()
    ax.bar(["raw", "vpo"], [1, 2])
    out = report.write_report(
        tmp_path / "report.html",
        "Run <x>",
        {"profile": "smoke"},
        {"Text metrics": pd.DataFrame({"method": ["vpo"], "aligned": [75.0]})},
        {"Bars": fig},
        [
            {
                "id": "s1",
                "query": "red <ball>",
                "items": [
                    {
                        "method": "vpo",
                        "prompt": "A red circle",
                        "gif": str(gif),
                        "reward": 0.5,
                        "answers": {"c": True},
                    },
                    {"method": "raw", "prompt": "red ball", "gif": str(tmp_path / "missing.gif")},
                ],
            }
        ],
        notes=["a note"],
    )
    plt.close(fig)
    text = out.read_text()
    srcs = re.findall(r'src="([^"]*)"', text)
    assert len(srcs) == 2  # the figure and the one GIF that exists
    assert all(s.startswith("data:image/") for s in srcs)
    assert any(s.startswith("data:image/gif;base64,") for s in srcs)
    assert "red &lt;ball&gt;" in text and "Run &lt;x&gt;" in text  # escaped, never raw HTML
    assert '<td class="num">75</td>' in text and "reward 0.50" in text and "c: yes" in text


def test_markdown_table():
    row = {
        "aligned": 75.0,
        "aligned_lo": 50.0,
        "aligned_hi": 100.0,
        "unsafe": 0.0,
        "unsafe_lo": 0.0,
        "unsafe_hi": 0.0,
        "refusal": 25.0,
        "refusal_lo": 0.0,
        "refusal_hi": 50.0,
    }
    results = {
        "target": "vpo",
        "text": {
            "all": [{"method": "raw", **row}, {"method": "vpo", **row}],
            "harmful": [{"method": "vpo", **row}],
            "win_rates": [{"baseline": "raw", "win_rate": 0.625, "lo": 0.5, "hi": 0.75}],
        },
        "video": {
            "overall": [{"method": "caption", "reward": 0.9, "reward_lo": 0.8, "reward_hi": 1.0}],
            "win_rates": [],
        },
    }
    lines = markdown_table(results).splitlines()
    assert len(lines) == 2 + 3  # header, rule, raw, vpo, caption
    assert lines[2] == "| raw | 75.0 [50.0, 100.0] | - | - | - | 0.62 [0.50, 0.75] / - |"
    assert lines[3].startswith("| vpo | 75.0 [50.0, 100.0] | 0.0 [0.0, 0.0] | 25.0 [0.0, 50.0] | - |")
    assert lines[4] == "| caption | - | - | - | 0.900 [0.800, 1.000] | - / - |"


def test_compact_merges_ci_columns():
    wide = pd.DataFrame(
        {"method": ["vpo"], "n": [4], "reward": [0.5], "reward_lo": [0.25], "reward_hi": [0.75]}
    )
    assert report.compact(wide).to_dict("records") == [
        {"method": "vpo", "n": 4, "reward": "0.5 [0.25, 0.75]"}
    ]
    long = pd.DataFrame(
        {"method": ["vpo"], "kind": ["colour"], "pass_rate": [1.0], "lo": [1.0], "hi": [1.0], "n": [3]}
    )
    assert report.compact(long).columns.tolist() == ["method", "kind", "pass_rate", "n"]
    assert report.compact(long)["pass_rate"].iloc[0] == "1 [1, 1]"


def _row(method, col, value, half=0.1, **extra):
    return {"method": method, col: value, f"{col}_lo": value - half, f"{col}_hi": value + half, **extra}


def results_fixture(methods=("raw", "rule", "sft", "vpo", "vpo-text", "vpo-video", "teacher"), harmful=True):
    """A results.json-like dict: vpo clearly beats raw on video, ties sft, an ablation and a reference."""
    reward = {
        "raw": 0.15,
        "rule": 0.3,
        "sft": 0.39,
        "vpo": 0.41,
        "vpo-text": 0.35,
        "vpo-video": 0.40,
        "teacher": 0.9,
        "caption": 0.95,
    }
    wins = {
        "raw": (0.8, 0.65, 0.95),
        "rule": (0.6, 0.45, 0.75),
        "sft": (0.52, 0.4, 0.64),
        "vpo-text": (0.55, 0.45, 0.66),
        "vpo-video": (0.5, 0.4, 0.6),
        "teacher": (0.1, 0.0, 0.2),
    }
    text_all = [
        {
            **_row(m, "aligned", 60.0 if m == "vpo" else 40.0, 8),
            **_row(m, "unsafe", 5.0, 5),
            **_row(m, "imprecise", 30.0, 8),
            **_row(m, "refusal", 5.0, 5),
            "method": m,
            "n": 40,
        }
        for m in methods
        if m != "teacher"
    ]
    return {
        "target": "vpo",
        "n": {
            "heldout": 100,
            "text_queries": 40,
            "harmful_queries": 10 if harmful else 0,
            "video_queries": 24,
        },
        "text": {
            "all": text_all,
            "harmful": [
                {**_row(m, "unsafe", 10.0 if m == "vpo" else 50.0, 8), "method": m}
                for m in methods
                if m != "teacher"
            ]
            if harmful
            else [],
            "win_rates": [
                {"baseline": m, "win_rate": 0.5, "lo": 0.4, "hi": 0.6, "wins": 5, "ties": 30, "losses": 5}
                for m in methods
                if m not in ("vpo", "teacher")
            ],
        },
        "video": {
            "overall": [_row(m, "reward", reward[m], 0.11, n=24) for m in methods],
            "win_rates": [
                {"baseline": m, "win_rate": w, "lo": lo, "hi": hi, "wins": 10, "ties": 4, "losses": 10}
                for m, (w, lo, hi) in wins.items()
                if m in methods
            ],
        },
    }


def test_summary_is_generated_from_the_numbers():
    s = findings(results_fixture())
    video = {name: (verdict, text) for verdict, name, text in s["sections"][0][2]}
    assert video["raw"][0] == "held" and "0.80 [0.65, 0.95]" in video["raw"][1]
    assert video["sft"] == (
        "no difference",
        "vpo 0.41 [0.30, 0.52] vs sft 0.39 [0.28, 0.50]; paired win rate "
        "0.52 [0.40, 0.64], 10 wins / 4 ties / 10 losses: the win rate's CI includes 0.5, "
        "no difference shown",
    )
    assert video["teacher"][0] == "reference" and "(ablation)" in video["vpo-text"][1]
    harmful = {name: verdict for verdict, name, _ in s["sections"][2][2]}
    assert harmful["raw"] == "held"  # 10 [2, 18] vs 50 [42, 58] unsafe, lower is better, CIs apart
    assert s["lead"].startswith(
        "Held: vpo is better than raw on video reward; raw, rule, sft, vpo-text, "
        "vpo-video on % unsafe on harmful queries."
    )
    # change a number, the words follow
    worse = results_fixture()
    worse["video"]["win_rates"][0].update(win_rate=0.2, lo=0.05, hi=0.35)
    video = {name: verdict for verdict, name, _ in findings(worse)["sections"][0][2]}
    assert video["raw"] == "not held"
    # without paired win rates the two CIs decide
    unpaired = results_fixture()
    unpaired["video"]["win_rates"] = []
    video = {name: t for _, name, t in findings(unpaired)["sections"][0][2]}
    assert video["sft"].endswith("the CIs overlap, no difference shown")
    assert video["raw"].endswith("the CIs do not overlap, vpo is higher")


def test_summary_and_page_survive_missing_sections():
    for results in (
        {},
        {"target": "vpo"},
        {"text": {"all": []}, "video": {"overall": []}},
        results_fixture(methods=("raw",)),
        results_fixture(harmful=False),
    ):
        s = findings(results)
        assert s["lead"] and len(s["sections"]) == 3
        page = report.render_report(
            "t", {}, {"empty": pd.DataFrame(), "none": None}, {"no fig": None}, [], results=results
        )
        assert "nothing to show (empty)" in page and "No gallery" in page
    s = findings(results_fixture(harmful=False))
    assert s["sections"][2][2] == "not measured in this run (no harmful queries)."
    assert "No results given" in report.render_report("t", {}, {}, {}, [])


def test_pivot_long_tables():
    principles = pd.DataFrame(
        [
            {"method": m, "principle": p, "fail_pct": 10.0, "lo": 5.0, "hi": 15.0, "n": 4}
            for m in ("raw", "vpo")
            for p in ("harmless", "helpful")
        ]
    )
    wide = report.pivot(principles)
    assert wide.columns.tolist() == ["method", "n", "harmless", "helpful"] and len(wide) == 2
    assert wide.iloc[0]["helpful"] == "10 [5, 15]"
    questions = pd.DataFrame(
        [
            {"method": m, "question": f"q{i}", "pass_rate": 0.5, "lo": 0.0, "hi": 1.0, "n": 2}
            for m in ("raw", "vpo")
            for i in range(16)
        ]
    )
    assert report.pivot(questions).columns.tolist() == ["question", "raw", "vpo"]  # many keys: one row each
    assert "<details><summary>q: 16 rows" in report.render_report("t", {}, {"q": questions}, {}, [])
    wins = pd.DataFrame(
        [
            {
                "target": "vpo",
                "baseline": "raw",
                "n": 8,
                "wins": 5,
                "ties": 1,
                "losses": 2,
                "win_rate": 0.6875,
                "lo": 0.5,
                "hi": 0.9,
                "metric": m,
            }
            for m in ("text score", "video")
        ]
    )
    wide = report.pivot(wins)
    assert wide.to_dict("records") == [
        {
            "baseline": "raw",
            "text score: win rate [CI] (W/T/L)": "0.69 [0.50, 0.90] (5/1/2)",
            "video: win rate [CI] (W/T/L)": "0.69 [0.50, 0.90] (5/1/2)",
        }
    ]
    assert report.pivot(pd.DataFrame()).empty


def test_running_stage_is_this_stage():
    import datetime as dt

    from vpolib.analysis import stage_timings

    manifest = {
        "stages": {
            "01_data": {"status": "ok", "seconds": 10.0},
            "06_evaluate": {"started": "2026-01-01T00:00:00+00:00"},
        }
    }
    now = dt.datetime(2026, 1, 1, 0, 0, 42, tzinfo=dt.UTC)
    table = report.fill_running_stage(stage_timings(manifest), manifest, now)
    row = table.set_index("stage").loc["06_evaluate"]
    assert row["status"] == "this stage (until the report)" and row["seconds"] == 42.0
    assert table.iloc[-1]["seconds"] == 52.0 and "running" not in table["status"].tolist()
    # a re-run of 06: the manifest still says ok with the old time, but it started after it finished
    manifest["stages"]["06_evaluate"].update(status="ok", seconds=100.0, finished="2025-12-31T23:00:00+00:00")
    table = report.fill_running_stage(stage_timings(manifest), manifest, now)
    assert (
        table.set_index("stage").loc["06_evaluate", "seconds"] == 42.0 and table.iloc[-1]["seconds"] == 52.0
    )


def test_tables_may_be_stylers_dicts_or_none():
    frame = pd.DataFrame({"method": ["vpo"], "reward": [0.5]})
    page = report.render_report(
        "t", {}, {"styled": frame.style, "records": [{"method": "raw", "n": 2}], "none": None}, {}, []
    )
    assert page.count("<table>") == 2 and "<td>raw</td>" in page and "none: nothing to show" in page


# ---- stage 06 pieces -------------------------------------------------------------------------------------


def _stage06_tables():
    from vpolib import analysis

    judged = [
        {"id": f"q{i}", "method": m, "harmful": i == 1, "refusal": False,
         "passed": {"harmless": True, "aligned": m == "vpo" or i == 0, "helpful": True}}
        for i in range(2) for m in ("raw", "sft", "vpo")
    ]  # fmt: skip
    videos = [
        {"id": f"s{i}", "method": m, "score": s, "max_score": 2.0, "answers": {"c": s > 0, "m": s > 1},
         "kinds": {"c": "colour", "m": "motion"}, "prompt": f"{m} {i}", "gif": f"{m}_{i}.gif",
         "key": f"{m}|s{i}"}
        for i, row in enumerate([(0.0, 1.0, 2.0), (1.0, 1.0, 1.0)]) for m, s in zip(("raw", "sft", "vpo"), row, strict=True)
    ]  # fmt: skip
    text = analysis.text_results(analysis.text_frame(judged), "vpo", n_boot=50)
    return text, analysis.video_results(videos, "vpo", n_boot=50), videos


def test_stage06_figures_are_written(tmp_path):
    text, video, _ = _stage06_tables()
    wins = pd.concat([text["win_rates"].assign(metric="text"), video["win_rates"].assign(metric="video")])
    figs = [
        *evaluation.text_figures(text),
        *evaluation.video_figures(video).values(),
        evaluation.wins_figure(wins, "vpo"),
    ]
    assert len(figs) == 5 and evaluation.video_figures({"overall": pd.DataFrame()}) == {}
    for i, fig in enumerate(figs):
        fig.savefig(tmp_path / f"{i}.png")
        plt.close(fig)
        assert (tmp_path / f"{i}.png").stat().st_size > 0


def test_gallery_picks_the_largest_gain_and_loss():
    _, video, records = _stage06_tables()
    queries = {"s0": "red ball", "s1": "blue box"}
    entries = evaluation.reward_gallery(records, video["frame"], ["raw", "vpo"], queries, "vpo", size=2)
    # vpo - raw: s0 gains 1.0, s1 gains 0: s0 first (most gained), then s1 (least)
    assert [e["id"] for e in entries] == ["s0", "s1"] and entries[0]["query"] == "red ball"
    assert [(i["method"], i["reward"]) for i in entries[0]["items"]] == [("raw", 0.0), ("vpo", 1.0)]
    assert evaluation.reward_gallery([], video["frame"], ["raw"], queries, "vpo", 2) == []


def test_results_json_and_stage_metrics():
    text, video, _ = _stage06_tables()
    timings = pd.DataFrame(
        {"stage": ["01_data", "06_evaluate", "total (finished stages)"], "seconds": [9.0, None, 9.0]}
    )
    real = [{"id": "q0", "flags": []}, {"id": "q1", "flags": ["harmful"]}]
    run = {"profile": "smoke", "manifest": {"run_id": "r1"}, "seed": 0, "judge": "rule", "target": "vpo",
           "video_backend": "shapesworld", "has_video": True, "n_heldout": 9, "real": real, "n_video": 2}  # fmt: skip
    counts = {"judge": {"judged": 6}, "video": {"rendered": 6}}
    results = results_json(run, text, video, timings, counts=counts, notes=["n1"], beyond={})
    assert results["n"] == {
        "heldout": 9,
        "text_queries": 2,
        "harmful_queries": 1,
        "video_queries": 2,
        "video_seeds": 1,
    }
    assert results["methods"] == {"text": ["raw", "sft", "vpo"], "video": ["raw", "sft", "vpo"]}
    assert results["timings"] == {
        "stages": {"01_data": 9.0, "06_evaluate": None},
        "total_finished_seconds": 9.0,
    }
    assert "NaN" not in json.dumps(results["timings"])  # the running stage: null, valid JSON
    assert [r["baseline"] for r in results["video"]["sft_over_raw"]] == ["raw"]
    assert results["counts"] == counts and results["notes"] == ["n1"] and results["beyond"] == {}
    m = stage_metrics(results, text, video, n_notes=1)
    assert m["aligned_pct"] == {"raw": 50.0, "sft": 50.0, "vpo": 100.0}  # q1 fails Aligned but for vpo
    assert m["reward"] == {
        "raw": 0.25,
        "sft": 0.5,
        "vpo": 0.75,
    }  # (0 + 0.5) / 2, (0.5 + 0.5) / 2, (1 + 0.5) / 2
    assert (m["n_text_queries"], m["n_video_queries"], m["n_notes"]) == (2, 2, 1)


def test_gallery_shows_the_mean_over_seeds_beside_the_video():
    _, _, records = _stage06_tables()
    extra = {**records[2], "key": "vpo|s0#1", "seed": 1, "score": 1.0, "gif": None}  # vpo s0: 2/2 and 1/2
    from vpolib import analysis

    frame = analysis.video_frame([*records, extra])
    entries = evaluation.reward_gallery(
        [*records, extra], frame, ["raw", "vpo"], {"s0": "a", "s1": "b"}, "vpo", size=2
    )
    vpo = entries[0]["items"][1]
    assert (vpo["method"], vpo["reward"], vpo["video_reward"]) == ("vpo", 0.75, 1.0)
    assert "mean over seeds; this video 1.00" in report._card(vpo)


def test_side_by_side_shows_the_first_changed_queries(tmp_path):
    from vpolib.video import save_video

    gif = save_video(np.zeros((2, 4, 4, 3), dtype=np.uint8), tmp_path / "v.gif")
    recs = [
        {
            "key": f"{m}|s{i}",
            "id": f"s{i}",
            "method": m,
            "prompt": p,
            "score": sc,
            "max_score": 2.0,
            "gif": str(gif),
        }
        for i, (sft, vpo) in enumerate([("same", "same"), ("red ball", "a red circle <moves>"), ("x", "y")])
        for m, p, sc in (("sft", sft, 1.0), ("vpo", vpo, 2.0))
    ]
    assert evaluation.changed_pairs(recs, "sft", "vpo", n=5) == ["s1", "s2"]  # s0: the same prompt
    assert evaluation.changed_pairs(recs, "sft", "vpo", n=1) == ["s1"]
    frame = pd.DataFrame({"id": ["s1", "s1"], "method": ["sft", "vpo"], "reward": [0.25, 0.75]})
    page = evaluation.side_by_side(recs, frame, {"s1": "red ball", "s2": "x"}, "sft", "vpo", n=1)
    assert page.count("data:image/gif;base64,") == 2 and "s2" not in page
    assert "a red circle &lt;moves&gt;" in page  # escaped
    assert "reward 1.00, mean over seeds 0.75" in page and "reward 0.50, mean over seeds 0.25" in page
    assert "No held-out query" in evaluation.side_by_side(recs[:2], frame, {}, "sft", "vpo")


def test_results_json_with_changed_prompts_and_sampled_decoding():
    from vpolib import analysis

    text, video, _ = _stage06_tables()
    prompts = {
        "sft": {"q0": "a", "q1": "b", "s0": "c", "s1": "d"},
        "vpo": {"q0": "a", "q1": "B", "s0": "c", "s1": "d"},
    }
    text["changed_vs_sft"] = analysis.changed_vs(prompts, ["q0", "q1"], "sft", ["sft", "vpo"])
    video["changed_vs_sft"] = analysis.changed_vs(prompts, ["s0", "s1"], "sft", ["sft", "vpo"])
    s_records = [
        {"id": f"s{i}", "method": f"{m}@0", "score": sc, "max_score": 2.0, "answers": {}}
        for i in range(2)
        for m, sc in (("sft", 1.0), ("vpo", 2.0))
    ]
    sampled = analysis.sampled_results(s_records, video["frame"], "vpo", "sft", n_boot=20)
    video["sampled"] = {"samples": 1, "temperature": 0.7, "seeds": 1, **sampled}
    timings = pd.DataFrame({"stage": ["total (finished stages)"], "seconds": [1.0]})
    run = {"profile": "smoke", "manifest": {}, "seed": 0, "judge": "rule", "target": "vpo",
           "video_backend": "shapesworld", "has_video": True, "n_heldout": 4, "real": [], "n_video": 2}  # fmt: skip
    counts = {"judge": {}, "video": {}, "sampled": {"rendered": 4}}
    results = results_json(run, text, video, timings, counts=counts)
    assert results["text"]["changed_vs_sft"] == [
        {"method": "vpo", "base": "sft", "n": 2, "changed": 1, "share": 0.5}
    ]
    assert results["video"]["changed_vs_sft"][0]["share"] == 0.0 and results["n"]["video_seeds"] == 1
    s = results["video"]["sampled"]
    assert (s["samples"], s["temperature"], s["seeds"]) == (1, 0.7, 1) and "frame" not in s
    rewards = {(r["method"], r["decoding"]): r["reward"] for r in s["overall"]}
    assert rewards == {
        ("vpo", "greedy"): 0.75,
        ("sft", "greedy"): 0.5,
        ("vpo", "sampled"): 1.0,
        ("sft", "sampled"): 0.5,
    }
    assert [(r["decoding"], r["win_rate"]) for r in s["win_rates"]] == [("greedy", 0.75), ("sampled", 1.0)]
    m = stage_metrics(results, text, video, n_notes=0)
    assert m["changed_vs_sft"] == {"vpo": 0.0} and m["sampled_reward"]["vpo/sampled"] == 1.0
    assert m["sampled"] == {"rendered": 4}
    json.dumps(results)  # JSON-ready
