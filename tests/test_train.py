"""The training entry point under a real `accelerate launch` with 2 processes (DDP over gloo on CPU):
the notebooks' train_and_save launching it, and `python -m vpolib.train sft|dpo --run-dir` on a run dir."""

import json
import subprocess
import sys

from accelerate.commands.config.config_args import load_config_from_file
from tiny_records import CPU, pair, sft_record
from tiny_records import QUERIES as TINY_QUERIES

from vpolib.checkpoints import load_optimizer
from vpolib.config import load_config
from vpolib.examples import PAIR_FILES, sft_examples, variant_split
from vpolib.generation import generate_prompts
from vpolib.io import write_jsonl
from vpolib.paths import REPO_ROOT
from vpolib.train import dpo_job
from vpolib.trainers import build_sft_trainer, launch_args, train_and_save

QUERIES = [*TINY_QUERIES, "a horse in the snow", "rain on a window"]  # 8: two steps' worth on two ranks
DDP = "configs/accelerate/cpu_ddp.yaml"


def test_train_and_save_launches_two_ddp_processes_and_the_adapter_reloads(tiny_dir, tmp_path, capsys):
    rows, _ = sft_examples([sft_record(q) for q in QUERIES])
    knobs = {**CPU, "per_device_train_batch_size": 2, "max_steps": 3, "learning_rate": 1e-2}
    lora = {"r": 8, "lora_alpha": 16, "target_modules": "all-linear"}

    def launch() -> dict:
        return train_and_save(
            build_sft_trainer, tiny_dir, rows, [], knobs, lora, tmp_path / "m", 0,
            launcher="accelerate", accelerate_config=DDP,
        )  # fmt: skip

    info = launch()
    assert info["num_processes"] == 2 and info["steps"] == 3 and info["saved"] == "adapter"
    # 8 examples, 2 per device x 2 ranks: each step sees 4, so 3 steps are 1.5 epochs (1 rank: 0.75)
    assert [e["epoch"] for e in info["log_history"] if "loss" in e] == [0.5, 1.0, 1.5]
    assert "accelerate.commands.launch" in capsys.readouterr().out  # the job's log is streamed here
    model, tok = load_optimizer(tmp_path / "m")
    out = generate_prompts(model, tok, QUERIES[:2], n=1, temperature=0.0, max_new_tokens=6)
    assert len(out) == 2 and all(isinstance(o[0], str) for o in out)
    assert launch()["reused"]  # nothing launched for a model already trained on the same inputs


def test_cli_sft_then_dpo_on_a_run_dir_under_accelerate_launch(tmp_path):
    """Smoke profile: full SFT of the tiny Llama, then LoRA DPO on it, each as `accelerate launch -m vpolib.train`."""
    run = tmp_path / "run"
    write_jsonl(run / "02_refine" / "sft.jsonl", [sft_record(q) for q in QUERIES])
    write_jsonl(run / "04_feedback" / "pairs.jsonl", [pair(q) for q in QUERIES])
    env_cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(REPO_ROOT / DDP),
        "--main_process_port",
        "0",
        "-m",
        "vpolib.train",
    ]
    for kind in ("sft", "dpo"):
        res = subprocess.run(
            env_cmd
            + [kind, "--run-dir", str(run), "--profile", "smoke", "--set", "seed=3", "--set", "dpo.rounds=1"],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            timeout=300,
        )
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    sft_info = json.loads((run / "03_sft" / "model" / "train_info.json").read_text())
    dpo_info = json.loads((run / "05_dpo" / "model" / "train_info.json").read_text())
    cfg = load_config("smoke")
    assert sft_info["saved"] == "full" and sft_info["num_processes"] == 2
    assert (
        sft_info["steps"] == cfg.sft.trainer["max_steps"]
        and dpo_info["steps"] == cfg.dpo.trainer["max_steps"]
    )
    assert dpo_info["saved"] == "adapter" and dpo_info["start"]["base"] == str(
        (run / "03_sft" / "model").resolve()
    )
    model, tok = load_optimizer(run / "05_dpo" / "model")
    assert len(generate_prompts(model, tok, QUERIES[:2], n=2, max_new_tokens=6)) == 2


def test_dpo_job_trains_each_pair_set_on_what_notebook_05_reads(tmp_path):
    """One code path: the CLI's DPO job and notebook 05 (examples.variant_split) read the same pairs per set."""
    run = tmp_path / "run"
    for name in ("pairs", "text_pairs", "video_pairs", "paper_pairs"):
        source = "video" if name == "video_pairs" else "text"
        write_jsonl(run / "04_feedback" / f"{name}.jsonl", [{**pair(q), "source": source} for q in QUERIES])
    cfg = load_config("smoke", {"dpo": {"rounds": 2}})
    for name in PAIR_FILES:
        job = dpo_job(cfg, run, name)
        train, evaluation, _ = variant_split(run / "04_feedback", name, cfg.dpo, cfg.seed)
        assert (job["train"], job["evaluation"]) == (train, evaluation) and train
    assert dpo_job(cfg, run)["out_dir"].endswith(
        "model_r1"
    )  # round 1 of 2: later rounds sample in notebook 05
    assert dpo_job(cfg, run, "paper")["out_dir"].endswith("model_paper")


def test_launch_args_follow_the_profile():
    assert launch_args(load_config("cpu").sft) == {
        "launcher": "inprocess",
        "accelerate_config": "configs/accelerate/cpu.yaml",
        "num_processes": None,
    }
    full = load_config("full")
    assert launch_args(full.dpo)["launcher"] == "accelerate"
    assert launch_args(full.sft)["accelerate_config"] == "configs/accelerate/zero3.yaml"


def test_shipped_accelerate_configs_parse_and_zero3_gathers_weights_on_save():
    """accelerate's own loader reads every shipped config; ZeRO-3 is the reference's ds_z3_config.json."""
    configs = {
        p.stem: load_config_from_file(str(p)) for p in (REPO_ROOT / "configs/accelerate").glob("*.yaml")
    }
    assert {"cpu", "cpu_ddp", "zero3"} <= set(configs)
    assert configs["cpu"].num_processes == 1 and configs["cpu_ddp"].num_processes == 2
    z3 = configs["zero3"]
    assert z3.distributed_type.value == "DEEPSPEED" and z3.num_processes == 8
    ds = json.loads((REPO_ROOT / z3.deepspeed_config["deepspeed_config_file"]).read_text())
    assert ds["zero_optimization"]["stage"] == 3
    assert ds["zero_optimization"][
        "stage3_gather_16bit_weights_on_model_save"
    ]  # save_model writes whole weights
    assert ds["bf16"]["enabled"] == "auto"  # from the trainer's bf16 (the full profile sets it)
    full = load_config("full")
    assert full.sft.trainer["bf16"] and full.sft.trainer["per_device_train_batch_size"] == 2
    assert (
        full.sft.trainer["gradient_accumulation_steps"] == 1
    )  # reference: 2 per GPU x 8 GPUs, no accumulation
