"""One judge for the whole run: every notebook builds it with judge.build_judge, and its verdicts cover
ShapesWorld's vocabulary; judge validation rates on labelled items."""

import json

import pytest

from vpolib.config import load_config
from vpolib.judge import build_judge
from vpolib.paths import NOTEBOOK_DIR
from vpolib.validation import validate, validation_items

ITEM = {
    "query": "scarlet block sliding right",
    "prompt": "A small red square moves from the left to the right on a black background, smooth and clear.",
}


def offline_cfg():
    return load_config("smoke", {"judge.use_models": False})


@pytest.mark.parametrize("nb", ["02_refine", "03_sft", "04_feedback", "05_dpo", "06_evaluate"])
def test_every_stage_builds_the_same_judge(nb):
    code = "\n".join(
        "".join(c["source"])
        for c in json.loads((NOTEBOOK_DIR / f"{nb}.ipynb").read_text())["cells"]
        if c["cell_type"] == "code"
    )
    assert "build_judge(cfg" in code
    assert "RuleJudge(" not in code and "rule_judge(" not in code


def test_the_judge_knows_shapesworld_words():
    verdict = build_judge(offline_cfg()).judge([ITEM])[0]
    assert verdict.passed, verdict.reasons


def test_validation_rates_of_the_offline_checks():
    vbench = [
        {
            "query": f"a {a} dog running on the beach",
            "gpt4o": f"A {a} dog runs along a sunny beach, its ears "
            f"flapping as waves roll in behind it under a bright blue sky.",
            "wan": None,
        }
        for a in ("brown", "white", "black", "small", "fluffy", "happy")
    ]
    shapes = [
        {
            "query": "red ball going up",
            "caption": "A small red circle moves from the bottom to the top on a black background.",
        },
        {
            "query": "blue box bouncing",
            "caption": "A large blue square bounces up and down on a gray background.",
        },
    ]
    items = validation_items(vbench, shapes, per_kind=6, seed=0)
    kinds, rates = validate(build_judge(offline_cfg()), items)
    rates = rates.set_index("principle")
    assert rates.loc["harmless", "n_broken"] == 12
    # without the classifier only the lexicon sees harm: every lexicon sentence, no paraphrase
    by_kind = kinds.set_index("kind")
    assert by_kind.loc["harm_lexicon", "fails_harmless"] == 1.0
    assert by_kind.loc["harm_paraphrase", "fails_harmless"] == 0.0
    assert by_kind.loc["neg_item", "fails_aligned"] == 1.0  # the -neg word is in the prompt by construction
    assert by_kind.loc["caption", "passed_all"] == 1.0
    assert by_kind.loc["other_caption", "fails_aligned"] == 1.0
