"""Text generation backends: chat messages in, ``n`` texts out, behind one interface.

- :class:`LocalBackend`: a transformers causal LM, batched and left-padded, chat template applied.
- :class:`OpenAIBackend`: any OpenAI-compatible endpoint (vLLM, OpenAI, ...) through the ``openai``
  client; base URL, model and key come from environment variables only, so executed notebooks never
  hold a key.
- :class:`CachedBackend`: wraps either; every finished request is appended to a JSONL file keyed by
  a hash of (model, params, messages), so a killed run resumes without losing or redoing work.

``generate`` returns one entry per conversation: a list of ``n`` texts, or ``None`` when the request
failed for good (a counted skip; failures are never cached, so a rerun retries them).
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from vpolib.io import append_jsonl, read_jsonl

ENV_BASE_URL, ENV_MODEL, ENV_KEY = "OPENAI_BASE_URL", "OPENAI_MODEL", "OPENAI_API_KEY"


@dataclass(frozen=True)
class GenParams:
    """Sampling parameters (part of the cache key: change one and the cache misses)."""

    temperature: float = 0.7
    top_p: float = 0.9
    n: int = 1
    max_new_tokens: int = 256


class LocalBackend:
    """A local causal LM; conversations are generated ``batch_size`` at a time."""

    def __init__(self, model, tokenizer, name: str, batch_size: int = 8):
        self.model, self.tokenizer, self.name, self.batch_size = model.eval(), tokenizer, name, batch_size
        self.tokenizer.padding_side = "left"  # generation continues from the right edge
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @classmethod
    def from_spec(cls, spec: str, batch_size: int = 8) -> LocalBackend:
        """Load ``spec`` with :func:`vpolib.models.load_causal_lm` ("tiny-llama", "smollm2-135m-instruct", a dir)."""
        from vpolib.models import load_causal_lm

        model, tokenizer = load_causal_lm(spec)
        return cls(model, tokenizer, name=spec, batch_size=batch_size)

    def generate(self, conversations: list[list[dict]], params: GenParams) -> list[list[str] | None]:
        return chat_generate(self.model, self.tokenizer, conversations, params, self.batch_size)


def chat_generate(model, tokenizer, conversations: list[list[dict]], params: GenParams,
                  batch_size: int = 8) -> list[list[str]]:
    """``params.n`` replies per conversation, ``batch_size`` conversations at a time, left-padded.

    Greedy when ``params.temperature`` is 0. The one place local generation happens (the backends,
    the optimizer's prompt sampling and its held-out prompts all call it).
    """
    import torch

    tokenizer.padding_side = "left"  # generation continues from the right edge of every row
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    sample = params.temperature > 0
    out = []
    for start in range(0, len(conversations), batch_size):
        chunk = conversations[start:start + batch_size]
        texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chunk]
        # The chat template already holds any BOS token: don't add special tokens twice.
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.inference_mode():
            ids = model.generate(
                **enc, do_sample=sample, max_new_tokens=params.max_new_tokens, num_return_sequences=params.n,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                **({"temperature": params.temperature, "top_p": params.top_p} if sample else {}),
            )  # [B * n, prompt_len + new]
        new = tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        out += [[t.strip() for t in new[i * params.n:(i + 1) * params.n]] for i in range(len(chunk))]
    return out


class OpenAIBackend:
    """An OpenAI-compatible chat endpoint; requests run ``concurrency`` at a time.

    The ``openai`` client retries connection errors, timeouts, 429s and 5xx with exponential
    backoff (``max_retries``); a malformed body or exhausted retries make that conversation ``None``.
    """

    def __init__(self, base_url: str | None = None, model: str | None = None, api_key: str | None = None,
                 concurrency: int = 8, timeout: float = 60.0, max_retries: int = 3):
        import openai

        base_url = base_url or os.environ.get(ENV_BASE_URL)
        self.name = model or os.environ.get(ENV_MODEL)
        if not base_url or not self.name:
            raise RuntimeError(f"OpenAIBackend needs ${ENV_BASE_URL} and ${ENV_MODEL} in the environment")
        key = api_key or os.environ.get(ENV_KEY) or "EMPTY"  # local servers (vLLM) accept any key
        self.client = openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=max_retries)
        self.concurrency = concurrency
        self.errors: list[str] = []

    def _one(self, messages: list[dict], params: GenParams) -> list[str] | None:
        try:
            resp = self.client.chat.completions.create(
                model=self.name, messages=messages, temperature=params.temperature, top_p=params.top_p,
                n=params.n, max_tokens=params.max_new_tokens,
            )
            texts = [c.message.content for c in resp.choices]
        except Exception as err:  # any failure is a recorded skip, never a crash
            self.errors.append(f"{type(err).__name__}: {str(err)[:200]}")
            return None
        if len(texts) != params.n or not all(isinstance(t, str) for t in texts):
            self.errors.append(f"malformed reply: {len(texts)} choices, expected {params.n}")
            return None
        return [t.strip() for t in texts]

    def generate(self, conversations: list[list[dict]], params: GenParams) -> list[list[str] | None]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda m: self._one(m, params), conversations))


def cache_key(model: str, params: GenParams, messages: list[dict]) -> str:
    """sha256 of the canonical JSON of (model, params, messages)."""
    blob = json.dumps({"model": model, "params": asdict(params), "messages": messages}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class CachedBackend:
    """Wrap a backend with a JSONL cache; records are appended per chunk as soon as they finish."""

    def __init__(self, backend, path: str | os.PathLike, chunk_size: int = 8, progress: bool = False):
        self.backend, self.path, self.chunk_size, self.progress = backend, Path(path), chunk_size, progress
        self.name = backend.name
        self.stats = {"hits": 0, "generated": 0, "failed": 0, "cache_bad_lines": 0}
        self._cache: dict[str, list[str]] = {}
        if self.path.exists():
            records, errors = read_jsonl(self.path)  # a line cut by a kill is counted and ignored
            self.stats["cache_bad_lines"] = len(errors)
            self._cache = {r["key"]: r["texts"] for r in records if "key" in r and isinstance(r.get("texts"), list)}

    def generate(self, conversations: list[list[dict]], params: GenParams) -> list[list[str] | None]:
        from vpolib.progress import track

        keys = [cache_key(self.name, params, m) for m in conversations]
        todo = list(dict.fromkeys(k for k in keys if k not in self._cache))  # each key generated once
        self.stats["hits"] += sum(k in self._cache for k in keys)
        first = {k: m for k, m in zip(keys, conversations, strict=True)}
        failed = set()
        for start in track(range(0, len(todo), self.chunk_size), desc=self.name, disable=not self.progress):
            chunk = todo[start:start + self.chunk_size]
            for key, texts in zip(chunk, self.backend.generate([first[k] for k in chunk], params), strict=True):
                if texts is None:
                    failed.add(key)
                    continue
                append_jsonl(self.path, {"key": key, "model": self.name, "texts": texts})
                self._cache[key] = texts
                self.stats["generated"] += 1
        self.stats["failed"] += len(failed)
        return [self._cache.get(k) for k in keys]


def make_backend(spec: str, batch_size: int = 8, concurrency: int = 8):
    """``"local:<model spec>"`` -> :class:`LocalBackend`; ``"openai"`` -> :class:`OpenAIBackend` (env config)."""
    if spec.startswith("local:"):
        return LocalBackend.from_spec(spec.removeprefix("local:"), batch_size=batch_size)
    if spec == "openai":
        return OpenAIBackend(concurrency=concurrency)
    raise ValueError(f"unknown backend {spec!r}: use 'local:<model spec>' or 'openai'")
