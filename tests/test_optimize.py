"""`python -m vpolib optimize` and `export` on the smoke run: prompts out, GIFs and rewards, data and a model
the ecosystem loads back, and one clear line for each kind of user mistake."""

import json

import datasets
import pytest
from transformers import AutoModelForCausalLM

from vpolib import optimize
from vpolib.export import export_run
from vpolib.export import main as export_main

pytestmark = pytest.mark.notebook


def run_cli(capsys, *argv):
    code = optimize.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_optimize_prints_one_json_line_per_query(smoke_stage, capsys):
    run_dir, _, _ = smoke_stage("05_dpo")
    code, rows, _ = run_cli(capsys, "--run", run_dir, "a red ball rolls left", "a dog surfing -neg sharks")
    assert code == 0 and [r["query"] for r in rows] == ["a red ball rolls left", "a dog surfing -neg sharks"]
    assert all(len(r["prompts"]) == 1 and r["model"].endswith("05_dpo/model") for r in rows)  # VPO first
    assert rows[0]["decoding"]["temperature"] == 0.0
    code, rows, _ = run_cli(
        capsys, "--run", run_dir, "--stage", "sft", "--samples", "3", "--temperature", "0.9", "a cat"
    )
    assert code == 0 and len(rows[0]["prompts"]) == 3 and rows[0]["model"].endswith("03_sft/model")


def test_optimize_render_writes_gifs_and_rewards(smoke_stage, capsys, tmp_path):
    run_dir, _, _ = smoke_stage("03_sft")
    code, rows, _ = run_cli(
        capsys, "--run", run_dir, "--target", "shapes", "--render", tmp_path, "a red circle moving up"
    )
    assert code == 0 and len(rows[0]["videos"]) == len(rows[0]["rewards"]) == 1
    assert (tmp_path / "query000_0.gif").stat().st_size > 0 and 0.0 <= rows[0]["rewards"][0] <= 1.0


def test_read_queries_from_a_file_and_stdin(tmp_path):
    text = tmp_path / "q.txt"
    text.write_text("a cat\n\n  \na dog\n")
    assert optimize.read_queries([], str(text)) == (["a cat", "a dog"], 2)  # blank lines: skipped, counted
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text('{"query": "a fox"}\n{"query": "a hen", "id": 2}\n')
    assert optimize.read_queries([], str(jsonl)) == (["a fox", "a hen"], 0)

    class Stdin:
        def read(self):
            return "one\ntwo\n"

    assert optimize.read_queries([], "-", Stdin()) == (["one", "two"], 0)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--run", "{missing}", "q"], "no such directory"),
        (["--model", "{run}/01_data", "q"], "not an optimizer dir"),
        (["--run", "{run}/01_data", "q"], "no trained optimizer in it"),
        (["--run", "{run}", ""], "query 1 is empty"),
        (["--run", "{run}", "--file", "{bad}"], "bad.jsonl:2: not a JSON object"),
        (["--run", "{run}", "--file", "{missing}"], "no such file"),
        (["--run", "{run}", "--samples", "2", "q"], "needs --temperature > 0"),
        (["--run", "{run}", "--render", "{tmp}", "q"], "add --target shapes"),
        (["--run", "{run}", "--target", "mars", "q"], "--target must be one of"),
        (["q"], "give one of --run"),
    ],
)
def test_user_mistakes_get_one_line(smoke_stage, capsys, tmp_path, argv, message):
    run_dir, _, _ = smoke_stage("03_sft")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "ok"}\nnot json\n')
    names = {"run": run_dir, "missing": tmp_path / "nope", "bad": bad, "tmp": tmp_path}
    code, rows, err = run_cli(capsys, *[a.format(**names) for a in argv])
    assert code == 2 and rows == [] and err.count("\n") == 1 and message in err and "Traceback" not in err


def test_export_loads_with_datasets_and_transformers(smoke_stage, capsys, tmp_path):
    run_dir, stage02, m02 = smoke_stage("02_refine")
    written = export_run(run_dir, tmp_path)
    sft = datasets.load_dataset("parquet", data_files=str(tmp_path / "sft/data/*.parquet"))["train"]
    assert len(sft) == m02["n_sft"] == written["sft"]["rows"]
    assert {"messages", "prompt", "query", "source"} <= set(sft.column_names)
    assert [t["role"] for t in sft[0]["messages"]] == ["user", "assistant"]  # TRL's conversational SFT format
    files = {s: str(tmp_path / f"pairs/data/{s}-*.parquet") for s in written["pairs"]}
    pairs = datasets.load_dataset("parquet", data_files=files)
    assert {"prompt", "chosen", "rejected"} <= set(pairs["merged"].column_names)
    assert len(pairs["merged"]) == len((run_dir / "04_feedback/pairs.jsonl").read_text().splitlines())
    assert "split: merged" in (tmp_path / "pairs/README.md").read_text()
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    assert model.num_parameters() > 0 and "Intended use" in (tmp_path / "model/README.md").read_text()
    assert json.loads((tmp_path / "model/optimizer.json").read_text())["instruction"] == "short"
    code, rows, _ = run_cli(capsys, "--model", tmp_path / "model", "a red ball")  # the export serves as it is
    assert code == 0 and rows[0]["prompts"][0] is not None
    assert export_main([str(tmp_path / "nope"), str(tmp_path / "x")]) == 2
