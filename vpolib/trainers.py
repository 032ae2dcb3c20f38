"""SFT, DPO and GRPO of the prompt optimizer with TRL: the trainers, training and saving, and launching a job.

Each TRL trainer is built by one plain call in its own function (:func:`build_sft_trainer`,
:func:`build_dpo_trainer`, :func:`build_grpo_trainer`), so an upstream API change is a fix in one visible place.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import datasets
import torch
from accelerate import PartialState
from peft import LoraConfig
from transformers import Trainer
from trl import DPOConfig, DPOTrainer, GRPOConfig, GRPOTrainer, SFTConfig, SFTTrainer

from vpolib.checkpoints import (
    TRAIN_INFO,
    adapter_chain,
    chain_record,
    dir_size,
    fingerprint,
    is_adapter_dir,
    load_merged,
    model_spec,
    save_optimizer,
    train_info,
)
from vpolib.examples import PAIR_COLUMNS, RL_COLUMNS, SFT_COLUMNS
from vpolib.io import write_json
from vpolib.models import load_tokenizer, resolve_spec
from vpolib.paths import REPO_ROOT
from vpolib.progress import StageProgressCallback
from vpolib.serve import free_port
from vpolib.shared_prompt import SharedPromptDPOTrainer, SharedPromptGRPOTrainer

LAUNCHERS = ("inprocess", "accelerate")
# SFT's attention on a CPU: transformers' own matmul + softmax. torch's flash-attention CPU kernel (sdpa's pick) cost
# ~0.9 s more a bf16 step (cpu profile: 4.57 against 5.45 s, AMD EPYC with avx512_bf16; fp32 on AVX2 kernels 8.23
# against 8.59: no loss), scripts/bench_attention.py. DPO and GRPO keep sdpa: their prompt-once rows pass a boolean
# 4D mask, which eager attention would add to the scores instead of applying.
CPU_SFT_ATTENTION = "eager"


def _lora(lora: dict | None):
    return LoraConfig(task_type="CAUSAL_LM", **lora) if lora is not None else None


def _datasets(train: list[dict], evaluation: list[dict], columns: tuple[str, ...]):
    """Datasets with only the trainer's ``columns`` (display fields such as ``query`` are dropped)."""

    def make(rows):
        return datasets.Dataset.from_list([{c: r[c] for c in columns} for r in rows]) if rows else None

    return make(train), make(evaluation)


def _on_cpu(trainer: dict) -> bool:
    """Whether a job with these trainer knobs trains on a CPU (where the CPU trainer classes are the default)."""
    return bool(trainer.get("use_cpu")) or not torch.cuda.is_available()


def _args(config_cls, trainer: dict, output_dir: str | os.PathLike, seed: int, has_eval: bool):
    """Profile trainer knobs over quiet defaults; the caller saves the model itself."""
    knobs = {"report_to": "none", "save_strategy": "no", "seed": seed, **trainer}
    if not has_eval:
        knobs["eval_strategy"] = "no"
    if knobs.get("precompute_ref_log_probs") and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # TRL caches the log-probs beside the dataset, for an in-memory one in each process's own temp dir:
        # rank 1 would not find rank 0's cache. A reference forward per step works under any launch.
        warnings.warn("precompute_ref_log_probs is off for this multi-process run", stacklevel=2)
        knobs["precompute_ref_log_probs"] = False
    return config_cls(output_dir=str(output_dir), **knobs)


class LogitsSFTTrainer(SFTTrainer):
    """SFTTrainer whose loss is the cross-entropy of the completion tokens' logits, for training on a CPU.

    TRL 1.16 computes the SFT loss through a chunked "fused LM head" that never holds the logits: on a GPU it saves
    memory and scores only the completion tokens; on a CPU it scores every position (prompt and padding too) in
    float32 tiles: 9.2 s a step against 6.6 s through the logits (the cpu profile's SFT rows, batch 8, Intel Xeon with
    amx_bf16; scripts/bench_sft_loss.py). Here the LM head runs only where a completion token is the target (the
    model's ``logits_to_keep`` mask): the prompt, ~70% of a cpu-profile row's tokens, never reaches the 49k-wide head
    and its softmax. The loss is the same up to rounding; token accuracy on the completion tokens and tokens seen
    are logged as TRL does, the entropy is not (a softmax over the vocabulary at every step)."""

    every_position = False  # True: the head scores every position, as before (scripts/bench_sft_loss.py)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.aux_loss_enabled or "labels" not in inputs:  # MoE router losses, a batch without labels
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mode = "train" if self.model.training else "eval"
        labels = inputs["labels"]  # [B, T], -100 off the completion
        keep = torch.zeros_like(labels, dtype=torch.bool)  # [B, T]: position t predicts token t + 1
        keep[:, :-1] = True if self.every_position else labels[:, 1:] != -100
        targets = labels[:, 1:][keep[:, :-1]]  # [N] completion tokens row by row (-100: not in the loss)
        # the model's own loss on the kept logits: ``shift_labels`` are their targets, ``labels`` switch it on
        kept = {**inputs, "use_cache": False, "logits_to_keep": keep, "shift_labels": targets}
        loss, outputs = Trainer.compute_loss(self, model, kept, True, num_items_in_batch)  # logits [N, V]
        with torch.no_grad():
            hits = (outputs.logits.argmax(-1) == targets).sum().item()
            self._metrics[mode]["mean_token_accuracy"].append(hits / max(int((targets != -100).sum()), 1))
        if mode == "train":
            self._total_train_tokens += int(inputs["attention_mask"].sum())
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return (loss, outputs) if return_outputs else loss


def build_sft_trainer(
    model,
    tokenizer,
    train: list[dict],
    evaluation: list[dict],
    trainer: dict,
    output_dir: str | os.PathLike,
    seed: int,
    lora: dict | None = None,
    trainer_cls: type[SFTTrainer] | None = None,
) -> SFTTrainer:
    """A TRL SFTTrainer on prompt/completion rows (loss on the completion only); LoRA when ``lora`` is set. Training
    on a CPU, the loss comes from the logits (:class:`LogitsSFTTrainer`), else from TRL's fused LM head;
    ``trainer_cls`` picks one explicitly (scripts/bench_sft_loss.py times both). On a CPU attention is eager
    (:data:`CPU_SFT_ATTENTION`) unless ``model_init_kwargs`` names one."""
    train_ds, eval_ds = _datasets(train, evaluation, SFT_COLUMNS)
    if trainer_cls is None:
        trainer_cls = LogitsSFTTrainer if _on_cpu(trainer) else SFTTrainer
    init = trainer.get("model_init_kwargs") or {}
    if _on_cpu(trainer) and "attn_implementation" not in init:  # a profile's explicit choice wins
        if isinstance(model, str):  # TRL loads it: after the training arguments exist (see _start_model)
            trainer = {**trainer, "model_init_kwargs": {**init, "attn_implementation": CPU_SFT_ATTENTION}}
        else:
            model.set_attn_implementation(CPU_SFT_ATTENTION)
    return trainer_cls(
        model=model,
        args=_args(SFTConfig, trainer, output_dir, seed, eval_ds is not None),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=_lora(lora),
        callbacks=[StageProgressCallback("SFT steps")],
    )


def build_dpo_trainer(
    model,
    tokenizer,
    train: list[dict],
    evaluation: list[dict],
    trainer: dict,
    output_dir: str | os.PathLike,
    seed: int,
    lora: dict | None = None,
    trainer_cls: type[DPOTrainer] | None = None,
) -> DPOTrainer:
    """A TRL DPOTrainer on conversational pairs. The reference is the starting model: TRL reloads it
    from ``model.name_or_path`` (so load the SFT model from its saved dir), or, with LoRA, uses the
    same weights with the adapters disabled. Training on a CPU, each pair's prompt runs once
    (:class:`SharedPromptDPOTrainer`); ``trainer_cls`` picks one explicitly (scripts/bench_dpo_loss.py times both)."""
    train_ds, eval_ds = _datasets(train, evaluation, PAIR_COLUMNS)
    if trainer_cls is None:
        trainer_cls = SharedPromptDPOTrainer if _on_cpu(trainer) else DPOTrainer
    return trainer_cls(
        model=model,
        args=_args(DPOConfig, trainer, output_dir, seed, eval_ds is not None),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=_lora(lora),
        callbacks=[StageProgressCallback("DPO steps")],
    )


def build_grpo_trainer(
    model,
    tokenizer,
    train: list[dict],
    evaluation: list[dict],
    trainer: dict,
    output_dir: str | os.PathLike,
    seed: int,
    lora: dict | None = None,
    reward_funcs: list | None = None,
    trainer_cls: type[GRPOTrainer] | None = None,
) -> GRPOTrainer:
    """A TRL GRPOTrainer on prompt rows (``query`` and ``id`` go to the reward functions as columns): the policy
    samples ``num_generations`` completions per prompt and learns from their rewards relative to each other. With
    LoRA its KL reference (``beta`` > 0) is the starting model with the adapters disabled. Training on a CPU, each
    prompt runs once for its completions (:class:`SharedPromptGRPOTrainer`); ``trainer_cls`` picks one explicitly."""
    train_ds, eval_ds = _datasets(train, evaluation, RL_COLUMNS)
    if trainer_cls is None:
        trainer_cls = SharedPromptGRPOTrainer if _on_cpu(trainer) else GRPOTrainer
    return trainer_cls(
        model=model,
        reward_funcs=reward_funcs,
        args=_args(GRPOConfig, trainer, output_dir, seed, eval_ds is not None),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=_lora(lora),
        callbacks=[StageProgressCallback("GRPO steps")],
    )


# A launched job names its trainer by kind (a function cannot travel in the job file): ``python -m vpolib.train``.
BUILDERS = {"sft": build_sft_trainer, "dpo": build_dpo_trainer}


def _start_model(base: str | os.PathLike, lora: dict | None, out_dir: Path):
    """What the trainer starts from, and the chain a saved adapter must reload on.

    - a full model (spec or dir): its path, so TRL loads it itself after the training arguments exist
      (under DeepSpeed ZeRO-3 that is what partitions the weights while loading);
    - an adapter dir + LoRA: the chain merged in memory; the new adapter is trained on top of it and
      reloads on the same merge (TRL's DPO reference = this merge, adapters disabled);
    - an adapter dir + full fine-tune: TRL's DPO reloads its reference from the model's path, so the
      merge is written once to ``<out>_start`` (the one case a merged copy is needed on disk).
    """
    if not is_adapter_dir(base):
        return resolve_spec(str(base)), chain_record(model_spec(base), [], out_dir)
    chain_base, adapters = adapter_chain(base)
    start = chain_record(chain_base, adapters, out_dir)
    if lora is not None:
        return load_merged(base)[0], start
    merged = out_dir.with_name(out_dir.name + "_start")
    with PartialState().main_process_first():  # rank 0 writes it; the others wait, then read it
        if not (merged / "config.json").exists():
            model, tokenizer = load_merged(base)
            save_optimizer(model, tokenizer, merged)
    return str(merged), chain_record(model_spec(merged), [], out_dir)


def train_and_save(
    build_trainer,
    base: str | os.PathLike,
    train: list[dict],
    evaluation: list[dict],
    trainer: dict,
    lora: dict | None,
    out_dir: str | os.PathLike,
    seed: int,
    launcher: str = "inprocess",
    accelerate_config: str | os.PathLike | None = None,
    num_processes: int | None = None,
    key_extra: dict | None = None,
) -> dict:
    """Train from ``base`` with ``build_trainer`` (:func:`build_sft_trainer` / :func:`build_dpo_trainer`, or a
    GRPO builder with its reward bound) and save to ``out_dir`` (with LoRA: the adapter only); a model already
    there from the same inputs (and ``key_extra``: what else shapes it, e.g. a reward's settings) is reused.

    ``base`` is a model spec, a model dir or an adapter dir (e.g. the SFT adapter, merged in memory).
    ``launcher="accelerate"`` runs the same function in ``accelerate launch ... -m vpolib.train job``
    (``accelerate_config``, e.g. configs/accelerate/zero3.yaml) and streams its log here.

    Returns the train info: ``log_history``, ``steps``, ``train_s`` (measured wall time), ``trainable``
    parameters, ``start`` (the chain it reloads on), ``saved`` (adapter | full), ``size_bytes`` and
    ``reused``.
    """
    out_dir, base = Path(out_dir), model_spec(base)  # a relative dir and its absolute path are the same start
    key = fingerprint(base, train, evaluation, trainer, lora, seed, *([key_extra] if key_extra else []))
    info = train_info(out_dir, key)
    if info is not None:
        return {**info, "reused": True}
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher {launcher!r}: use one of {LAUNCHERS}")
    if launcher == "accelerate":
        kinds = {build: name for name, build in BUILDERS.items()}
        if build_trainer not in kinds:  # e.g. GRPO: its reward renders videos in this process
            raise ValueError("launcher accelerate runs SFT and DPO jobs only: use launcher inprocess")
        kind = kinds[build_trainer]
        job = {"kind": kind, "base": base, "train": train, "evaluation": evaluation, "trainer": trainer}
        job.update(lora=lora, out_dir=str(out_dir.resolve()), seed=seed)
        return _launch(job, out_dir, key, accelerate_config, num_processes)
    model, start = _start_model(base, lora, out_dir)
    tokenizer = load_tokenizer(str(base))
    built = build_trainer(
        model,
        tokenizer,
        train,
        evaluation,
        trainer,
        out_dir.with_name(out_dir.name + "_trainer"),
        seed,
        lora=lora,
    )
    t0 = time.perf_counter()
    built.train()
    train_s = round(time.perf_counter() - t0, 2)
    if built.is_world_process_zero() and out_dir.exists():
        shutil.rmtree(out_dir)  # an older model (e.g. full weights) must not linger beside a new adapter
    built.accelerator.wait_for_everyone()
    # Through the trainer: under ZeRO-3 it gathers the sharded weights (an unwrapped save_pretrained
    # writes empty partitions); with PEFT it writes the adapter only; only rank 0 writes.
    built.save_model(str(out_dir))
    info = {
        "fingerprint": key,
        "log_history": built.state.log_history,
        "steps": built.state.global_step,
        "train_s": train_s,
        "trainable": sum(p.numel() for p in built.model.parameters() if p.requires_grad),
        "start": start if lora is not None else None,
        "saved": "adapter" if lora is not None else "full",
        "num_processes": built.accelerator.num_processes,
    }
    if built.is_world_process_zero():
        trainer_dir = Path(built.args.output_dir)
        if trainer_dir.is_dir() and not any(trainer_dir.iterdir()):
            trainer_dir.rmdir()  # save_strategy "no" leaves it empty
        tokenizer.save_pretrained(out_dir)
        info["size_bytes"] = dir_size(out_dir)
        write_json(out_dir / TRAIN_INFO, info)  # last: its presence means the save finished
        if model == str(out_dir.with_name(out_dir.name + "_start")):
            shutil.rmtree(model, ignore_errors=True)  # the merged start was only needed for the reference
    built.accelerator.wait_for_everyone()
    return {**info, "reused": False}


def launch_args(stage_cfg) -> dict:
    """``train_and_save`` keywords from a stage's config (``cfg.sft`` / ``cfg.dpo``): how to launch it. A section
    without a launcher (``cfg.grpo``) trains in process."""
    return {
        "launcher": getattr(stage_cfg, "launcher", "inprocess"),
        "accelerate_config": getattr(stage_cfg, "accelerate_config", None),
        "num_processes": getattr(stage_cfg, "num_processes", None),
    }


def _launch(job: dict, out_dir: Path, key: str, accelerate_config, num_processes) -> dict:
    """Write the job (``vpolib.train.run_job``'s keywords), run ``accelerate launch -m vpolib.train job`` with
    the log streamed, and read the info it saved."""
    job_file = out_dir.with_name(out_dir.name + "_job.json")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    write_json(job_file, job)
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if accelerate_config:
        cmd += ["--config_file", str(Path(REPO_ROOT, accelerate_config))]
    if num_processes:
        cmd += ["--num_processes", str(num_processes)]
    cmd += ["--main_process_port", str(free_port())]  # concurrent jobs on one machine must not share a port
    cmd += ["-m", "vpolib.train", "job", str(job_file.resolve())]
    print("$", " ".join(cmd), flush=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO_ROOT
    ) as proc:  # accelerate configs name repo-relative files
        for line in proc.stdout:  # stream: the notebook (or terminal) shows the job's log as it runs
            print(line, end="", flush=True)
    if proc.returncode != 0:
        raise RuntimeError(f"training job failed (exit {proc.returncode}): {' '.join(cmd)}")
    info = train_info(out_dir, key)
    if info is None:
        raise RuntimeError(f"training job exited 0 but wrote no {TRAIN_INFO} in {out_dir}")
    return {**info, "reused": False}


def train_stage(
    build_trainer,
    base: str | os.PathLike,
    train: list[dict],
    evaluation: list[dict],
    stage_cfg,
    out_dir: str | os.PathLike,
    seed: int,
    stale: tuple[str | os.PathLike, ...] = (),
    key_extra: dict | None = None,
) -> dict:
    """:func:`train_and_save` with a stage's section (``sft``, ``dpo`` or ``grpo``: ``trainer``, ``lora`` when
    ``use_lora``, the launcher); files in ``stale`` (prompts an older model wrote) are removed when the model is
    retrained.
    TRL's per-step dataset preparation bars are turned off: in a notebook they would flood the output."""
    datasets.disable_progress_bars()
    lora = stage_cfg.lora if stage_cfg.use_lora else None
    info = train_and_save(
        build_trainer,
        base,
        train,
        evaluation,
        stage_cfg.trainer,
        lora,
        out_dir,
        seed,
        key_extra=key_extra,
        **launch_args(stage_cfg),
    )
    if not info["reused"]:
        for path in stale:
            Path(path).unlink(missing_ok=True)
    return info
