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
from peft import LoraConfig, PeftModel
from transformers import Trainer
from trl import DPOConfig, DPOTrainer, GRPOConfig, GRPOTrainer, SFTConfig, SFTTrainer
from trl.trainer.utils import FusedCausalLMOutput

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

LAUNCHERS = ("inprocess", "accelerate")


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
    """SFTTrainer whose loss is the model's own (full logits, then cross-entropy), for training on a CPU.

    TRL 1.16 computes the SFT loss through a chunked "fused LM head" that never holds the logits: on a GPU it saves
    memory and scores only the completion tokens; on a CPU it scores every position (prompt and padding too) in
    float32 tiles: 9.2 s a step against 6.6 s through the logits (the cpu profile's SFT rows, batch 8, Intel Xeon with
    amx_bf16; scripts/bench_sft_loss.py). A CPU has the memory for the logits ([8, <= 384, 49152] here). The loss
    is the same up to the logits' rounding; token accuracy on the completion tokens and tokens seen are logged as
    TRL does, the entropy is not (a softmax over the vocabulary at every step, ~1.5 s of a 7 s step here)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.aux_loss_enabled:  # MoE router losses: TRL's own path
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mode = "train" if self.model.training else "eval"
        inputs["use_cache"] = False
        labels = inputs["labels"][:, 1:]  # [B, T-1] next-token targets, -100 off the completion
        loss, outputs = Trainer.compute_loss(self, model, inputs, True, num_items_in_batch)
        with torch.no_grad():
            mask = labels != -100  # [B, T-1]
            top1 = outputs.logits[:, :-1].argmax(-1)  # [B, T-1]
            n = max(int(mask.sum()), 1)
            self._metrics[mode]["mean_token_accuracy"].append((top1 == labels)[mask].sum().item() / n)
        if mode == "train":
            self._total_train_tokens += int(inputs["attention_mask"].sum())
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return (loss, outputs) if return_outputs else loss


def shared_prompt_rows(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, answer_mask: torch.Tensor
) -> dict:
    """Pack a batch of ``prompt + answer`` rows into one row per distinct prompt: the prompt once, then each of its
    answers.

    TRL's preference and RL trainers batch R padded rows, each a prompt then an answer (DPO: ``[chosen_1..B,
    rejected_1..B]``, the two rows of a pair with one prompt; GRPO: ``num_generations`` samples of each prompt).
    A row's prompt is its attended tokens before the answer (``answer_mask``). Packed, each answer takes the
    positions it has after the prompt (``position_ids``) and attends to the prompt and to itself, never to another
    answer, so each answer token sees what it sees in its own row. Returns the packed ``input_ids`` [G, S],
    ``position_ids`` [G, S], a boolean ``attention_mask`` [G, 1, S, S] (True: attend), and per answer token (N of
    them): ``src`` (packed row, position of the hidden state that predicts it), ``labels`` [N] and ``dst`` (row,
    position in the next-token layout [R, T-1] of TRL's fused LM head)."""
    groups: dict[tuple, list[int]] = {}  # prompt tokens -> its rows, in batch order
    spans = []
    for row in range(input_ids.size(0)):
        cols = attention_mask[row].nonzero().flatten()  # [L] attended columns
        is_answer = answer_mask[row, cols].bool()
        p = int((~is_answer).sum())
        if p < 1 or bool(is_answer[:p].any()):
            raise ValueError(f"row {row} of the batch is not prompt + answer (prompt length {p})")
        spans.append((cols[:p], cols[p:]))
        groups.setdefault(tuple(input_ids[row, cols[:p]].tolist()), []).append(row)
    packed, positions, regions, src_row, src_pos, labels, dst_row, dst_pos = [], [], [], [], [], [], [], []
    for g, rows in enumerate(groups.values()):
        prompt_cols = spans[rows[0]][0]
        p = len(prompt_cols)
        ids, pos, region = (
            [input_ids[rows[0], prompt_cols]],
            [torch.arange(p)],
            [torch.zeros(p, dtype=torch.long)],
        )
        at = p  # packed position of the next answer's first token
        for k, row in enumerate(rows, 1):
            cols = spans[row][1]  # the answer's columns in its own row
            n = len(cols)
            ids.append(input_ids[row, cols])
            pos.append(torch.arange(p, p + n))
            region.append(torch.full((n,), k))  # answer k of the group
            # the first answer token is predicted from the prompt's last state, the others from their predecessor
            src_pos.append(torch.cat([torch.tensor([p - 1]), torch.arange(at, at + n - 1)]))
            src_row += [g] * n
            labels.append(input_ids[row, cols])
            dst_row += [row] * n
            dst_pos.append(cols - 1)
            at += n
        packed.append(torch.cat(ids))
        positions.append(torch.cat(pos))
        regions.append(torch.cat(region))
    width = max(len(x) for x in packed)
    pad = lambda xs, v: torch.stack([torch.nn.functional.pad(x, (0, width - len(x)), value=v) for x in xs])  # noqa: E731
    region = pad(regions, -1)  # [G, S]: 0 the prompt, k answer k, -1 padding
    q, k = region.unsqueeze(2), region.unsqueeze(1)  # [G, S, 1], [G, 1, S]
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    mask = causal & (k != -1) & ((k == 0) | (k == q))
    # a padding row attends to itself: no empty softmax
    mask |= torch.eye(width, dtype=torch.bool) & (q == -1)
    device = input_ids.device
    return {
        "input_ids": pad(packed, 0).to(device),
        "position_ids": pad(positions, 0).to(device),
        "attention_mask": mask.unsqueeze(1).to(device),
        "src": (torch.tensor(src_row, device=device), torch.cat(src_pos).to(device)),
        "labels": torch.cat(labels).to(device),
        "dst": (torch.tensor(dst_row, device=device), torch.cat(dst_pos).to(device)),
    }


class _SharedPromptForward:
    """Stands in for the model in TRL's DPO and GRPO losses: a ``fused_lm_head=True`` call runs the packed forward
    (:func:`shared_prompt_rows`) and returns the fused LM head's per-token fields in TRL's own [R, T-1] layout, so
    TRL's losses and metrics run unchanged; any other call goes to the model."""

    def __init__(self, model, weighting: bool = False, temperature: float = 1.0):
        self.model, self.weighting, self.temperature = model, weighting, temperature

    def __call__(self, fused_lm_head=False, labels=None, **kwargs):
        if not fused_lm_head:
            return self.model(**kwargs)
        input_ids = kwargs["input_ids"]  # [R, T]
        answer_mask = labels != -100  # TRL's labels: the input ids with everything but the answers at -100
        packed = shared_prompt_rows(input_ids, kwargs["attention_mask"], answer_mask)
        # the causal LM, its LoRA layers inside (calling the backbone skips the fused head TRL patched in)
        lm = self.model.get_base_model() if isinstance(self.model, PeftModel) else self.model
        hidden = lm.base_model(
            input_ids=packed["input_ids"],
            attention_mask=packed["attention_mask"],
            position_ids=packed["position_ids"],
            use_cache=False,
        ).last_hidden_state  # [G, S, H]
        head = lm.get_output_embeddings()
        logits = head(hidden[packed["src"]]).float() / self.temperature  # [N, V]: the answer tokens only
        logp = torch.log_softmax(logits, -1)  # [N, V]
        stats = {
            "log_probs": logp.gather(-1, packed["labels"].unsqueeze(-1)).squeeze(-1),  # [N]
            "entropy": -(logp.exp() * logp).sum(-1),  # with its gradient: GRPO's entropy_coef may train on it
        }
        with torch.no_grad():
            stats["mean_logits"] = logits.mean(-1)
            stats["is_top1"] = logits.argmax(-1) == packed["labels"]
            stats["log_sum_sq_probs"] = torch.logsumexp(2 * logp, -1) if self.weighting else None
        shape = (input_ids.size(0), input_ids.size(1) - 1)  # [R, T-1]: TRL's next-token layout
        placed = {
            name: None if v is None else v.new_zeros(shape).index_put(packed["dst"], v)
            for name, v in stats.items()
        }
        mask = answer_mask[:, 1:]
        return FusedCausalLMOutput(
            loss=-placed["log_probs"].sum() / mask.sum().clamp(min=1), **placed, label_mask=mask
        )


def _packable(trainer) -> bool:
    """Whether :class:`_SharedPromptForward` computes what TRL's fused head would: one process (the model is called
    unwrapped), no MoE routing loss, text only, logits neither scaled, soft-capped nor projected in fp32."""
    config = trainer.model.config.get_text_config()
    return (
        trainer.accelerator.num_processes == 1
        and not trainer.aux_loss_enabled
        and not getattr(trainer, "_is_vision_dataset", False)
        and not getattr(trainer.args, "cast_lm_head_to_fp32", False)
        and getattr(config, "final_logit_softcapping", None) is None
        and all(getattr(config, a, None) in (None, 1.0) for a in ("logit_scale", "logits_scaling"))
    )


class SharedPromptDPOTrainer(DPOTrainer):
    """DPOTrainer that runs each pair's prompt once, for training on a CPU.

    TRL runs a pair as two rows, prompt + chosen and prompt + rejected, and on a device without Triton its fused LM
    head scores every position (prompt and padding too). Here one row per prompt holds it once, then its answers
    (:func:`shared_prompt_rows`), and the LM head scores the answer tokens only: the same log-probs up to rounding
    (tests/test_dpo.py), in fewer tokens where the prompt is long (the cpu profile's: ~120 prompt tokens against
    ~25 an answer). TRL's own path runs where the packing does not apply (:func:`_packable`), with a reference
    forward in every step (TRL calls the model itself there) and with ``keep_end`` truncation."""

    def _shared_prompt(self) -> bool:
        return _packable(self) and self.precompute_ref_logps and self.args.truncation_mode == "keep_start"

    def _compute_loss(self, model, inputs, return_outputs):
        if self._shared_prompt():
            model = _SharedPromptForward(self.accelerator.unwrap_model(model), self.use_weighting)
        return super()._compute_loss(model, inputs, return_outputs)

    def compute_ref_log_probs(self, model, inputs):
        if self._shared_prompt():
            model = _SharedPromptForward(model)
        return super().compute_ref_log_probs(model, inputs)


class SharedPromptGRPOTrainer(GRPOTrainer):
    """GRPOTrainer that runs each prompt once for all of its sampled completions, for training on a CPU.

    TRL scores ``num_generations`` rows per prompt, each the prompt (left-padded) and one completion, through its
    fused LM head at every position. Here one row per prompt holds it once, then each completion
    (:func:`shared_prompt_rows`), and the LM head scores the completion tokens only: the same log-probs and
    entropies up to rounding (tests/test_rl.py). TRL's own path runs where the packing does not apply
    (:func:`_packable`) or a batch carries images."""

    def _get_per_token_logps_and_entropies(
        self, model, input_ids, attention_mask, logits_to_keep, *args, **kwargs
    ):
        knobs = ("batch_size", "compute_entropy", "compute_aux_loss")
        text_only = not args and all(v is None for k, v in kwargs.items() if k not in knobs)  # no images
        if _packable(self) and text_only and not kwargs.get("compute_aux_loss"):
            model = _SharedPromptForward(self.accelerator.unwrap_model(model), temperature=self.temperature)
        return super()._get_per_token_logps_and_entropies(
            model, input_ids, attention_mask, logits_to_keep, *args, **kwargs
        )


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
    ``trainer_cls`` picks one explicitly (scripts/bench_sft_loss.py times both)."""
    train_ds, eval_ds = _datasets(train, evaluation, SFT_COLUMNS)
    if trainer_cls is None:
        trainer_cls = LogitsSFTTrainer if _on_cpu(trainer) else SFTTrainer
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
