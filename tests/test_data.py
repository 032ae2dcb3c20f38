import json

import pytest

from vpolib.data import (
    annotate,
    clean_text,
    filter_queries,
    is_probably_english,
    load_query_list,
    shapes_beyond,
    shapes_splits,
    split_pools,
    stable_order,
)
from vpolib.io import read_jsonl
from vpolib.safety_lexicon import harmful_terms


def test_clean_text_unescapes_entities_and_whitespace():
    assert (
        clean_text("  Soldiers fight &quot;X&quot;\n\n it&#39;s   late ") == 'Soldiers fight "X" it\'s late'
    )
    assert clean_text("&amp;quot;double&amp;quot;") == '"double"'
    assert clean_text("\t\r\n") == ""


def test_load_query_list_counts_malformed(tmp_path):
    path = tmp_path / "q.json"
    path.write_text(json.dumps(["a dog", 3, None, "", "a cat"]))
    recs, bad = load_query_list(path, "sft")
    assert [r["raw"] for r in recs] == ["a dog", "", "a cat"]
    assert [r["id"] for r in recs] == ["sft-00000", "sft-00003", "sft-00004"]
    assert [b["index"] for b in bad] == [1, 2]


def test_load_query_list_jsonl_with_broken_line(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('"a dog"\n{broken\n"a cat"\n\n{"x": 1}\n')
    recs, bad = load_query_list(path, "dpo")
    assert [r["raw"] for r in recs] == ["a dog", "a cat"]
    assert sorted(b["reason"].split(":")[0] for b in bad) == ["invalid JSON", "not a string"]


def test_load_query_list_rejects_non_list(tmp_path):
    path = tmp_path / "q.json"
    path.write_text('{"a": 1}')
    with pytest.raises(ValueError, match="expected a JSON list"):
        load_query_list(path, "sft")


def test_english_heuristic():
    assert is_probably_english("dog lying grass tongue out")
    assert is_probably_english("heavy thunderstorm, highly detailed, cinematic, Las Vegas")
    assert not is_probably_english("una mujer caminando en la playa con un perro")
    assert not is_probably_english("голая девочка на улице")
    assert is_probably_english("")


def test_harmful_lexicon_whole_words_only():
    assert harmful_terms("The boy is being KILLED, Killed") == ["violence:killed"]
    assert harmful_terms("a skilled sextant user in Essex") == []


def test_annotate_flags():
    r = annotate({"id": "x", "source": "sft", "raw": "naked man &quot;runs&quot; -neg blur -ar 16:9"}, 20)
    assert r["query"] == 'naked man "runs" -neg blur -ar 16:9'
    assert r["content"] == 'naked man "runs"'
    assert set(r["flags"]) == {"harmful", "too_long", "has_tags"}
    assert r["tags"][0] == {"name": "neg", "value": "blur", "kind": "content"}


def _recs(queries, source="sft"):
    return [annotate({"id": f"{source}-{i}", "source": source, "raw": q}, 600) for i, q in enumerate(queries)]


def test_filter_steps_count_each_removal():
    recs = _recs(["a dog", "  ", "-ar 16:9", "A dog!", "a cat", "ok"])
    kept, dropped, steps = filter_queries(recs, 3, False, False)
    assert [r["query"] for r in kept] == ["a dog", "a cat"]
    assert {s["step"]: s["removed"] for s in steps} == {
        "read": 0,
        "empty": 1,
        "no_content (tags only or too short)": 2,
        "duplicate": 1,
    }
    assert steps[-1]["remaining"] == 2
    assert sorted(d["dropped_by"] for d in dropped) == [
        "duplicate",
        "empty",
        "no_content (tags only or too short)",
        "no_content (tags only or too short)",
    ]


def test_split_is_deterministic_and_disjoint():
    recs = _recs([f"query number {i}" for i in range(40)], "sft") + _recs(
        [f"other {i}" for i in range(60)], "dpo"
    )
    a = split_pools(recs, seed=1, heldout_size=10, heldout_from="dpo")
    b = split_pools(list(reversed(recs)), seed=1, heldout_size=10, heldout_from="dpo")
    assert {r["id"] for r in a["heldout"]} == {r["id"] for r in b["heldout"]}
    assert len(a["heldout"]) == 10 and len(a["dpo_pool"]) == 50 and len(a["sft_pool"]) == 40
    assert not {r["id"] for r in a["heldout"]} & {r["id"] for r in a["dpo_pool"] + a["sft_pool"]}
    c = split_pools(recs, seed=2, heldout_size=10, heldout_from="dpo")
    assert {r["id"] for r in c["heldout"]} != {r["id"] for r in a["heldout"]}


def test_shapes_beyond_continues_the_stream_past_every_split():
    splits = shapes_splits(5, 4, 3, seed=7, max_chars=600)
    inside = [r["id"] for rows in splits.values() for r in rows]
    beyond = shapes_beyond(12, 3, seed=7, max_chars=600)
    assert [r["id"] for r in beyond] == ["shapes-00013", "shapes-00014", "shapes-00015"]
    assert not set(inside) & {r["id"] for r in beyond}
    # the same stream: the first query past a split of 12 is the 13th of a longer split
    longer = shapes_splits(6, 4, 3, seed=7, max_chars=600)["sft_pool"][-1]
    assert beyond[0] == longer and beyond[0]["source"] == "shapes" and beyond[0]["query"]


def test_split_rejects_oversized_heldout():
    with pytest.raises(ValueError, match="more than half"):
        split_pools(_recs(["a b c", "d e f"], "dpo"), seed=0, heldout_size=2, heldout_from="dpo")


def test_stable_order_ignores_input_order():
    recs = [{"query": q} for q in "abcdef"]
    assert stable_order(recs, 3) == stable_order(recs[::-1], 3)


def test_read_jsonl_keeps_bad_lines(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\nnot json\n[1, 2]\n\n{"b": 2}\n')
    recs, errors = read_jsonl(p)
    assert recs == [{"a": 1}, {"b": 2}]
    assert [e["line"] for e in errors] == [2, 3]


def test_split_files_sizes_and_rejected_rows():
    from vpolib.data import rejected_rows, split_files, split_sizes

    real = {
        "id": "r1",
        "source": "dpo",
        "query": "a dog",
        "content": "a dog",
        "tags": [],
        "flags": [],
        "raw": "x",
    }
    shape = {
        "id": "s1",
        "source": "shapes",
        "query": "a red ball",
        "scene": {"n": 1},
        "caption": "A red ball.",
    }
    splits = {"sft_pool": [], "dpo_pool": [real], "heldout": []}
    shapes = {"sft_pool": [shape], "dpo_pool": [], "heldout": []}
    files = split_files(splits, shapes)
    assert files["dpo_pool"] == [{k: v for k, v in real.items() if k != "raw"}]  # raw is not a split field
    assert files["sft_pool"] == [shape] and files["heldout"] == []
    assert split_sizes(splits, shapes, [{}, {}]) == {
        "sft_pool": {"real": 0, "shapes": 1},
        "dpo_pool": {"real": 1, "shapes": 0},
        "heldout": {"real": 0, "shapes": 0},
        "vbench_pairs": {"real": 2, "shapes": 0},
    }
    dropped = [{**real, "dropped_by": "duplicate"}]
    assert rejected_rows([{"line": 3}], dropped) == [
        {"line": 3},
        {"id": "r1", "source": "dpo", "raw": "x", "dropped_by": "duplicate"},
    ]


def test_tag_rows_word_counts_and_the_figures(tmp_path):
    from vpolib.data import plot_filter_steps, plot_lengths, plot_tags, tag_rows, word_counts

    kept = [
        annotate({"id": "a", "source": "sft", "raw": "a dog runs -neg cats -ar 16:9"}, 600),
        annotate({"id": "b", "source": "dpo", "raw": "sunset"}, 600),
    ]
    assert tag_rows(kept) == [{"tag": "-neg", "kind": "content"}, {"tag": "-ar", "kind": "format"}]
    vbench = [{"query": "a cat", "gpt4o": "A cat naps in the sun.", "wan": None}]
    assert word_counts(kept, vbench) == [
        {"text": "user queries (sft)", "words": 3},  # the content, tags parsed off
        {"text": "user queries (dpo)", "words": 1},
        {"text": "VBench short prompts", "words": 2},
        {"text": "GPT-4o expansions", "words": 6},
    ]
    import matplotlib

    matplotlib.use("Agg")
    steps = [{"step": "read", "removed": 0, "remaining": 2}, {"step": "empty", "removed": 1, "remaining": 1}]
    for name, plot, rows in [
        ("steps", plot_filter_steps, steps),
        ("tags", plot_tags, tag_rows(kept)),
        ("lengths", plot_lengths, word_counts(kept, vbench)),
    ]:
        plot(rows, tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 0
