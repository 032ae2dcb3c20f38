"""The prompt optimizer: chat data, SFT and DPO trainers (TRL), generation, saving and loading.

Trainers are built in one function each, so an upstream API change is a one-line fix here.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from itertools import zip_longest
from pathlib import Path

from vpolib.models import load_causal_lm
from vpolib.runs import write_json
from vpolib.templates import optimize_messages

PAIR_COLUMNS = ("prompt", "chosen", "rejected")
TRAIN_INFO = "train_info.json"
# dpo.pairs / dpo.ablations -> which pair sources a DPO model trains on (the paper's ablation rows).
PAIR_SETS = {"both": {"text", "video"}, "text": {"text"}, "video": {"video"}}
# ... and the file of stage 04 each reads: an ablation trains on ALL pairs of its kind (one per query), not on
# what the text-first merge left of them.
PAIR_FILES = {"both": "pairs.jsonl", "text": "text_pairs.jsonl", "video": "video_pairs.jsonl"}


# ---------------------------------------------------------------- data
def _is_chat(messages) -> bool:
    """A non-empty list of ``{"role": str, "content": non-blank str}`` turns."""
    return (
        isinstance(messages, list)
        and bool(messages)
        and all(
            isinstance(m, dict)
            and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str)
            and m["content"].strip()
            for m in messages
        )
    )


def sft_examples(records: list[dict]) -> tuple[list[dict], int]:
    """SFT records -> TRL conversational ``{"prompt", "completion", "query"}`` rows; returns ``(rows, skipped)``.

    Prompt/completion (rather than one ``messages`` list) lets TRL mask the prompt for any chat
    template, including ones without ``{% generation %}`` markers (Llama-3's). Records that are not
    a chat ending in an assistant turn are skipped.
    """
    rows, skipped = [], 0
    for rec in records:
        msgs = rec.get("messages")
        if not _is_chat(msgs) or len(msgs) < 2 or msgs[-1]["role"] != "assistant":
            skipped += 1
            continue
        rows.append({"prompt": msgs[:-1], "completion": msgs[-1:], "query": rec.get("query", "")})
    return rows, skipped


def pair_examples(records: list[dict], sources: set[str] | None = None) -> tuple[list[dict], int]:
    """Preference pairs -> ``{"prompt", "chosen", "rejected"}`` rows, keeping only ``sources`` if given.

    Returns ``(rows, skipped)``: pairs with a malformed or empty side, or identical sides, are skipped.
    """
    rows, skipped = [], 0
    for rec in records:
        if sources is not None and rec.get("source") not in sources:
            continue
        if not all(_is_chat(rec.get(k)) for k in PAIR_COLUMNS) or rec["chosen"] == rec["rejected"]:
            skipped += 1
            continue
        rows.append({k: rec[k] for k in PAIR_COLUMNS})
    return rows, skipped


def heldout_sample(records: list[dict], n: int | None) -> list[dict]:
    """Up to ``n`` held-out records, taking sources in turn (real and ShapesWorld queries both appear).

    Deterministic (file order within each source), so notebooks 03 and 05 prompt the same queries.
    """
    by_source: dict[str, list[dict]] = {}
    for rec in records:
        if str(rec.get("query") or "").strip():
            by_source.setdefault(rec.get("source", ""), []).append(rec)
    queues = [by_source[s] for s in sorted(by_source)]
    out = [rec for group in zip_longest(*queues) for rec in group if rec is not None]
    return out if n is None else out[:n]


def split(rows: list, eval_fraction: float, seed: int) -> tuple[list, list]:
    """Shuffle deterministically and hold out ``eval_fraction`` (at least one row when possible)."""
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    n_eval = min(max(1, round(len(rows) * eval_fraction)), len(rows) - 1) if eval_fraction > 0 else 0
    return rows[n_eval:], rows[:n_eval]


# ---------------------------------------------------------------- trainers
def _lora(lora: dict | None):
    from peft import LoraConfig

    return LoraConfig(task_type="CAUSAL_LM", **lora) if lora is not None else None


def _datasets(train: list[dict], evaluation: list[dict], columns: tuple[str, ...]):
    """Datasets with only the trainer's ``columns`` (display fields such as ``query`` are dropped)."""
    from datasets import Dataset

    def make(rows):
        return Dataset.from_list([{c: r[c] for c in columns} for r in rows]) if rows else None

    return make(train), make(evaluation)


def _args(config_cls, trainer: dict, output_dir: str | os.PathLike, seed: int, has_eval: bool):
    """Profile trainer knobs over quiet defaults; the caller saves the model itself."""
    knobs = {"report_to": "none", "save_strategy": "no", "seed": seed, **trainer}
    if not has_eval:
        knobs["eval_strategy"] = "no"
    return config_cls(output_dir=str(output_dir), **knobs)


def _trainer(
    trainer_cls,
    config_cls,
    columns,
    desc,
    model,
    tokenizer,
    train,
    evaluation,
    trainer,
    output_dir,
    seed,
    lora,
):
    """The one place a TRL trainer is built (an upstream rename is a one-line fix here)."""
    from vpolib.progress import StageProgressCallback

    train_ds, eval_ds = _datasets(train, evaluation, columns)
    return trainer_cls(
        model=model,
        args=_args(config_cls, trainer, output_dir, seed, eval_ds is not None),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=_lora(lora),
        callbacks=[StageProgressCallback(desc)],
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
):
    """A TRL SFTTrainer on prompt/completion rows (loss on the completion only); LoRA when ``lora`` is set."""
    from trl import SFTConfig, SFTTrainer

    cols = ("prompt", "completion")
    return _trainer(
        SFTTrainer,
        SFTConfig,
        cols,
        "SFT steps",
        model,
        tokenizer,
        train,
        evaluation,
        trainer,
        output_dir,
        seed,
        lora,
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
):
    """A TRL DPOTrainer on conversational pairs. The reference is the starting model: TRL reloads it
    from ``model.name_or_path`` (so load the SFT model from its saved dir), or, with LoRA, uses the
    same weights with the adapters disabled."""
    from trl import DPOConfig, DPOTrainer

    return _trainer(
        DPOTrainer,
        DPOConfig,
        PAIR_COLUMNS,
        "DPO steps",
        model,
        tokenizer,
        train,
        evaluation,
        trainer,
        output_dir,
        seed,
        lora,
    )


# ---------------------------------------------------------------- logs and failure signs
def log_frame(log_history: list[dict]):
    """Trainer log history -> one DataFrame row per logged step, with a ``split`` column (train/eval)."""
    import pandas as pd

    rows = []
    for entry in log_history:
        if "step" not in entry or "train_runtime" in entry:
            continue
        split_name = "eval" if any(k.startswith("eval_") for k in entry) else "train"
        rows.append({"split": split_name, **{k.removeprefix("eval_"): v for k, v in entry.items()}})
    return pd.DataFrame(rows)


def first_last(frame, column: str, split_name: str = "train") -> list[float] | None:
    """First and last logged value of ``column`` in one split of a :func:`log_frame` (None if never logged)."""
    if column not in frame:
        return None
    values = frame.loc[frame["split"] == split_name, column].dropna()
    return [float(values.iloc[0]), float(values.iloc[-1])] if len(values) else None


def plot_log(frame, columns: list[str], path: str | os.PathLike, title: str = ""):
    """One panel per logged metric over steps (train and eval as hue); saved to ``path`` and returned."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    columns = [c for c in columns if c in frame]
    fig, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3.2), squeeze=False)
    for ax, col in zip(axes[0], columns, strict=True):
        sns.lineplot(data=frame.dropna(subset=[col]), x="step", y=col, hue="split", marker="o", ax=ax)
        ax.set_title(col)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


def completion_logprob(model, tokenizer, prompt: list[dict], completion: list[dict]) -> float:
    """log p(completion | prompt) under ``model``: the sum over the completion's tokens, as DPO uses it."""
    import torch

    prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_dict=False)
    full_ids = tokenizer.apply_chat_template(prompt + completion, return_dict=False)
    ids = torch.tensor([full_ids])  # [1, T]
    with torch.inference_mode():
        logits = model(input_ids=ids).logits.float()  # [1, T, V]
    logp = torch.log_softmax(logits[0, :-1], dim=-1)  # [T-1, V]: position t predicts token t+1
    targets = ids[0, 1:]  # [T-1]
    per_token = logp.gather(1, targets[:, None])[:, 0]  # [T-1]
    return float(per_token[len(prompt_ids) - 1 :].sum())


def dpo_loss_by_hand(policy: dict, reference: dict, beta: float) -> dict:
    """The DPO loss of one pair from its four log-probabilities (``{"chosen", "rejected"}`` each):
    implicit rewards r = beta * (log pi - log pi_ref), loss = -log sigmoid(r_chosen - r_rejected)."""
    r_c = beta * (policy["chosen"] - reference["chosen"])
    r_r = beta * (policy["rejected"] - reference["rejected"])
    margin = r_c - r_r
    return {
        "reward_chosen": r_c,
        "reward_rejected": r_r,
        "margin": margin,
        "loss": math.log1p(math.exp(-margin)) if margin > -30 else -margin,
    }


def dpo_failure_signs(log_history: list[dict], tol: float = 1e-3) -> list[dict]:
    """The known DPO failure signs in a training log, each ``{"sign", "detail"}``:

    - ``nan_loss``: a logged loss is NaN or infinite (diverged);
    - ``chosen_and_rejected_falling``: the chosen reward drops together with the rejected one, i.e. the
      model lowers the likelihood of both answers and wins the margin by forgetting (a known DPO trap);
    - ``margin_not_increasing``: the reward margin ends no higher than it started.
    """
    train = [e for e in log_history if "loss" in e and "rewards/chosen" in e]
    signs = []
    bad = [e["step"] for e in log_history if "loss" in e and not math.isfinite(e["loss"])]
    if bad:
        signs.append({"sign": "nan_loss", "detail": f"non-finite loss at steps {bad[:5]}"})
    if len(train) >= 2:
        first, last = train[0], train[-1]
        d_chosen = last["rewards/chosen"] - first["rewards/chosen"]
        d_rejected = last["rewards/rejected"] - first["rewards/rejected"]
        if d_chosen < -tol and d_rejected < -tol:
            signs.append(
                {
                    "sign": "chosen_and_rejected_falling",
                    "detail": f"chosen reward {d_chosen:+.4f}, rejected {d_rejected:+.4f} over training",
                }
            )
        if last["rewards/margins"] - first["rewards/margins"] <= tol:
            signs.append(
                {
                    "sign": "margin_not_increasing",
                    "detail": f"margin {first['rewards/margins']:.4f} -> {last['rewards/margins']:.4f}",
                }
            )
    return signs


# ---------------------------------------------------------------- save, load, generate
def fingerprint(*parts) -> str:
    """A short hash of JSON-able inputs (config section, data): a saved model is reused only if it matches."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


ADAPTER_CONFIG = "adapter_config.json"  # PEFT writes it beside the adapter weights
LAUNCHERS = ("inprocess", "accelerate")


def dir_size(path: str | os.PathLike) -> int:
    """Bytes of every file under ``path`` (links not followed; 0 if it does not exist)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def is_adapter_dir(path: str | os.PathLike) -> bool:
    """True for a dir holding a PEFT adapter (not a full model)."""
    return (Path(path) / ADAPTER_CONFIG).exists()


def _spec(base: str | os.PathLike) -> str:
    """A model spec as recorded in train_info: local dirs absolute, names ("tiny-llama", hub ids) as given."""
    return str(Path(base).resolve()) if Path(base).exists() else str(base)


def adapter_chain(path: str | os.PathLike) -> tuple[str, list[Path]]:
    """``(base spec, adapter dirs in the order they are merged)`` of a saved optimizer dir.

    A full model dir is its own base with no adapters. An adapter dir records the chain it was trained
    on in train_info.json (``start``: base spec + earlier adapters, relative to the dir so a moved run
    dir still loads); without that record, PEFT's ``base_model_name_or_path`` is the base.
    """
    path = Path(path)
    if not is_adapter_dir(path):
        return str(path), []
    info_file = path / TRAIN_INFO
    start = json.loads(info_file.read_text()).get("start") if info_file.exists() else None
    if not start:
        return json.loads((path / ADAPTER_CONFIG).read_text())["base_model_name_or_path"], [path]
    base = start["base"]
    if (
        start.get("base_rel") and (path / start["base_rel"]).exists()
    ):  # a moved run dir: its own copy of the base
        base = str((path / start["base_rel"]).resolve())
    return base, [(path / a).resolve() for a in start["adapters"]] + [path]


def _chain_record(base: str, adapters: list[Path], out_dir: Path) -> dict:
    """train_info's ``start``: the base spec (and, for a local dir, its path relative to ``out_dir`` too,
    so a run dir moved with its SFT model inside still loads) and the earlier adapters, relative."""
    out_dir = out_dir.resolve()
    rel = os.path.relpath(base, out_dir) if Path(base).is_dir() else None
    return {"base": base, "base_rel": rel, "adapters": [os.path.relpath(a, out_dir) for a in adapters]}


def load_merged(path: str | os.PathLike, device: str | None = None, dtype: str | None = None):
    """``(model, tokenizer)``: the base of ``path``'s chain with every adapter merged in, in memory."""
    from vpolib.models import load_tokenizer

    base, adapters = adapter_chain(path)
    model, _ = load_causal_lm(base, device=device, dtype=dtype)
    if adapters:
        from peft import PeftModel

        for adapter in adapters:  # merge one at a time: each was trained on the merge of the ones before
            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return model, load_tokenizer(str(path))


def save_optimizer(model, tokenizer, path: str | os.PathLike, info: dict | None = None) -> Path:
    """Save a model dir loadable by :func:`load_optimizer`: a PeftModel as its adapter only (MBs, not
    the base's GBs), any other model in full.

    ``info`` (fingerprint, start chain, log history, timings) goes to ``train_info.json`` beside it,
    last, so a run killed while saving leaves no info and is retrained.
    """
    path = Path(path)
    model.save_pretrained(path)  # PeftModel.save_pretrained writes adapter_config.json + adapter weights
    tokenizer.save_pretrained(path)
    if info is not None:
        write_json(path / TRAIN_INFO, info)
    return path


def train_info(path: str | os.PathLike, expected_fingerprint: str) -> dict | None:
    """The saved ``info`` of a model dir if it was trained with ``expected_fingerprint`` (else None)."""
    file = Path(path) / TRAIN_INFO
    if not file.exists():
        return None
    info = json.loads(file.read_text())
    return info if info.get("fingerprint") == expected_fingerprint else None


def _start_model(base: str | os.PathLike, lora: dict | None, out_dir: Path):
    """What the trainer starts from, and the chain a saved adapter must reload on.

    - a full model (spec or dir): its path, so TRL loads it itself after the training arguments exist
      (under DeepSpeed ZeRO-3 that is what partitions the weights while loading);
    - an adapter dir + LoRA: the chain merged in memory; the new adapter is trained on top of it and
      reloads on the same merge (TRL's DPO reference = this merge, adapters disabled);
    - an adapter dir + full fine-tune: TRL's DPO reloads its reference from the model's path, so the
      merge is written once to ``<out>_start`` (the one case a merged copy is needed on disk).
    """
    from accelerate import PartialState

    from vpolib.models import resolve_spec

    if not is_adapter_dir(base):
        return resolve_spec(str(base)), _chain_record(_spec(base), [], out_dir)
    chain_base, adapters = adapter_chain(base)
    start = _chain_record(chain_base, adapters, out_dir)
    if lora is not None:
        return load_merged(base)[0], start
    merged = out_dir.with_name(out_dir.name + "_start")
    with PartialState().main_process_first():  # rank 0 writes it; the others wait, then read it
        if not (merged / "config.json").exists():
            model, tokenizer = load_merged(base)
            save_optimizer(model, tokenizer, merged)
    return str(merged), _chain_record(_spec(merged), [], out_dir)


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
) -> dict:
    """Train from ``base`` with ``build_trainer`` (:func:`build_sft_trainer` / :func:`build_dpo_trainer`)
    and save to ``out_dir`` (with LoRA: the adapter only); a model already there from the same inputs is
    reused instead.

    ``base`` is a model spec, a model dir or an adapter dir (e.g. the SFT adapter, merged in memory).
    ``launcher="accelerate"`` runs the same function in ``accelerate launch ... -m vpolib.train job``
    (``accelerate_config``, e.g. configs/accelerate/zero3.yaml) and streams its log here.

    Returns the train info: ``log_history``, ``steps``, ``train_s`` (measured wall time), ``trainable``
    parameters, ``start`` (the chain it reloads on), ``saved`` (adapter | full), ``size_bytes`` and
    ``reused``.
    """
    from vpolib.models import load_tokenizer

    out_dir, base = Path(out_dir), _spec(base)  # a relative dir and its absolute path are the same start
    key = fingerprint(base, train, evaluation, trainer, lora, seed)
    info = train_info(out_dir, key)
    if info is not None:
        return {**info, "reused": True}
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher {launcher!r}: use one of {LAUNCHERS}")
    if launcher == "accelerate":
        return _launch(
            build_trainer,
            base,
            train,
            evaluation,
            trainer,
            lora,
            out_dir,
            seed,
            key,
            accelerate_config,
            num_processes,
        )
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
    """``train_and_save`` keywords from a stage's config (``cfg.sft`` / ``cfg.dpo``): how to launch it."""
    return {
        "launcher": stage_cfg.launcher,
        "accelerate_config": stage_cfg.accelerate_config,
        "num_processes": stage_cfg.num_processes,
    }


def _launch(
    build_trainer,
    base,
    train,
    evaluation,
    trainer,
    lora,
    out_dir: Path,
    seed: int,
    key: str,
    accelerate_config,
    num_processes,
) -> dict:
    """Write the job, run ``accelerate launch -m vpolib.train job`` with the log streamed, read the info."""
    import subprocess
    import sys

    from vpolib.paths import REPO_ROOT

    kind = {"build_sft_trainer": "sft", "build_dpo_trainer": "dpo"}[build_trainer.__name__]
    job = out_dir.with_name(out_dir.name + "_job.json")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    write_json(
        job,
        {
            "kind": kind,
            "base": base,
            "train": train,
            "evaluation": evaluation,
            "trainer": trainer,
            "lora": lora,
            "out_dir": str(out_dir.resolve()),
            "seed": seed,
        },
    )
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if accelerate_config:
        cmd += ["--config_file", str(Path(REPO_ROOT, accelerate_config))]
    if num_processes:
        cmd += ["--num_processes", str(num_processes)]
    cmd += ["--main_process_port", str(_free_port())]  # concurrent jobs on one machine must not share a port
    cmd += ["-m", "vpolib.train", "job", str(job.resolve())]
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


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_optimizer(path: str | os.PathLike, device: str | None = None, dtype: str | None = None):
    """``(model, tokenizer)`` from a dir written by :func:`train_and_save` / :func:`save_optimizer`, in
    eval mode; an adapter dir is loaded on its recorded chain and merged in memory."""
    model, tokenizer = load_merged(path, device=device, dtype=dtype)
    return model.eval(), tokenizer


def batch_seed(seed: int, ids: list[str]) -> int:
    """The random seed of one generation batch, from the run seed and the batch's query ids (never from how
    far the random generator had got), so a resumed run samples exactly what an uninterrupted one would."""
    return int(fingerprint(seed, list(ids)), 16) % 2**31


def generate_prompts(
    model,
    tokenizer,
    queries: list[str],
    n: int = 4,
    temperature: float = 0.9,
    top_p: float = 0.9,
    max_new_tokens: int = 128,
    batch_size: int = 8,
    instruction: str = "paper",
    seed: int | None = None,
) -> list[list[str]]:
    """``n`` optimized prompts per query (``[len(queries)][n]``); greedy (n must be 1) at temperature 0.

    Each query is wrapped in VPO's optimization instruction (the SFT/DPO user turn). ``model`` is a causal
    LM (batched, left-padded HF generate) or, with ``tokenizer=None``, a text backend such as
    :class:`vpolib.backends.OpenAIBackend` in front of ``vllm serve`` (one request per query with ``n``
    choices). A failed request raises after the batch: callers that log per query id resume on rerun.
    With ``seed``, local sampling is seeded per batch of ``batch_size`` (see :func:`batch_seed`).
    """
    import torch

    from vpolib.backends import GenParams, chat_generate

    if temperature <= 0 and n != 1:
        raise ValueError("greedy decoding (temperature 0) gives one prompt per query: use n=1")
    params = GenParams(temperature=temperature, top_p=top_p, n=n, max_new_tokens=max_new_tokens)
    if tokenizer is not None:
        out = []
        for start in range(0, len(queries), batch_size):
            part = queries[start : start + batch_size]
            if seed is not None:
                torch.manual_seed(batch_seed(seed, part))
            out += chat_generate(
                model, tokenizer, [optimize_messages(q, instruction) for q in part], params, batch_size
            )
        return out
    out = model.generate([optimize_messages(q, instruction) for q in queries], params)
    failed = [q for q, texts in zip(queries, out, strict=True) if texts is None]
    if failed:
        errors = getattr(model, "errors", [])[-3:]
        raise RuntimeError(f"{len(failed)} of {len(queries)} requests failed (rerun resumes): {errors}")
    return out


def prompt_source(
    feedback_cfg, model_dir: str | os.PathLike, device: str | None = None, dtype: str | None = None
):
    """``(model, tokenizer)`` for :func:`generate_prompts`: 03's model loaded here (``feedback.sampler:
    local``), or ``(OpenAIBackend, None)`` for the server named by ``feedback.sampler_url`` (``openai``)."""
    if feedback_cfg.sampler == "local":
        return load_optimizer(model_dir, device=device, dtype=dtype)
    if feedback_cfg.sampler == "openai":
        from vpolib.backends import OpenAIBackend

        return OpenAIBackend(base_url=feedback_cfg.sampler_url, model=feedback_cfg.sampler_model), None
    raise ValueError(f"feedback.sampler must be local or openai, got {feedback_cfg.sampler!r}")


def export_merged(path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """A plain model dir from an adapter dir (its chain merged), for an engine that needs one (``vllm serve``
    of a LoRA-on-LoRA model); a full model dir needs no export."""
    model, tokenizer = load_merged(path)
    return save_optimizer(model, tokenizer, out)


def generate_heldout(
    model,
    tokenizer,
    records: list[dict],
    out_path: str | os.PathLike,
    method: str,
    max_new_tokens: int,
    batch_size: int = 8,
    instruction: str = "paper",
) -> list[dict]:
    """One greedy prompt per held-out record, appended to ``out_path`` as each batch finishes.

    Batches are fixed by position in ``records`` and a batch is skipped only when all of it is done, so a
    resumed run pads and computes every batch exactly as an uninterrupted one. Returns ``{"id", "query",
    "prompt", "method", "source"}`` rows in the order of ``records``.
    """
    from vpolib.io import append_jsonl, read_jsonl
    from vpolib.progress import track

    done = {r["id"]: r for r in read_jsonl(out_path)[0]} if Path(out_path).exists() else {}
    batches = [records[i : i + batch_size] for i in range(0, len(records), batch_size)]
    todo = [b for b in batches if any(r["id"] not in done for r in b)]
    for part in track(todo, desc=f"{method} held-out prompts"):
        outs = generate_prompts(
            model,
            tokenizer,
            [r["query"] for r in part],
            n=1,
            temperature=0.0,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            instruction=instruction,
        )
        for rec, out in zip(part, outs, strict=True):
            if rec["id"] not in done:
                done[rec["id"]] = {
                    "id": rec["id"],
                    "query": rec["query"],
                    "prompt": out[0],
                    "method": method,
                    "source": rec.get("source"),
                }
                append_jsonl(out_path, done[rec["id"]])
    return [done[r["id"]] for r in records]


def judge_table(judge, records: list[dict], generated: list[dict]):
    """One row per prompt: method, source, pass/fail per principle and overall, failed checks."""
    import pandas as pd

    from vpolib.templates import PRINCIPLES

    verdicts = judge.judge(
        [{**rec, "prompt": g["prompt"]} for rec, g in zip(records, generated, strict=True)]
    )
    return pd.DataFrame(
        [
            {
                "method": g["method"],
                "source": rec.get("source"),
                **{p: v.principles[p] for p in PRINCIPLES},
                "all": v.passed,
                "reasons": v.reasons,
            }
            for rec, g, v in zip(records, generated, verdicts, strict=True)
        ]
    )
