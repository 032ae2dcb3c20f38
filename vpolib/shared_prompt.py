"""Each prompt once: DPO's pairs and GRPO's samples packed one row per prompt, for training on a CPU.

TRL runs every answer as its own row with its prompt (DPO: prompt + chosen, prompt + rejected; GRPO: the prompt
with each of ``num_generations`` completions), and on a device without Triton its fused LM head scores every
position. :func:`shared_prompt_rows` packs such a batch into one row per distinct prompt, the prompt then each of
its answers under a block mask; :class:`SharedPromptDPOTrainer` and :class:`SharedPromptGRPOTrainer` hand TRL's loss
code the answers' log-probs in its own layout (``vpolib.trainers`` picks them on a CPU).
"""

from __future__ import annotations

import itertools

import torch
from peft import PeftModel
from trl import DPOTrainer, GRPOTrainer
from trl.trainer.utils import FusedCausalLMOutput

from vpolib.backends import NEUTRAL, generate_fast


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

    def _generate_single_turn(
        self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False
    ):
        """Sample through vpolib's decoding loop (:func:`vpolib.backends.generate_fast`) where it samples what TRL's
        ``generate`` call would (:meth:`_fast_sampling`): the tokens every prompt starts with (system turn and
        instruction) run once, and a completion leaves the batch when it ends. Same distribution
        (temperature, TRL's ``top_k``, ``top_p``), other random draws; argmax-equal to TRL's path
        (tests/test_rl.py)."""
        if images is not None or multimodal_fields or not self._fast_sampling():
            return super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )
        # TRL's sampler puts a prompt's copies side by side: n completions of each prompt where every run is as long
        runs = [(ids, len(list(copies))) for ids, copies in itertools.groupby(map(list, prompt_ids))]
        counts = {n for _, n in runs}
        rows, n = (
            ([ids for ids, _ in runs], counts.pop()) if len(counts) == 1 else (list(map(list, prompt_ids)), 1)
        )
        model = self.accelerator.unwrap_model(self.model_wrapped)
        kwargs = {
            "do_sample": True, "temperature": self.temperature, "top_p": self.top_p,
            "top_k": self.top_k or model.config.get_text_config().vocab_size,  # 0: no top-k cut
            "eos_token_id": self.eos_token_ids, "pad_token_id": self._tokenizer.pad_token_id,
        }  # fmt: skip
        return generate_fast(model, rows, n, self.max_completion_length, kwargs), None

    def _fast_sampling(self) -> bool:
        """Whether TRL would sample with temperature, top-k and top-p alone, from one unsharded model in one
        process: the settings the decoding loop implements."""
        config = getattr(self.model, "generation_config", None)
        return (
            _packable(self)
            and not self.use_vllm
            and not self.use_transformers_continuous_batching
            and not self.args.gradient_checkpointing
            and self.min_p is None
            and self.repetition_penalty == 1.0
            and not self.args.generation_kwargs
            and self.args.cache_implementation is None
            and (config is None or all(getattr(config, k, v) in (None, v) for k, v in NEUTRAL.items()))
        )
