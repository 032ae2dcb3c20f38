"""Training runs on the tiny records shared by the training tests (not a test module): a few fast CPU steps."""

from tiny_records import CPU, QUERIES, sft_record

from vpolib.examples import sft_examples
from vpolib.models import load_causal_lm
from vpolib.trainers import build_sft_trainer, train_and_save


def train_tiny(build_trainer, base, rows: list[dict], out_dir, lora: dict | None, **knobs) -> dict:
    """:func:`train_and_save` with the tiny CPU knobs plus ``knobs`` (steps, rate, beta), no eval rows, seed 0."""
    return train_and_save(build_trainer, base, rows, [], {**CPU, **knobs}, lora, out_dir, seed=0)


def trained_lora_sft(model_dir, out_dir, lora: dict):
    """``(trainer, tokenizer)``: a LoRA SFT trainer on the tiny records after 3 steps at rate 1e-2 (enough to move
    the adapters off zero), its model still in memory."""
    model, tok = load_causal_lm(str(model_dir))
    rows, _ = sft_examples([sft_record(q) for q in QUERIES])
    trainer = build_sft_trainer(
        model, tok, rows, [], {**CPU, "max_steps": 3, "learning_rate": 1e-2}, out_dir, seed=0, lora=lora
    )
    trainer.train()
    return trainer, tok


def on_cpu(profile_trainer: dict, **knobs) -> dict:
    """A profile's ``trainer`` section with only the device knobs swapped for CPU (fp32, batch 2, no
    accumulation), then ``knobs``."""
    return {
        **profile_trainer,
        "bf16": False,
        "use_cpu": True,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 1,
        **knobs,
    }
