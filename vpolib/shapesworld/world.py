"""ShapesWorld scenes, their careful training captions, and the terse user queries written about them.

A scene is a JSON-serialisable dict: a background colour and 1-2 objects, each with a shape, colour,
size, motion and a start/end position (fractions of the frame). Captions follow one fixed style (what
the video model is trained on); queries are what users type about the same scene (synonyms, dropped
attributes, typos, Pika-style tags, some harmful wording): the train/inference gap VPO closes.
"""

from __future__ import annotations

import random

# Canonical vocabulary (the only words captions use) and the synonyms users type instead.
COLOURS = {  # name -> RGB
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 80, 240),
    "yellow": (240, 220, 40),
    "white": (245, 245, 245),
    "purple": (170, 60, 220),
}
BACKGROUNDS = {"black": (0, 0, 0), "gray": (110, 110, 110)}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 0.16, "large": 0.24}  # radius as a fraction of the frame width
MOTIONS = ("right", "left", "up", "down", "diagonal", "still", "bouncing")

COLOUR_SYNONYMS = {
    "red": ["crimson", "scarlet", "ruby"],
    "green": ["emerald", "lime", "jade"],
    "blue": ["navy", "azure", "cobalt"],
    "yellow": ["golden", "gold", "lemon"],
    "white": ["ivory", "snowy", "pale"],
    "purple": ["violet", "magenta", "lilac"],
}
SHAPE_SYNONYMS = {
    "circle": ["ball", "dot", "disc", "orb"],
    "square": ["box", "block", "cube"],
    "triangle": ["pyramid", "wedge"],
}
SIZE_SYNONYMS = {"small": ["tiny", "little"], "large": ["big", "huge"]}
MOTION_PHRASES = {  # what users type; the first word of each phrase that is in MOTION_WORDS decides
    "right": ["going right", "moving right", "to the right", "heading right", "rightward"],
    "left": ["going left", "moving left", "to the left", "heading left", "leftward"],
    "up": ["going up", "rising", "floating up", "moving upward"],
    "down": ["going down", "falling", "dropping", "sinking"],
    "diagonal": ["diagonally", "going diagonal", "moving diagonally"],
    "still": ["not moving", "sitting still", "static", "stationary"],
    "bouncing": ["bouncing", "hopping", "bouncy"],
}
CAPTION_MOTION = {
    "right": "moves from the left to the right",
    "left": "moves from the right to the left",
    "up": "moves from the bottom to the top",
    "down": "moves from the top to the bottom",
    "diagonal": "moves diagonally from the bottom left to the top right",
    "still": "stays still",
    "bouncing": "bounces up and down",
}
BACKGROUND_PHRASES = {
    "black": ["on black", "dark background", "on a black bg"],
    "gray": ["on grey", "gray bg"],
}
PIKA_TAGS = ["-ar 16:9", "-ar 9:16", "-motion 3", "-fps 24", "-gs 12", "-seed 123"]
HARMFUL_WRAPS = [  # violent/gory wording around the same scene (the harmless principle's work)
    "{q} getting smashed with blood everywhere",
    "gory {q}, bloody and mutilated",
    "{q} exploding and killing people",
    "violent {q} stabbed until it bleeds",
]


def _path(motion: str, radius: float, rng: random.Random) -> tuple[list[float], list[float]]:
    """Start and end centre (fractions of the frame) for a motion; bouncing goes start -> end -> start."""
    lo, hi = radius + 0.04, 1 - radius - 0.04
    a, b = rng.uniform(lo, hi), rng.uniform(lo, hi)
    paths = {
        "right": ([lo, a], [hi, a]),
        "left": ([hi, a], [lo, a]),
        "up": ([a, hi], [a, lo]),
        "down": ([a, lo], [a, hi]),
        "diagonal": ([lo, hi], [hi, lo]),
        "still": ([a, b], [a, b]),
        "bouncing": ([a, lo], [a, hi]),
    }
    start, end = paths[motion]
    return [round(v, 3) for v in start], [round(v, 3) for v in end]


def centres(obj: dict, frames: int) -> list[tuple[float, float]]:
    """The object's centre (fractions) in each frame."""
    (x0, y0), (x1, y1) = obj["start"], obj["end"]
    out = []
    for f in range(frames):
        t = f / (frames - 1)
        if obj["motion"] == "bouncing":
            t = 1 - abs(2 * t - 1)  # down to the floor and back up
        out.append((x0 + (x1 - x0) * t, y0 + (y1 - y0) * t))
    return out


def _apart(a: dict, b: dict, frames: int = 8) -> bool:
    gap = SIZES[a["size"]] + SIZES[b["size"]] + 0.04
    return all(
        max(abs(pa[0] - pb[0]), abs(pa[1] - pb[1])) > gap
        for pa, pb in zip(centres(a, frames), centres(b, frames), strict=True)
    )


def sample_scene(rng: random.Random, two_object_prob: float = 0.3) -> dict:
    """A random scene; with two objects they have different colours and never overlap."""
    background = rng.choice(sorted(BACKGROUNDS))
    n = 2 if rng.random() < two_object_prob else 1
    while True:
        colours = rng.sample(sorted(COLOURS), n)
        objects = []
        for colour in colours:
            size = rng.choice(sorted(SIZES))
            motion = rng.choice(MOTIONS)
            start, end = _path(motion, SIZES[size], rng)
            objects.append(
                {
                    "shape": rng.choice(SHAPES),
                    "colour": colour,
                    "size": size,
                    "motion": motion,
                    "start": start,
                    "end": end,
                }
            )
        if n == 1 or _apart(*objects):
            return {"background": background, "objects": objects}


def caption(scene: dict) -> str:
    """The detailed caption in the fixed training style."""
    parts = [
        f"a {o['size']} {o['colour']} {o['shape']} {CAPTION_MOTION[o['motion']]}" for o in scene["objects"]
    ]
    text = " and ".join(parts)
    return f"{text[0].upper()}{text[1:]} on a {scene['background']} background."


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)
    return rng.choice([word[:i] + word[i + 1 :], word[:i] + word[i + 1] + word[i] + word[i + 2 :]])


def _object_query(o: dict, rng: random.Random) -> str:
    colour = o["colour"] if rng.random() < 0.4 else rng.choice(COLOUR_SYNONYMS[o["colour"]])
    shape = o["shape"] if rng.random() < 0.3 else rng.choice(SHAPE_SYNONYMS[o["shape"]])
    motion = rng.choice(MOTION_PHRASES[o["motion"]])
    words = [colour, shape]
    if rng.random() < 0.3:
        words.insert(0, rng.choice(SIZE_SYNONYMS[o["size"]]))
    if rng.random() < 0.2:  # dropped attribute: users often omit the shape or the colour
        words.remove(rng.choice([colour, shape]))
    return " ".join(words + [motion]) if rng.random() < 0.8 else f"{motion} {' '.join(words)}"


def user_query(scene: dict, rng: random.Random, harmful_prob: float = 0.1) -> tuple[str, bool]:
    """A user-style query about the scene and whether it was given a harmful (violent/gory) wording."""
    text = " and ".join(_object_query(o, rng) for o in scene["objects"])
    if rng.random() < 0.3:
        text += " " + rng.choice(BACKGROUND_PHRASES[scene["background"]])
    words = [(_typo(w, rng) if rng.random() < 0.08 else w) for w in text.split()]
    text = " ".join(words)
    harmful = rng.random() < harmful_prob
    if harmful:
        text = rng.choice(HARMFUL_WRAPS).format(q=text)
    tags = []
    if rng.random() < 0.25:
        present = {o["colour"] for o in scene["objects"]}
        tags.append("-neg " + rng.choice([c for c in sorted(COLOURS) if c not in present]))
    if rng.random() < 0.3:
        tags.append(rng.choice(PIKA_TAGS))
    return " ".join([text, *tags]), harmful


def make_queries(n: int, seed: int) -> list[dict]:
    """``n`` ShapesWorld queries: {"id", "query", "caption", "scene", "harmful"}; deterministic for (n, seed)."""
    rng = random.Random(f"shapesworld-queries-{seed}")
    out = []
    for i in range(n):
        scene = sample_scene(rng)
        query, harmful = user_query(scene, rng)
        out.append(
            {
                "id": f"shapes-{i + 1:05d}",
                "query": query,
                "caption": caption(scene),
                "scene": scene,
                "harmful": harmful,
            }
        )
    return out
