"""The templated teacher for real queries (vpolib.compose): hand-made queries, expected prompts."""

from vpolib.compose import clean_content, compose_prompt, scene_kind
from vpolib.data import annotate
from vpolib.judge import RuleJudge


def record(query: str) -> dict:
    return annotate({"id": "q1", "raw": query, "source": "sft"}, max_chars=600)


def test_keeps_every_word_and_drops_format_words():
    r = record("An 8k portrait of an old fisherman mending nets, 4k hd -ar 16:9")
    assert (
        clean_content(r) == "A portrait of an old fisherman mending nets"
    )  # "An 8k portrait" -> "A portrait"
    prompt = compose_prompt(r, seed=0)
    assert prompt.startswith("A portrait of an old fisherman mending nets.")
    assert "16:9" not in prompt and "8k" not in prompt and "hd" not in prompt.lower().split()


def test_requests_are_removed_and_the_camera_tag_becomes_a_sentence():
    r = record("Create a video of a red fox in snow -camera zoom in")
    prompt = compose_prompt(r, seed=0)
    assert prompt.startswith("A red fox in snow.")
    assert prompt.endswith("Camera movement: zoom in.")


def test_harmful_words_and_neg_items_are_left_out():
    r = record("a soldier stabbing a man in an alley -neg detail")
    prompt = compose_prompt(r, seed=0).lower()
    assert "stabbing" not in prompt and "soldier" in prompt and "alley" in prompt
    assert "detail" not in prompt  # bank sentences naming a -neg item are skipped


def test_the_query_says_how_it_is_lit_so_no_light_sentence_is_added():
    r = record("a lighthouse at night, dark and stormy")
    assert compose_prompt(r, seed=0) == (
        "A lighthouse at night, dark and stormy. "
        + compose_prompt(record("a lighthouse at night, dark and stormy"), seed=0).split(". ", 1)[1]
    )
    assert "light" not in compose_prompt(r, seed=0).split(". ", 1)[1].lower().replace("lighthouse", "")


def test_kind_seed_and_empty_query():
    assert scene_kind("two cats on a sofa") == "animal"
    assert scene_kind("a woman walks her dog") == "people"  # first kind in order wins
    assert scene_kind("a teapot") == "object"
    r = record("a teapot on a table")
    assert compose_prompt(r, seed=1) == compose_prompt(r, seed=1)  # deterministic per query and seed
    assert len({compose_prompt(r, seed=s) for s in range(12)}) > 1  # the seed varies the sentences
    assert compose_prompt(record("4k hd"), seed=0) is None


def test_the_rule_judge_passes_a_composed_prompt_and_fails_the_short_query():
    judge = RuleJudge()  # no classifier or embedder: coverage, length, style only
    r = record("a boy flies a kite on a windy beach")
    verdicts = judge.judge([{**r, "prompt": compose_prompt(r, seed=0)}, {**r, "prompt": r["query"]}])
    assert verdicts[0].passed and verdicts[0].details["coverage"] == 1.0
    assert verdicts[1].reasons == ["helpful:too_short"]
