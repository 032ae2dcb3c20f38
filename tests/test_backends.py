"""Generation backends: the OpenAI-compatible client against a real local HTTP server, the JSONL cache
(resume after a kill, nothing done twice), and the local transformers backend on tiny-llama."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from vpolib.backends import (
    TOP_K,
    CachedBackend,
    GenParams,
    LocalBackend,
    OpenAIBackend,
    cache_key,
    chat_generate,
    fast_top_k,
    sampling_probs,
)
from vpolib.io import read_jsonl
from vpolib.judge import LLMJudge
from vpolib.refine import LLMRefiner, critique_and_refine

P = GenParams(temperature=0.0, n=1, max_new_tokens=16)


class Scripted(BaseHTTPRequestHandler):
    """Replies to /v1/chat/completions: 'echo: <last user text>' unless the text asks for a failure.

    The last user message picks the behaviour: 'fail500-N' fails its first N requests with HTTP 500,
    'hang' sleeps past the client timeout, 'garble' sends a body that is not JSON, 'nochoices' a JSON
    object without choices.
    """

    seen: dict[str, int] = {}
    lock = threading.Lock()

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["messages"][-1]["content"]
        with self.lock:
            self.seen[text] = self.seen.get(text, 0) + 1
            count = self.seen[text]
        if text.startswith("fail500-") and count <= int(text.split("-")[1]):
            return self._send(500, b'{"error": {"message": "boom"}}')
        if text == "hang":
            time.sleep(1.5)
        if text == "garble":
            return self._send(200, b"<html>not json")
        if text == "nochoices":
            return self._send(200, b'{"id": "x", "object": "chat.completion"}')
        text = self._judge_or_refine(text)
        choices = [
            {
                "index": i,
                "finish_reason": "stop",
                "message": {
                    "role": "assistant",
                    "content": text if text != body["messages"][-1]["content"] else f"echo: {text} #{i}",
                },
            }
            for i in range(body.get("n", 1))
        ]
        self._send(
            200,
            json.dumps(
                {
                    "id": "x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": choices,
                }
            ).encode(),
        )

    @staticmethod
    def _judge_or_refine(text: str) -> str:
        """Play VPO's judge and refiner: prompts containing BAD are rejected, MUMBLE gets no verdict."""
        if text.startswith("Please act as an expert"):
            prompt = text.split("Video Prompt:")[1]
            if "MUMBLE" in prompt:
                return "I am not sure."
            return f"Step-by-step verification: ...\nFinal Judgement (Yes or No): {'No' if 'BAD' in prompt else 'Yes'}"
        if text.startswith("Based on your judgement, refine"):
            return "Reflection on how to refine the Prompt: ...\nFinal Refined Prompt: [[start]] A good prompt. [[end]]"
        return text

    def _send(self, code: int, payload: bytes):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def conv(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def backend(url: str, **kw) -> OpenAIBackend:
    return OpenAIBackend(base_url=url, model="scripted", api_key="test", timeout=0.5, **kw)


def test_openai_backend_success_and_n_samples(server):
    out = backend(server).generate([conv("a cat"), conv("a dog")], GenParams(n=2))
    assert out == [["echo: a cat #0", "echo: a cat #1"], ["echo: a dog #0", "echo: a dog #1"]]


def test_openai_backend_retries_500_then_succeeds(server):
    b = backend(server, max_retries=3, backoff=0.05)
    t0 = time.perf_counter()
    assert b.generate([conv("fail500-2")], P) == [["echo: fail500-2 #0"]]
    assert Scripted.seen["fail500-2"] == 3  # two 500s, then the retry that worked
    assert b.stats == {"requests": 3, "retries": 2, "failed": 0, "malformed": 0}
    assert time.perf_counter() - t0 >= 0.05 + 0.1  # backoff 0.05 * 2**attempt before each retry


def test_openai_backend_failures_are_none_not_crashes(server):
    b = backend(server, max_retries=0)
    out = b.generate([conv("fail500-9"), conv("hang"), conv("garble"), conv("nochoices"), conv("fine")], P)
    assert out[:4] == [None, None, None, None]
    assert out[4] == ["echo: fine #0"]
    assert len(b.errors) == 4
    assert b.stats == {"requests": 5, "retries": 0, "failed": 2, "malformed": 2}  # garble, nochoices
    assert [e is None for e in b.last_errors] == [False, False, False, False, True]


def test_retries_exhausted_are_failures_recorded_next_to_the_cache(server, tmp_path):
    cached = CachedBackend(backend(server, max_retries=1, backoff=0.01), tmp_path / "c.jsonl")
    assert cached.generate([conv("fail500-5"), conv("ok")], P) == [None, ["echo: ok #0"]]
    assert cached.stats["failed"] == 1 and cached.stats["retries"] == 1 and cached.stats["requests"] == 3
    (failure,), _ = read_jsonl(cached.failures_path)
    assert (
        failure["key"] == cache_key("scripted", P, conv("fail500-5"))
        and "InternalServerError" in failure["error"]
    )


def test_openai_backend_reads_environment(server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server)
    monkeypatch.setenv("OPENAI_MODEL", "from-env")
    b = OpenAIBackend(timeout=2)
    assert b.name == "from-env"
    assert b.generate([conv("x")], P) == [["echo: x #0"]]


def test_openai_backend_without_environment_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    with pytest.raises(RuntimeError, match="OPENAI_BASE_URL"):
        OpenAIBackend()


class Counting:
    """A fake backend that records every conversation it is asked for; can die after k of them."""

    name = "counting"

    def __init__(self, die_after: int | None = None):
        self.calls, self.die_after = [], die_after

    def generate(self, convs, params):
        out = []
        for c in convs:
            if self.die_after is not None and len(self.calls) >= self.die_after:
                raise KeyboardInterrupt  # a kill in the middle of a run
            self.calls.append(c[-1]["content"])
            out.append(None if "bad" in c[-1]["content"] else [c[-1]["content"].upper()] * params.n)
        return out


def test_cache_key_depends_on_model_params_and_messages():
    k = cache_key("m", P, conv("a"))
    assert k == cache_key("m", GenParams(temperature=0.0, n=1, max_new_tokens=16), conv("a"))
    assert (
        len(
            {
                k,
                cache_key("m2", P, conv("a")),
                cache_key("m", GenParams(), conv("a")),
                cache_key("m", P, conv("b")),
            }
        )
        == 4
    )


def test_cache_resumes_after_kill_without_duplicates(tmp_path):
    path = tmp_path / "gen.jsonl"
    convs = [conv(f"q{i}") for i in range(10)]
    with pytest.raises(KeyboardInterrupt):
        CachedBackend(Counting(die_after=5), path, chunk_size=2).generate(convs, P)
    assert len(read_jsonl(path)[0]) == 4  # two full chunks were written before the kill
    with open(path, "a") as f:
        f.write('{"key": "half a line')  # a kill during a write
    again = Counting()
    cached = CachedBackend(again, path, chunk_size=2)
    out = cached.generate(convs + [conv("q0")], P)  # q0 twice: generated once
    assert out == [[f"Q{i}"] for i in range(10)] + [["Q0"]]
    assert again.calls == [f"q{i}" for i in range(4, 10)]
    assert cached.stats["cache_bad_lines"] == 1
    records = read_jsonl(path)[0]
    assert len({r["key"] for r in records}) == len(records) == 10


def test_cache_does_not_store_failures(tmp_path):
    path = tmp_path / "gen.jsonl"
    first = CachedBackend(Counting(), path)
    assert first.generate([conv("bad one"), conv("good")], P) == [None, ["GOOD"]]
    assert first.stats["failed"] == 1
    retry = Counting()
    CachedBackend(retry, path).generate([conv("bad one"), conv("good")], P)
    assert retry.calls == ["bad one"]  # failures are retried on rerun; successes are not


def test_http_backend_through_cache(server, tmp_path):
    path = tmp_path / "http.jsonl"
    cached = CachedBackend(backend(server, max_retries=0), path)
    assert cached.generate([conv("cached q")], P) == [["echo: cached q #0"]]
    before = Scripted.seen["cached q"]
    assert CachedBackend(backend(server), path).generate([conv("cached q")], P) == [["echo: cached q #0"]]
    assert Scripted.seen["cached q"] == before  # served from the file, no request


def test_local_backend_batched_left_padded_n_samples():
    b = LocalBackend.from_spec("tiny-llama", batch_size=3)
    convs = [conv("a cat"), conv("a very long query about a dog running on a beach at sunset"), conv("x")]
    out = b.generate(convs, GenParams(temperature=0.8, n=2, max_new_tokens=5))
    assert b.tokenizer.padding_side == "left"
    assert len(out) == 3 and all(len(texts) == 2 and all(isinstance(t, str) for t in texts) for texts in out)
    greedy = GenParams(temperature=0.0, n=1, max_new_tokens=6)
    batched = b.generate(convs, greedy)
    single = [b.generate([c], greedy)[0] for c in convs]
    assert batched == single  # left padding: a batch gives the same greedy text as one at a time


FOUR = [
    conv("a cat"),
    conv("a very long query about a dog running on a beach at sunset"),
    conv("x"),
    conv("red"),
]


def talking_tiny_llama():
    """tiny-llama with larger random weights: the untrained model's greedy text is eos at once, this one talks."""
    b = LocalBackend.from_spec("tiny-llama", batch_size=4)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in b.model.parameters():
            if p.ndim == 2:
                p.normal_(0, 0.5)
    return b.model, b.tokenizer


def test_fast_generation_writes_what_the_reference_path_writes():
    """Shared prefix run once, a finished row dropped at once: in fp32 the same greedy text as one plain
    ``generate`` call per batch, also when rows end at different steps (eos set to a token the rows emit)."""
    model, tok = talking_tiny_llama()
    greedy = GenParams(temperature=0.0, n=1, max_new_tokens=50)
    plain = chat_generate(model, tok, FOUR, greedy, 4, fast=False)
    assert chat_generate(model, tok, FOUR, greedy, 4) == plain
    # an eos that ends some rows early and others late or never: the drop path must not change any text
    ids = [tok(t[0], add_special_tokens=False)["input_ids"] for t in plain]
    first = {}  # token -> its first position in each row that holds it
    for row in ids:
        for t in set(row):
            first.setdefault(t, []).append(row.index(t))
    eos = next(t for t, pos in first.items() if min(pos) < 16 and len(pos) < len(ids))
    tok.eos_token = tok.convert_ids_to_tokens(eos)
    ended = chat_generate(model, tok, FOUR, greedy, 4, fast=False)
    assert any(len(t[0]) < len(p[0]) for t, p in zip(ended, plain, strict=True)) and ended != plain
    assert chat_generate(model, tok, FOUR, greedy, 4) == ended


def test_sampling_probs_by_hand():
    """p = 0.5, 0.3, 0.15, 0.05 and top_p 0.75: the two least likely tokens hold 0.2 <= 0.25 and go; 0.5 and 0.3
    are renormalised to 0.625 and 0.375."""
    logits = torch.tensor([[0.15, 0.5, 0.05, 0.3]]).log()
    probs, index = sampling_probs(logits, temperature=1.0, top_p=0.75)
    assert index.tolist() == [[1, 3, 0, 2]]
    assert torch.allclose(probs, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))


@pytest.mark.parametrize("temperature, top_p, top_k", [(0.7, 0.9, TOP_K), (1.0, 1.0, TOP_K), (1.3, 0.5, 5)])
def test_sampling_probs_are_what_hf_generate_samples_from(temperature, top_p, top_k):
    """The fast path's sampler against HF's own warpers, in the order ``generate`` builds them (temperature,
    top_k, top_p) on logits of a 300-token vocabulary, spread and peaked rows."""
    torch.manual_seed(0)
    logits = torch.randn(6, 300) * torch.tensor([[0.5], [1.0], [2.0], [4.0], [8.0], [16.0]])
    warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature), TopKLogitsWarper(top_k=top_k)])
    if top_p < 1.0:  # generate adds TopPLogitsWarper only then
        warpers.append(TopPLogitsWarper(top_p=top_p))
    hf = warpers(None, logits.clone()).softmax(-1)
    probs, index = sampling_probs(logits, temperature, top_p, top_k)
    ours = torch.zeros_like(hf).scatter_(-1, index, probs)
    kept = (ours > 0).sum(-1)
    assert kept.max() <= top_k and (top_p == 1.0 or kept.min() < top_k)  # both cuts are exercised
    assert torch.allclose(ours, hf, atol=1e-6)


def test_a_model_asking_generate_for_more_generates_on_the_plain_path():
    """A generation_config with a logits processor the fast path lacks (here a repetition penalty) sends
    ``chat_generate`` to HF ``generate``, so the penalty still applies; a config top_k replaces the default 50."""
    model, tok = talking_tiny_llama()
    greedy = GenParams(temperature=0.0, n=1, max_new_tokens=24)
    assert fast_top_k(model) == TOP_K
    free = chat_generate(model, tok, FOUR, greedy, 4)
    model.generation_config.repetition_penalty = 3.0
    assert fast_top_k(model) is None
    penalised = chat_generate(model, tok, FOUR, greedy, 4)
    assert penalised == chat_generate(model, tok, FOUR, greedy, 4, fast=False) and penalised != free
    model.generation_config.repetition_penalty = 1.0
    model.generation_config.top_k = 7
    assert fast_top_k(model) == 7


def test_fast_sampling_is_reproducible_for_a_seed_and_batch():
    b = LocalBackend.from_spec("tiny-llama", batch_size=4)
    params = GenParams(temperature=1.0, top_p=1.0, n=3, max_new_tokens=20)

    def sample(seed):
        torch.manual_seed(seed)
        return b.generate(FOUR, params)

    first = sample(0)
    assert len(first) == 4 and all(len(texts) == 3 for texts in first)
    assert sample(0) == first and sample(1) != first


def test_llm_judge_and_refiner_over_http(server, tmp_path):
    b = CachedBackend(backend(server, max_retries=0), tmp_path / "cache.jsonl")
    items = [
        {"id": f"q{i}", "query_id": f"q{i}", "query": "a cat", "prompt": p}
        for i, p in enumerate(["A fine cat.", "A BAD cat.", "MUMBLE"])
    ]
    rows = critique_and_refine(items, LLMJudge(b), LLMRefiner(b), tmp_path / "log.jsonl")
    assert [r["status"] for r in rows] == ["pass", "refined", "unparsable"]
    assert rows[1]["refined"] == "A good prompt." and rows[1]["verdict"]["reasons"] == ["llm:no"]
    assert rows[2]["verdict"]["reasons"] == ["llm:unparsable"]
