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
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vpolib.io import append_jsonl, read_jsonl
from vpolib.models import load_causal_lm
from vpolib.progress import track

ENV_BASE_URL, ENV_MODEL, ENV_KEY = "OPENAI_BASE_URL", "OPENAI_MODEL", "OPENAI_API_KEY"


@dataclass(frozen=True)
class GenParams:
    """Sampling parameters (part of the cache key: change one and the cache misses)."""

    temperature: float = 0.7
    top_p: float = 0.9
    n: int = 1
    max_new_tokens: int = 256
    # OpenAI-compatible structured output (``templates.response_format``); the local backend ignores it.
    response_format: dict | None = field(default=None, hash=False)


class LocalBackend:
    """A local causal LM; conversations are generated ``batch_size`` at a time."""

    def __init__(self, model, tokenizer, name: str, batch_size: int = 8):
        self.model, self.tokenizer, self.name, self.batch_size = model.eval(), tokenizer, name, batch_size
        self.tokenizer.padding_side = "left"  # generation continues from the right edge
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @classmethod
    def from_spec(cls, spec: str, batch_size: int = 8, dtype: str | None = None) -> LocalBackend:
        """Load ``spec`` with :func:`vpolib.models.load_causal_lm` ("tiny-llama", "smollm2-135m-instruct", a dir)."""
        model, tokenizer = load_causal_lm(spec, dtype=dtype)
        return cls(model, tokenizer, name=spec, batch_size=batch_size)

    def generate(self, conversations: list[list[dict]], params: GenParams) -> list[list[str] | None]:
        return chat_generate(self.model, self.tokenizer, conversations, params, self.batch_size)


def chat_generate(
    model,
    tokenizer,
    conversations: list[list[dict]],
    params: GenParams,
    batch_size: int = 8,
    fast: bool = True,
) -> list[list[str]]:
    """``params.n`` replies per conversation, ``batch_size`` conversations at a time.

    Greedy when ``params.temperature`` is 0. The one place local generation happens (the backends,
    the optimizer's prompt sampling and its held-out prompts all call it). ``fast=False`` is HF ``generate`` as
    documented, one call per batch (left-padded, ``num_return_sequences``): the reference path. ``fast`` is a
    decoding loop over the same model that does less work (:func:`generate_fast`): greedy text may differ from the
    reference's where a batch's shape changes the last bits of a logit (bf16 greedy agreement:
    ``scripts/bench_engines.py``); sampled text comes from the same distribution with other random draws. Either
    path is deterministic for a given seed, batch and machine.
    """
    import torch

    tokenizer.padding_side = "left"  # generation continues from the right edge of every row
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    sample = params.temperature > 0
    kwargs = {
        "do_sample": sample,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        **({"temperature": params.temperature, "top_p": params.top_p} if sample else {}),
    }
    top_k = (
        fast_top_k(model) if fast else None
    )  # None: the model asks generate for more than the fast path does
    out = []
    for start in range(0, len(conversations), batch_size):
        chunk = conversations[start : start + batch_size]
        texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chunk]
        if top_k:
            # The chat template already holds any BOS token: don't add special tokens twice.
            rows = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
            new_ids = generate_fast(model, rows, params.n, params.max_new_tokens, kwargs | {"top_k": top_k})
            new = tokenizer.batch_decode(new_ids, skip_special_tokens=True)
        else:
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(
                model.device
            )
            with torch.inference_mode():
                ids = model.generate(
                    **enc, max_new_tokens=params.max_new_tokens, num_return_sequences=params.n, **kwargs
                )  # [B * n, prompt_len + new]
            new = tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        out += [[t.strip() for t in new[i * params.n : (i + 1) * params.n]] for i in range(len(chunk))]
    return out


def generate_fast(model, rows: list[list[int]], n: int, max_new_tokens: int, kwargs: dict) -> list[list[int]]:
    """The new token ids of ``n`` continuations per row (row-major: row 0's n, then row 1's): a decoding loop over the
    model's forward that samples from the distribution HF ``generate`` samples from, with less work.

    - The tokens every row starts with (system turn and instruction: 84-101 of 99-126 tokens with the short one,
      184-201 of 199-226 with the paper's, where the batch's queries share a source; 24 where they do not) are
      run once, batch 1, and their key/value cache is copied to every row; the rest of each row is left-padded
      after that shared part (the attention mask hides the gap; positions count only real tokens). The reference
      path also runs each query's prompt ``n`` times.
    - A row that ends leaves the batch and the cache at once; one ``generate`` call computes every row until the
      longest ends (sampled optimizer prompts: ~41% of the reference's row-steps went to rows already done in
      cpu-T's stage 04).
    - Sampling draws among the top 50 tokens (HF's default ``top_k``, which ``generate`` applies before
      ``top_p``; the model's own ``top_k`` where its generation_config sets one: :func:`fast_top_k`), where HF's sampler draws over (and below top_p 1 sorts) all 49k a row a step: a fifth of a
      bf16 decoding step at ~30 rows on a 2-core Zen 4. Same distribution (:func:`sampling_probs`), other draws.
    - The first step's logits are taken from a copy of each row's last hidden state: HF slices ``[:, -1:]``, a
      view that torch's ``matmul`` cannot fold into one ``mm``, so it expands the LM head's weight to every row
      (a 1.7 GB copy at 30 rows in bf16).
    How much that saves: ``scripts/bench_engines.py`` (``docs/results/cpu/bench_engines_*.json``).
    """
    import torch
    from transformers import DynamicCache

    eos, sample = kwargs["eos_token_id"], kwargs["do_sample"]
    eos = torch.tensor([eos] if isinstance(eos, int) else list(eos))
    shared = 0
    limit = min(len(r) for r in rows) - 1  # every row keeps >= 1 token of its own to start generating from
    while shared < limit and all(r[shared] == rows[0][shared] for r in rows):
        shared += 1
    width = max(len(r) for r in rows) - shared
    pad = kwargs["pad_token_id"]
    ids = torch.tensor([[pad] * (width - len(r) + shared) + r[shared:] for r in rows]).repeat_interleave(n, 0)
    mask = torch.tensor(
        [[1] * shared + [0] * (width - len(r) + shared) + [1] * (len(r) - shared) for r in rows]
    )
    mask = mask.repeat_interleave(n, 0)  # [B * n, shared + width]
    positions = (mask.cumsum(1) - 1).clamp(min=0)  # each row's real tokens count 0, 1, ...; the gap is masked
    device = model.device
    alive = torch.arange(len(ids))  # which of the B * n rows each batch row is
    done: list = [None] * len(ids)
    new = torch.empty(len(ids), 0, dtype=torch.long)  # [alive, step]
    with torch.inference_mode():
        cache = DynamicCache(config=model.config)
        if shared:
            model(torch.tensor([rows[0][:shared]], device=device), past_key_values=cache, use_cache=True)
            cache.batch_repeat_interleave(len(ids))
        step_ids, step_pos = ids, positions[:, shared:]  # [alive, width]
        for step in range(max_new_tokens):
            logits = (
                model(
                    input_ids=step_ids.to(device),
                    attention_mask=mask.to(device),
                    position_ids=step_pos.to(device),
                    past_key_values=cache,
                    use_cache=True,
                    logits_to_keep=torch.tensor([step_ids.shape[1] - 1], device=device),  # a copy, not a view
                )
                .logits[:, -1]
                .float()
            )  # [alive, vocab]
            token = _pick(logits, kwargs).cpu() if sample else logits.argmax(-1).cpu()  # [alive]
            new = torch.cat([new, token[:, None]], 1)
            ended = torch.isin(token, eos) | (step == max_new_tokens - 1)
            for j in torch.nonzero(ended).flatten().tolist():
                done[int(alive[j])] = new[j].tolist()
            keep = torch.nonzero(~ended).flatten()
            if not len(keep):
                break
            mask = torch.cat([mask, torch.ones(len(mask), 1, dtype=mask.dtype)], 1)
            step_ids, step_pos = token[:, None], step_pos[:, -1:] + 1
            if len(keep) < len(alive):
                cache.batch_select_indices(keep.to(device))
                mask, step_ids, step_pos, new, alive = (
                    mask[keep],
                    step_ids[keep],
                    step_pos[keep],
                    new[keep],
                    alive[keep],
                )
    return done


TOP_K = 50  # HF generate's default top_k, applied before top_p (transformers 5: TopKLogitsWarper(top_k=50))
# generation_config fields, at the values that add no logits processor to HF generate; the fast path implements
# temperature, top_k and top_p only, so a model that sets any of these others generates on the plain path
NEUTRAL = {
    "repetition_penalty": 1.0, "encoder_repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "min_length": 0,
    "min_new_tokens": None, "min_p": None, "top_h": None, "typical_p": 1.0, "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0, "bad_words_ids": None, "sequence_bias": None, "suppress_tokens": None,
    "begin_suppress_tokens": None, "forced_bos_token_id": None, "forced_eos_token_id": None,
    "exponential_decay_length_penalty": None,
}  # fmt: skip


def fast_top_k(model) -> int | None:
    """The ``top_k`` HF ``generate`` samples with for ``model`` (its generation_config's, else 50), or None where
    that config asks ``generate`` for a logits processor the fast path lacks (or for no top-k cut at all)."""
    config = getattr(model, "generation_config", None)
    if config is None:
        return TOP_K
    if any(getattr(config, k, v) not in (None, v) for k, v in NEUTRAL.items()):
        return None
    top_k = TOP_K if config.top_k is None else config.top_k
    return top_k if top_k > 0 else None


def sampling_probs(logits, temperature: float, top_p: float, top_k: int = TOP_K):
    """``(probs, index)``, each ``[rows, top_k]``: the distribution HF ``generate`` samples from with these settings
    (temperature, then the ``top_k`` most likely tokens, then the smallest set of those whose mass reaches
    ``top_p``), over the token ids in ``index``; every other token has probability 0."""
    top, index = (logits / temperature).topk(min(top_k, logits.shape[-1]), -1)  # descending
    # HF's TopPLogitsWarper, in ascending order: drop a token when its mass plus that of every less likely token
    # is <= 1 - top_p; the most likely token always stays
    tail = top.softmax(-1).flip(-1).cumsum(-1).flip(-1)  # [rows, top_k]: this token and all after it
    drop = tail <= 1 - top_p
    drop[:, 0] = False
    return top.masked_fill(drop, float("-inf")).softmax(-1), index


def _pick(logits, kwargs: dict):
    """One sampled token id per row (``[rows]``) from :func:`sampling_probs`."""
    import torch

    # no top-k or top-p cut: draw from the softmax, without sorting the whole vocabulary
    if kwargs["top_k"] >= logits.shape[-1] and kwargs["top_p"] >= 1.0:
        return torch.multinomial((logits / kwargs["temperature"]).softmax(-1), 1).squeeze(-1)
    probs, index = sampling_probs(logits, kwargs["temperature"], kwargs["top_p"], kwargs["top_k"])
    return index.gather(-1, torch.multinomial(probs, 1)).squeeze(-1)


class OpenAIBackend:
    """An OpenAI-compatible chat endpoint; requests run ``concurrency`` at a time.

    Retries are explicit: a connection error, timeout, 408/409/429 or 5xx is retried up to
    ``max_retries`` times after ``backoff * 2**attempt`` seconds (capped at ``max_backoff``), so a
    server that restarts within that window loses nothing. A reply that arrives but cannot be used
    (not JSON, no choices, wrong count, no text) is *malformed*: counted and not retried. Whatever
    still fails makes that conversation ``None``. ``stats`` counts requests, retries, failures and
    malformed replies; ``errors`` keeps their messages; ``last_errors`` is aligned with the last
    ``generate`` call's conversations (None where it succeeded).
    """

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
    ):
        import openai

        base_url = base_url or os.environ.get(ENV_BASE_URL)
        self.name = model or os.environ.get(ENV_MODEL)
        if not base_url or not self.name:
            raise RuntimeError(f"OpenAIBackend needs ${ENV_BASE_URL} and ${ENV_MODEL} in the environment")
        key = api_key or os.environ.get(ENV_KEY) or "EMPTY"  # local servers (vLLM) accept any key
        self.client = openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=0)
        self.concurrency, self.max_retries, self.backoff, self.max_backoff = (
            concurrency,
            max_retries,
            backoff,
            max_backoff,
        )
        self.errors: list[str] = []
        self.last_errors: list[str | None] = []
        self.stats = {"requests": 0, "retries": 0, "failed": 0, "malformed": 0}
        self._lock = threading.Lock()

    def _count(self, key: str, error: str | None = None) -> None:
        with self._lock:
            self.stats[key] += 1
            if error:
                self.errors.append(error)

    @staticmethod
    def _retryable(err: Exception) -> bool:
        import openai

        if isinstance(err, openai.APIConnectionError | openai.RateLimitError | openai.InternalServerError):
            return True  # APITimeoutError is an APIConnectionError
        return isinstance(err, openai.APIStatusError) and err.status_code in (408, 409)

    def _one(self, messages: list[dict], params: GenParams) -> tuple[list[str] | None, str | None]:
        """(texts, None) or (None, why); every attempt, retry and outcome is counted."""
        extra = {"response_format": params.response_format} if params.response_format else {}
        for attempt in range(self.max_retries + 1):
            self._count("requests")
            try:
                resp = self.client.chat.completions.create(
                    model=self.name,
                    messages=messages,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    n=params.n,
                    max_tokens=params.max_new_tokens,
                    **extra,
                )
                texts = [c.message.content for c in resp.choices]
            except Exception as err:  # any failure is a recorded skip, never a crash
                why = f"{type(err).__name__}: {str(err)[:200]}"
                if self._retryable(err) and attempt < self.max_retries:
                    self._count("retries")
                    time.sleep(min(self.max_backoff, self.backoff * 2**attempt))
                    continue
                # The openai client raises these when the body is not the JSON it expects: malformed.
                malformed = isinstance(err, ValueError | TypeError | AttributeError) or "Validation" in why
                self._count("malformed" if malformed else "failed", why)
                return None, why
            if len(texts) != params.n or not all(isinstance(t, str) for t in texts):
                why = f"malformed reply: {len(texts)} choices, expected {params.n} texts"
                self._count("malformed", why)
                return None, why
            return [t.strip() for t in texts], None
        raise AssertionError("unreachable")

    def generate(self, conversations: list[list[dict]], params: GenParams) -> list[list[str] | None]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            results = list(pool.map(lambda m: self._one(m, params), conversations))
        self.last_errors = [why for _, why in results]
        return [texts for texts, _ in results]


def cache_key(model: str, params: GenParams, messages: list[dict]) -> str:
    """sha256 of the canonical JSON of (model, params, messages); ``response_format`` only when set."""
    p = asdict(params)
    if p.get("response_format") is None:
        p.pop("response_format", None)  # keys of caches written before the field existed stay valid
    blob = json.dumps({"model": model, "params": p, "messages": messages}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class CachedBackend:
    """Wrap a backend with a JSONL cache; records are appended per chunk as soon as they finish.

    Failed conversations are not cached (a rerun retries them) but each failure is appended to
    ``<cache>.failures.jsonl`` with its error; ``stats`` adds the wrapped backend's request counts.
    """

    def __init__(self, backend, path: str | os.PathLike, chunk_size: int = 8, progress: bool = False):
        self.backend, self.path, self.chunk_size, self.progress = backend, Path(path), chunk_size, progress
        self.failures_path = self.path.with_name(self.path.stem + ".failures.jsonl")
        self.name = backend.name
        self.stats = {"hits": 0, "generated": 0, "failed": 0, "cache_bad_lines": 0}
        self._cache: dict[str, list[str]] = {}
        if self.path.exists():
            records, errors = read_jsonl(self.path)  # a line cut by a kill is counted and ignored
            self.stats["cache_bad_lines"] = len(errors)
            self._cache = {
                r["key"]: r["texts"] for r in records if "key" in r and isinstance(r.get("texts"), list)
            }

    @property
    def errors(self) -> list[str]:
        """The wrapped backend's error messages (empty for backends that keep none)."""
        return getattr(self.backend, "errors", [])

    def generate(self, conversations: list[list[dict]], params: GenParams) -> list[list[str] | None]:
        keys = [cache_key(self.name, params, m) for m in conversations]
        todo = list(dict.fromkeys(k for k in keys if k not in self._cache))  # each key generated once
        self.stats["hits"] += sum(k in self._cache for k in keys)
        first = {k: m for k, m in zip(keys, conversations, strict=True)}
        failed = set()
        for start in track(range(0, len(todo), self.chunk_size), desc=self.name, disable=not self.progress):
            chunk = todo[start : start + self.chunk_size]
            out = self.backend.generate([first[k] for k in chunk], params)
            whys = getattr(self.backend, "last_errors", None) or [None] * len(chunk)
            for key, texts, why in zip(chunk, out, whys, strict=True):
                if texts is None:
                    failed.add(key)
                    append_jsonl(
                        self.failures_path,
                        {
                            "key": key,
                            "model": self.name,
                            "error": why or "failed",
                            "time": round(time.time(), 3),
                        },
                    )
                    continue
                append_jsonl(self.path, {"key": key, "model": self.name, "texts": texts})
                self._cache[key] = texts
                self.stats["generated"] += 1
        self.stats["failed"] += len(failed)
        for name in ("requests", "retries", "malformed"):  # the endpoint's own counts (OpenAIBackend)
            if name in getattr(self.backend, "stats", {}):
                self.stats[name] = self.backend.stats[name]
        return [self._cache.get(k) for k in keys]


class EndpointError(RuntimeError):
    """Most requests of a first batch failed: the endpoint is down or misconfigured."""


class OutputFormatError(RuntimeError):
    """Most replies of a first batch could not be parsed: the model does not follow the output format."""


def check_first_batch(
    role: str, replies: list[str | None], usable: list[bool], fix: str, errors: list[str] | None = None
) -> None:
    """Stop early with a clear message when most of a first batch failed or could not be parsed.

    ``replies`` are the raw texts (None: the request failed), ``usable`` whether each one parsed.
    Raises :class:`EndpointError` or :class:`OutputFormatError` quoting one bad reply and ``fix``.
    """
    n, failed = len(replies), sum(r is None for r in replies)
    if n and failed * 2 > n:
        last = (errors or ["unknown"])[-1]
        raise EndpointError(
            f"{role}: {failed} of {n} requests in the first batch failed (last error: {last}). Check that the "
            f"server at ${ENV_BASE_URL} is up and serves ${ENV_MODEL}; failures are not cached, so a rerun retries them."
        )
    got = [(r, ok) for r, ok in zip(replies, usable, strict=True) if r is not None]
    bad = [r for r, ok in got if not ok]
    if got and len(bad) * 2 > len(got):
        quote = bad[0] if len(bad[0]) <= 300 else bad[0][:300] + " ..."
        raise OutputFormatError(
            f"{role}: {len(bad)} of {len(got)} replies in the first batch could not be parsed. "
            f"One reply: {quote!r}. {fix}"
        )


def make_backend(spec: str, batch_size: int = 8, concurrency: int = 8, dtype: str | None = None):
    """``"local:<model spec>"`` -> :class:`LocalBackend` (weights in ``dtype``); ``"openai"`` ->
    :class:`OpenAIBackend` (env config)."""
    if spec.startswith("local:"):
        return LocalBackend.from_spec(spec.removeprefix("local:"), batch_size=batch_size, dtype=dtype)
    if spec == "openai":
        return OpenAIBackend(concurrency=concurrency)
    raise ValueError(f"unknown backend {spec!r}: use 'local:<model spec>' or 'openai'")
