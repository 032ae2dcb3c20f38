"""A ShapesWorld teacher that fails like a real one.

The paper's teacher (GPT-4o) writes fluent prompts without knowing what the video model renders well.
This teacher reads only the user's query (never the scene) and writes a vivid prompt that a text judge
will mostly pass, with the failure modes LLM rewriters have, each at its own rate:

- ``synonym``: an attribute in words the video model never saw in training ("crimson orb" for "red circle");
- ``motion_paraphrase``: motion in free words ("drifts gracefully toward the right edge");
- ``padding``: a scene-setting opening that pushes the key words past the text encoder's 32-token window;
- ``detail``: unrequested decoration ("with a soft glow");
- ``drop``: an attribute of the query left out;
- ``invent``: an attribute the query did not ask for (a size).

Deterministic per (seed, query): the same query always gets the same prompt.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass

from vpolib.shapesworld.reward import parse_objects
from vpolib.shapesworld.world import CAPTION_MOTION, COLOUR_SYNONYMS, SHAPE_SYNONYMS, SIZE_SYNONYMS
from vpolib.tags import parse_tags

MOTION_PARAPHRASES = {
    "right": [
        "drifts gracefully toward the right edge",
        "glides steadily rightward",
        "travels across to the right",
    ],
    "left": [
        "drifts gracefully toward the left edge",
        "glides steadily leftward",
        "travels across to the left",
    ],
    "up": ["rises slowly toward the top", "floats gently upward", "climbs smoothly upward"],
    "down": ["sinks slowly toward the bottom", "drops gently downward", "descends smoothly"],
    "diagonal": [
        "glides diagonally across the frame",
        "travels on a diagonal path",
        "sweeps diagonally upward",
    ],
    "still": ["rests motionless", "remains perfectly static", "sits calmly in place"],
    "bouncing": ["hops playfully up and down", "bounces with a lively rhythm", "springs up and down"],
}
PADDING = [
    "In a clean and minimalist animated scene with soft studio lighting, gentle shadows and a calm steady camera",
    "Captured in a smooth, high quality animation with crisp edges, balanced colors and a peaceful, simple atmosphere",
    "Set in a tranquil abstract space rendered with soft diffuse light, subtle depth and a slow, steady framing",
]
DETAILS = [
    "with a soft glow",
    "leaving a faint trail behind it",
    "with a smooth glossy surface",
    "casting a subtle shadow",
]
BACKGROUND_SYNONYMS = {  # backdrops in words the video model never saw (the "synonym" failure mode)
    "black": ["dark backdrop", "deep black void"],
    "gray": ["muted grey backdrop", "slate backdrop"],
}


@dataclass(frozen=True)
class TeacherRates:
    """Probability of each failure mode (per attribute for synonyms, per prompt otherwise)."""

    synonym: float = 0.45
    motion_paraphrase: float = 0.4
    padding: float = 0.35
    detail: float = 0.4
    drop: float = 0.1
    invent: float = 0.15


def _word(
    canonical: str, synonyms: dict[str, list[str]], p: float, rng: random.Random, used: list[str]
) -> str:
    if rng.random() < p:
        used.append("synonym")
        return rng.choice(synonyms[canonical])
    return canonical


def teacher_prompt(query: str, seed: int = 0, rates: TeacherRates | None = None) -> tuple[str, list[str]]:
    """A fluent prompt for a ShapesWorld query and the failure modes it contains (possibly none)."""
    rates = rates or TeacherRates()
    rng = random.Random(zlib.crc32(f"{seed}|{query}".encode()))
    # -neg items are honoured by not naming them; format tags are dropped
    objects, background = parse_objects(parse_tags(query).content)
    used: list[str] = []
    drop = rng.random() < rates.drop and objects
    phrases = []
    for i, o in enumerate(objects):
        o = dict(o)
        if drop and i == 0:
            attr = rng.choice([a for a in ("colour", "motion", "shape") if o[a]] or ["colour"])
            o[attr] = None
            used.append("drop")
        if not o["size"] and rng.random() < rates.invent:
            o["size"] = rng.choice(["small", "large"])
            used.append("invent")
        words = ["a"]
        if o["size"]:
            words.append(_word(o["size"], SIZE_SYNONYMS, rates.synonym, rng, used))
        if o["colour"]:
            words.append(_word(o["colour"], COLOUR_SYNONYMS, rates.synonym, rng, used))
        words.append(_word(o["shape"], SHAPE_SYNONYMS, rates.synonym, rng, used) if o["shape"] else "shape")
        if o["motion"]:
            if rng.random() < rates.motion_paraphrase:
                words.append(rng.choice(MOTION_PARAPHRASES[o["motion"]]))
                used.append("motion_paraphrase")
            else:
                words.append(CAPTION_MOTION[o["motion"]])
        if rng.random() < rates.detail:
            words.append(rng.choice(DETAILS))
            used.append("detail")
        phrases.append(" ".join(words))
    if not phrases:
        phrases = ["a simple shape moves across the frame"]
    text = " and ".join(phrases)
    if background:
        if rng.random() < rates.synonym:
            text += f" against a {rng.choice(BACKGROUND_SYNONYMS[background])}"
            used.append("synonym")
        else:
            text += f" on a {background} background"
    if rng.random() < rates.padding:
        text = f"{rng.choice(PADDING)}, {text}"
        used.append("padding")
    text = text[0].upper() + text[1:] + "."
    return text, sorted(set(used))
