"""The README's results section is exactly what scripts/results_table.py writes from the committed files."""

import subprocess
import sys

from vpolib.paths import REPO_ROOT


def test_readme_results_are_generated_from_the_committed_files():
    assert (REPO_ROOT / "docs/results/cpu/results.json").exists()
    res = subprocess.run(
        [sys.executable, "scripts/results_table.py", "--check"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr


def _script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("results_table", REPO_ROOT / "scripts/results_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_evaluation_lines_need_no_new_keys():
    """Results files from before issue 24 (no changed_vs_sft, no sampled decoding) give no extra line."""
    table = _script()
    assert table.evaluation_lines({"text": {}, "video": {}}) == []
    res = {
        "text": {"changed_vs_sft": [{"method": "vpo", "n": 4, "changed": 1, "share": 0.25}]},
        "video": {
            "changed_vs_sft": [{"method": "vpo", "n": 10, "changed": 5, "share": 0.5}],
            "sampled": {
                "samples": 3,
                "temperature": 0.7,
                "seeds": 3,
                "overall": [
                    {
                        "method": m,
                        "decoding": "sampled",
                        "reward": r,
                        "reward_lo": r - 0.1,
                        "reward_hi": r + 0.1,
                    }
                    for m, r in (("sft", 0.5), ("vpo", 0.6))
                ],
                "win_rates": [{"decoding": "sampled", "win_rate": 0.7, "lo": 0.55, "hi": 0.85, "n": 10}],
            },
        },
    }
    changed, sampled = table.evaluation_lines(res)
    assert changed == "- Held-out prompts of **VPO** that differ from SFT's: text 25% of 4, video 50% of 10."
    assert "VPO 0.600 [0.500, 0.700] vs SFT 0.500 [0.400, 0.600]" in sampled
    assert "0.70 [0.55, 0.85] (n=10): the CI lies **above 0.5**" in sampled


def test_paradigm_lines_name_the_row_with_most_reward_per_video():
    table = _script()
    assert table.paradigm_lines({}) == []
    row = {
        "tokens": 0,
        "steps": 0,
        "seconds": 1.0,
        "reward_lo": 0.0,
        "reward_hi": 1.0,
        "win_lo": 0.0,
        "win_hi": 1.0,
    }
    rows = [
        {**row, "paradigm": "sft", "reward": 0.5, "videos": 0, "win_rate": None, "gain_per_1k_videos": None},
        {
            **row,
            "paradigm": "sft-best4",
            "reward": 0.6,
            "videos": 400,
            "win_rate": 0.6,
            "gain_per_1k_videos": 0.25,
        },
        {**row, "paradigm": "grpo", "reward": 0.7, "videos": 200, "win_rate": 0.7, "gain_per_1k_videos": 1.0},
    ]
    lines = table.paradigm_lines({"n_queries": 100, "eval_seeds": 3, "rows": rows})
    assert "| sft | 0.500 [0.000, 1.000] | - | 0 | 0 | 0 | 1 | - |" in lines
    assert lines[-1].startswith(
        "Most reward gained over SFT per video rendered: **grpo** (+1.000 per 1,000 videos"
    )
    rows[2] |= {"gain_per_1k_lo": -0.5, "gain_per_1k_hi": 2.5}
    lines = table.paradigm_lines({"n_queries": 100, "eval_seeds": 3, "rows": rows})
    assert (
        "**grpo** (+1.000 [-0.500, +2.500] per 1,000 videos, the CI includes 0: no gain over SFT shown;"
        in lines[-1]
    )


def test_timing_rows_name_the_profile_and_a_kernel_limit():
    """One row per recorded run, the cpu profile's first; a CPU whose torch ran on AVX2 kernels says so."""
    table = _script()
    zen4 = {
        "model": "AMD EPYC",
        "flags": ["avx2", "avx512_bf16"],
        "capability": "AVX512",
        "mkldnn_bf16": True,
    }
    held = {**zen4, "capability": "AVX2", "mkldnn_bf16": False}
    records = [
        {"run_id": "q", "profile": "quick", "created": "1", "cpu": held, "dtype": "float32",
         "seconds": {"01_data": 10.0, "02_refine": 20.4}},
        {"run_id": "c", "profile": "cpu", "created": "2", "cpu": zen4, "dtype": "bfloat16",
         "seconds": {"01_data": 12.0}},
    ]  # fmt: skip
    rows = table.processor_lines(records, "c")[-2:]
    assert rows == [
        "| AMD EPYC (avx512_bf16) | bfloat16 | cpu | c | 12 | - | 12 |",
        "| AMD EPYC (avx512_bf16; torch held to AVX2 kernels) | float32 | quick | q | 10 | 20 | 30 |",
    ]
    assert table.cpu_label({"model": "Intel Core", "flags": ["avx2"], "capability": "AVX2"}) == (
        "Intel Core (no native bf16)"
    )


def test_sft_throughput_by_hand(tmp_path):
    """SFT tokens a second and the model's FLOP/s as a share of the measured matmul rate, on a made-up run:
    1,000 tokens by logged step 10 of 20 -> 2,000 tokens in 100 s = 20 tokens/s; LoRA on 1e8 parameters ->
    4e8 FLOPs a token = 8 GFLOP/s; the bf16 probe took 2 x 512^3 / 1e11 s (100 GFLOP/s) -> a share of 0.08."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("record_timing", REPO_ROOT / "scripts/record_timing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "03_sft" / "model").mkdir(parents=True)
    info = {"log_history": [{"num_tokens": 500.0, "step": 5}, {"num_tokens": 1000.0, "step": 10}, {"train_loss": 1}],
            "steps": 20, "train_s": 100.0}  # fmt: skip
    (tmp_path / "03_sft" / "model" / "train_info.json").write_text(json.dumps(info))
    (tmp_path / "03_sft" / "metrics.json").write_text(json.dumps({"parameters": 1e8, "lora": True}))
    precision = {"dtype": "bfloat16", "timing": {"bfloat16_s": 2 * 512**3 / 1e11, "float32_s": 1.0}}
    got = module.sft_throughput(tmp_path, precision)
    assert got["tokens_per_s"] == 20.0 and got["model_gflops_per_s"] == 8.0
    assert got["matmul_gflops_per_s"] == 100.0 and got["share_of_matmul"] == 0.08
    assert (
        module.sft_throughput(tmp_path, {"dtype": "bfloat16"}) is None
    )  # no probe timing: nothing to compare
