"""A trainer's log history as a table and its summaries; the DPO loss worked by hand and its failure signs.

Its figure is :func:`vpolib.views.training_log.plot_log`.
"""

from __future__ import annotations

import math


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


def completion_logprob(model, tokenizer, prompt: list[dict], completion: list[dict]) -> float:
    """log p(completion | prompt) under ``model``: the sum over the completion's tokens, as DPO uses it."""
    import torch

    prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_dict=False)
    full_ids = tokenizer.apply_chat_template(prompt + completion, return_dict=False)
    ids = torch.tensor([full_ids])  # [1, T]
    start = len(prompt_ids) - 1  # the position that predicts the completion's first token
    with torch.inference_mode():  # the LM head on the positions that predict a completion token only
        logits = model(input_ids=ids, logits_to_keep=len(full_ids) - start).logits.float()  # [1, T-start, V]
    # [C, V]: position start + c predicts token start + c + 1
    logp = torch.log_softmax(logits[0, :-1], dim=-1)
    targets = ids[0, start + 1 :]  # [C]
    return float(logp.gather(1, targets[:, None]).sum())


def completion_tokens(tokenizer, prompt: list[dict], completion: list[dict]) -> int:
    """How many tokens the completion adds after the prompt's chat template (what the NLL term averages over)."""
    prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_dict=False)
    return len(tokenizer.apply_chat_template(prompt + completion, return_dict=False)) - len(prompt_ids)


def loss_weights(trainer: dict) -> dict:
    """The weight of each term of a ``dpo.trainer`` loss: ``{"sigmoid": w, "sft": w}`` (TRL's ``loss_type`` list
    and ``loss_weights``, default 1 each). ``sft`` is RPO's NLL term on the chosen answer."""
    types = trainer.get("loss_type", ["sigmoid"])
    types = [types] if isinstance(types, str) else list(types)
    return dict(zip(types, trainer.get("loss_weights") or [1.0] * len(types), strict=True))


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


def seconds_per_step(info: dict) -> float:
    """Measured wall time per optimizer step of a train info (``train_s`` / ``steps``), to 2 decimals."""
    return round(info["train_s"] / max(info["steps"], 1), 2)


def curve_ends(frame, columns: list[str]) -> dict:
    """``{column: [first, last]}`` of the training split of a :func:`log_frame` (None where never logged)."""
    return {c: first_last(frame, c) for c in columns}


def variant_metrics(run: dict, frame, columns: list[str], signs: list[dict]) -> dict:
    """One DPO model's training in ``metrics.json``: its pairs, steps and measured time, each curve's first and
    last value, and the failure signs found (``run``: ``train``, ``eval``, ``skipped_pairs`` and the train info)."""
    info = run["info"]
    return {
        "train_pairs": run["train"],
        "eval_pairs": run["eval"],
        "skipped_pairs": run["skipped_pairs"],
        "steps": info["steps"],
        "train_s": info["train_s"],
        "s_per_step": seconds_per_step(info),
        **curve_ends(frame, columns),
        "failure_signs": [s["sign"] for s in signs],
    }


def pair_logprobs(model, tokenizer, pair: dict) -> dict:
    """``{"chosen", "rejected"}``: :func:`completion_logprob` of both answers of a TRL preference pair."""
    return {
        side: completion_logprob(model, tokenizer, pair["prompt"], pair[side])
        for side in ("chosen", "rejected")
    }
