"""Tiny SFT records and preference pairs shared by the training tests (not a test module)."""

QUERIES = ["a cat on a mat", "a dog running", "city at night", "a red car", "two birds flying", "ocean waves"]

# Trainer knobs of the training tests: a few fast fp32 CPU steps, every step logged.
CPU = {
    "bf16": False,
    "use_cpu": True,
    "activation_checkpointing": False,
    "per_device_train_batch_size": 3,
    "logging_steps": 1,
}


def sft_record(q: str) -> dict:
    return {
        "query": q,
        "messages": [
            {"role": "user", "content": f"Expand: {q}"},
            {"role": "assistant", "content": f"A cinematic shot of {q}, soft light."},
        ],
    }


def pair(q: str) -> dict:
    return {
        "query": q,
        "source": "video",
        "prompt": [{"role": "user", "content": q}],
        "chosen": [{"role": "assistant", "content": f"A shot of {q}."}],
        "rejected": [{"role": "assistant", "content": "blurry bad"}],
    }
