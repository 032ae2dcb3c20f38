"""Evidence that ShapesWorld works: detector accuracy on ground truth, caption-vs-query pass rates."""

from __future__ import annotations

import copy
import random
from collections import defaultdict

from vpolib.shapesworld import generate
from vpolib.shapesworld.render import render
from vpolib.shapesworld.reward import checklist, score_video
from vpolib.shapesworld.world import CAPTION_MOTION, COLOURS, MOTIONS, SHAPES, SIZES, caption, sample_scene


def validation_cases(scene: dict) -> list[tuple[str, dict]]:
    """(query, expected answers) pairs for a scene: its caption (all yes), captions with one attribute
    changed (that object's questions no), a colourless description (yes), a ``-neg`` of an absent colour (yes) and of a present one (no)."""
    cases = [(caption(scene), {})]
    present = [o["colour"] for o in scene["objects"]]
    absent = [c for c in COLOURS if c not in present]
    for i, obj in enumerate(scene["objects"], 1):
        for attr, values in (("shape", SHAPES), ("motion", MOTIONS), ("size", SIZES), ("colour", absent)):
            for value in values:
                if value == obj[attr]:
                    continue
                wrong = copy.deepcopy(scene)
                wrong["objects"][i - 1][attr] = value
                expect = (
                    {f"o{i}_{k}": False for k in ("colour", "shape", "size", "motion")}
                    if attr == "colour"
                    else {f"o{i}_{attr}": False}
                )
                cases.append((caption(wrong), expect))
    if len(scene["objects"]) == 1:  # no colour named: the detector must find the object by itself
        obj = scene["objects"][0]
        cases.append((f"a {obj['shape']} that {CAPTION_MOTION[obj['motion']]}", {}))
    cases.append((caption(scene) + f" -neg {absent[0]}", {}))
    cases.append((caption(scene) + f" -neg {present[0]}", {f"neg_{present[0]}": False}))
    return cases


def validate_detectors(n: int = 200, seed: int = 0) -> dict[str, dict]:
    """Accuracy of every question kind on ground-truth rendered clips: {kind: {"correct", "total", "accuracy"}}."""
    rng = random.Random(f"shapesworld-validate-{seed}")
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for _ in range(n):
        scene = sample_scene(rng)
        video = render(scene)
        for query, expect in validation_cases(scene):
            answers = score_video(checklist(query), video)["answers"]
            for qid, got in answers.items():
                kind = (
                    "quality"
                    if qid.startswith("q_")
                    else (
                        "neg"
                        if qid.startswith("neg_")
                        else "background"
                        if qid == "background"
                        else qid.split("_", 1)[1]
                    )
                )
                tally[kind][0] += got == expect.get(qid, True)
                tally[kind][1] += 1
    return {k: {"correct": c, "total": t, "accuracy": c / t} for k, (c, t) in sorted(tally.items())}


def caption_vs_query(pipe, items: list[dict], seed: int, steps: int, guidance: float) -> list[dict]:
    """Generate each item's video from its caption and from its query (same starting noise) and score both
    with the checklist built from the query: the train/inference gap. One row per item."""
    by_caption = generate(pipe, [it["caption"] for it in items], seed, steps, guidance)  # [N, F, H, W, 3]
    by_query = generate(pipe, [it["query"] for it in items], seed, steps, guidance)
    rows = []
    for it, vc, vq in zip(items, by_caption, by_query, strict=True):
        questions = checklist(it["query"])
        sc, sq = score_video(questions, vc), score_video(questions, vq)
        rows.append(
            {
                "id": it["id"],
                "query": it["query"],
                "caption": it["caption"],
                "caption_pass": sc["score"] / sc["max_score"],
                "query_pass": sq["score"] / sq["max_score"],
                "caption_answers": sc["answers"],
                "query_answers": sq["answers"],
                "kinds": {q.id: q.kind for q in questions},
            }
        )
    return rows
