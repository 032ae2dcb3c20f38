"""The rule refiner repairs in the prompt's own style: no raw query glued on, no typos copied, canonical
ShapesWorld words, harmful wording and -neg items removed; its repairs pass the judge."""

from vpolib.judge import RuleJudge
from vpolib.refine import RuleRefiner, weave
from vpolib.shapesworld.vocabulary import canonical_word, synonyms


def judge():
    return RuleJudge(synonyms=synonyms(), min_words=6)


def repair(item):
    j = judge()
    verdict = j.judge([item])[0]
    assert verdict.passed is False
    text, why = RuleRefiner().refine([item], [verdict])[0]
    return text, why, j.judge([{**item, "prompt": text}])[0]


def test_canonical_words():
    assert canonical_word("scarlet") == "red" and canonical_word("trianle") == "triangle"
    assert canonical_word("dog") == "dog" and canonical_word("dgoz") is None  # a typo: not a known word
    assert canonical_word("cube", world=False) == "cube"  # real queries keep their words


def test_weave_adds_a_clause_to_the_first_sentence():
    assert weave("A dog runs. The sun sets.", ["red ball"]) == "A dog runs, with red ball. The sun sets."


def test_missing_content_is_woven_in_canonically():
    item = {
        "query": "purple trianle and scarlet block going right",
        "source": "shapes",
        "prompt": "A violet wedge drifts gracefully toward the right edge of a calm and quiet scene.",
    }
    text, why, again = repair(item)
    assert why == "ok" and again.passed, (text, again.reasons)
    assert not text.lower().startswith("purple trianle") and "trianle" not in text
    assert "red square" in text and text.startswith("A violet wedge")


def test_harmful_words_and_neg_items_are_removed():
    item = {
        "query": "a cat playing with yarn, bloody and gory -neg red",
        "tags": [{"name": "neg", "value": "red", "kind": "content"}],
        "harmful_terms": ["violence:gory"],
        "prompt": "A gory scene where a cat plays with a red ball of yarn on a wooden floor in warm light.",
    }
    text, _, again = repair(item)
    assert "gory" not in text.lower() and " red " not in f" {text.lower()} "
    assert again.principles["harmless"] and "aligned:neg_present" not in again.reasons


def test_a_contradicted_shapesworld_prompt_is_rewritten_in_world_words():
    item = {
        "query": "cobalt sqaure moving right on grey",
        "content": "cobalt sqaure moving right on grey",
        "source": "shapes",
        "prompt": "A cobalt square moves from the right to the left, casting a subtle shadow.",
    }
    text, why, again = repair(item)
    assert why == "ok" and again.passed, (text, again.reasons)
    assert text == "A blue square moves from the left to the right on a gray background."


def test_the_world_check_reads_synonyms_and_paraphrases_but_not_reversals():
    j = judge()
    item = {"query": "scarlet blok going right", "source": "shapes"}
    ok, reversed_ = j.judge(
        [
            {**item, "prompt": "A crimson cube glides steadily rightward."},  # synonyms: the judge reads them
            {**item, "prompt": "A red square moves from the right to the left."},
        ]
    )
    assert ok.passed and not reversed_.principles["aligned"] and reversed_.details["missing"] == ["right"]
