"""A VisionReward-style checklist reward for ShapesWorld videos.

``checklist(query)`` turns the query's text content (colours incl. synonyms, shapes, sizes, motion, the
background, ``-neg`` items) into yes/no questions plus two quality items; ``score_video`` answers each with
pixel detectors (colour masks, connected components, centroid tracks) and sums the weights of the yes
answers. Weights: colour / object presence 2, motion 2, shape 1, ``-neg`` item absent 1, size 0.5,
background 0.5, each quality item 0.5 (what the query is about counts more than how it looks).
"""

from __future__ import annotations

import re
import warnings

import numpy as np
from scipy import ndimage

from vpolib.checklist import Question
from vpolib.shapesworld.world import (
    BACKGROUNDS,
    COLOUR_SYNONYMS,
    COLOURS,
    SHAPE_SYNONYMS,
    SIZE_SYNONYMS,
    SIZES,
)
from vpolib.tags import negatives, parse_tags

WEIGHTS = {
    "colour": 2.0,
    "object": 2.0,
    "motion": 2.0,
    "shape": 1.0,
    "neg": 1.0,
    "size": 0.5,
    "background": 0.5,
    "quality": 0.5,
}
COLOUR_WORDS = {w: c for c, syn in COLOUR_SYNONYMS.items() for w in [c, *syn]}
SHAPE_WORDS = {w: s for s, syn in SHAPE_SYNONYMS.items() for w in [s, *syn]}
SIZE_WORDS = {w: s for s, syn in SIZE_SYNONYMS.items() for w in [s, *syn]}
BACKGROUND_WORDS = {"black": "black", "dark": "black", "gray": "gray", "grey": "gray", "slate": "gray"}
MOTION_PATTERNS = [  # first match wins; captions' "from the left to the right" is handled before bare words
    ("bouncing", r"\bbounc\w*|\bhop\w*|\bup and down\b"),
    ("diagonal", r"\bdiagonal\w*"),
    ("still", r"\bstill\b|\bstatic\b|\bstationary\b|\bnot moving\b|\bmotionless\b|\bin place\b"),
    ("right", r"\bto the right\b|\bfrom the left\b"),
    ("left", r"\bto the left\b|\bfrom the right\b"),
    ("up", r"\bto the top\b|\bfrom the bottom\b"),
    ("down", r"\bto the bottom\b|\bfrom the top\b"),
    ("right", r"\bright\w*"),
    ("left", r"\bleft\w*"),
    ("up", r"\bup\b|\bupward\w*|\bris\w*|\bfloat\w*|\bclimb\w*"),
    ("down", r"\bdown\w*|\bfall\w*|\bdrop\w*|\bsink\w*|\bdescend\w*"),
]
SHAPE_AREA = {"circle": np.pi, "square": 1.7**2, "triangle": 2.0}  # area / radius**2, as rendered
MIN_AREA = 3  # pixels: a colour blob smaller than this is noise, not an object


def parse_objects(content: str) -> tuple[list[dict], str | None]:
    """The objects a text describes ({colour, shape, size, motion}, each possibly None) and its background."""
    text = content.lower().replace("up and down", "up_and_down")  # one word for the split below
    background = None
    m = re.search(
        r"\b(black|dark|gray|grey|slate)\s+(?:background|bg|backdrop|void)\b|\bon (?:a )?(black|gray|grey)\b",
        text,
    )
    if m:
        background = BACKGROUND_WORDS[m.group(1) or m.group(2)]
        text = text[: m.start()] + text[m.end() :]
    objects = []
    for segment in re.split(r"\band\b|,|;|\bwhile\b|\bwith\b", text):
        segment = segment.replace("up_and_down", "up and down")
        words = re.findall(r"[a-z]+", segment)
        obj = {
            "colour": next((COLOUR_WORDS[w] for w in words if w in COLOUR_WORDS), None),
            "shape": next((SHAPE_WORDS[w] for w in words if w in SHAPE_WORDS), None),
            "size": next((SIZE_WORDS[w] for w in words if w in SIZE_WORDS), None),
            "motion": next((name for name, pat in MOTION_PATTERNS if re.search(pat, segment)), None),
        }
        if obj["colour"] or obj["shape"]:
            objects.append(obj)
        elif objects and obj["motion"] and not objects[-1]["motion"]:  # "red ball and going right"
            objects[-1]["motion"] = obj["motion"]
    return objects, background


def checklist(query: str) -> list[Question]:
    """The yes/no questions a video for ``query`` should pass (content items, then quality items)."""
    parsed = parse_tags(query)
    objects, background = parse_objects(parsed.content)
    questions = []
    for i, o in enumerate(objects, 1):
        name = " ".join(v for v in (o["colour"], o["shape"] or "object") if v)
        target = dict(o)
        if o["colour"]:
            questions.append(
                Question(
                    f"o{i}_colour", f"Is there a {o['colour']} object?", WEIGHTS["colour"], "colour", target
                )
            )
        else:
            questions.append(
                Question(f"o{i}_object", f"Is there a {name}?", WEIGHTS["object"], "object", target)
            )
        if o["shape"]:
            questions.append(
                Question(
                    f"o{i}_shape",
                    f"Is the {o['colour'] or 'main'} object a {o['shape']}?",
                    WEIGHTS["shape"],
                    "shape",
                    target,
                )
            )
        if o["size"]:
            questions.append(
                Question(f"o{i}_size", f"Is the {name} {o['size']}?", WEIGHTS["size"], "size", target)
            )
        if o["motion"]:
            questions.append(
                Question(
                    f"o{i}_motion",
                    f"Does the {name} move {o['motion']}?",
                    WEIGHTS["motion"],
                    "motion",
                    target,
                )
            )
    if background:
        questions.append(
            Question(
                "background",
                f"Is the background {background}?",
                WEIGHTS["background"],
                "background",
                {"background": background},
            )
        )
    for item in negatives(parsed.tags):
        for word in re.findall(r"[a-z]+", item):
            item = {"colour": COLOUR_WORDS.get(word), "shape": SHAPE_WORDS.get(word)}
            if item["colour"] or item["shape"]:
                questions.append(
                    Question(f"neg_{word}", f"Is there no {word} in the video?", WEIGHTS["neg"], "neg", item)
                )
    questions.append(
        Question(
            "q_stable", "Is the video free of flicker?", WEIGHTS["quality"], "quality", {"check": "stable"}
        )
    )
    questions.append(
        Question(
            "q_intact",
            "Is every object in one piece and sharp?",
            WEIGHTS["quality"],
            "quality",
            {"check": "intact"},
        )
    )
    return questions


# ---- detectors -------------------------------------------------------------------------------------------

_NAMES = list(COLOURS) + [f"bg:{b}" for b in BACKGROUNDS]
_PALETTE = np.array(list(COLOURS.values()) + list(BACKGROUNDS.values()), dtype=np.float32)  # [K, 3]


def background_of(video: np.ndarray) -> str:
    """The background colour: the named background nearest the median border pixel."""
    border = np.concatenate([video[:, 0], video[:, -1], video[:, :, 0], video[:, :, -1]]).reshape(-1, 3)
    med = np.median(border.astype(np.float32), axis=0)
    return min(BACKGROUNDS, key=lambda b: float(np.sum((np.array(BACKGROUNDS[b]) - med) ** 2)))


def colour_labels(video: np.ndarray) -> np.ndarray:
    """Per pixel, the index into _NAMES of the nearest named colour, or -1 if none is within reach. [F, H, W]"""
    dist = np.linalg.norm(video[..., None, :].astype(np.float32) - _PALETTE, axis=-1)  # [F, H, W, K]
    labels = dist.argmin(-1)
    labels[dist.min(-1) > 120] = -1
    return labels


def _largest(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a 2-D mask (empty if none)."""
    lab, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return mask
    sizes = ndimage.sum(mask, lab, range(1, n + 1))
    return lab == (int(np.argmax(sizes)) + 1)


def coverage(frame: np.ndarray, mask: np.ndarray, colour: str, background: str) -> np.ndarray:
    """Sub-pixel coverage of a blob: each pixel near it projected onto the background->colour line. [H, W]"""
    bg = np.array(BACKGROUNDS[background], dtype=np.float32)
    direction = np.array(COLOURS[colour], dtype=np.float32) - bg
    t = ((frame.astype(np.float32) - bg) @ direction) / float(direction @ direction)
    labels = colour_labels(frame[None])[0]
    other = (labels >= 0) & (labels < len(COLOURS)) & ~mask  # another object's pixels never count
    near = ndimage.binary_dilation(mask) & ~other  # faint edge pixels read as background but carry coverage
    return np.clip(t, 0, 1) * near


def shape_of(cover: np.ndarray) -> str:
    """Classify a blob from its coverage [H, W]: triangles (apex up) have skewed row mass; a square fills the
    box spanned by its widest row and tallest column, a circle pi/4 of it (sub-pixel exact at 16 px)."""
    area = cover.sum()
    ys = np.arange(cover.shape[0])
    rows = cover.sum(1)
    mean = (rows * ys).sum() / area
    sd = np.sqrt((rows * (ys - mean) ** 2).sum() / area) + 1e-6
    skew = (rows * (ys - mean) ** 3).sum() / area / sd**3
    if skew < -0.3:
        return "triangle"
    return "square" if area / (cover.sum(0).max() * rows.max()) > 0.89 else "circle"


def motion_of(track: np.ndarray) -> str:
    """Classify a centroid track [F, 2] (x, y as fractions; y grows downwards)."""
    disp = track - track[0]
    reach = np.abs(disp).max(axis=0)  # furthest excursion on each axis
    dx, dy = disp[-1]
    if reach.max() < 0.12:
        return "still"
    if np.hypot(dx, dy) < 0.15 and reach[1] > 0.2:
        return "bouncing"
    if dx > 0.2 and dy < -0.2:
        return "diagonal"
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "up" if dy < 0 else "down"


def track_object(video: np.ndarray, colour: str | None) -> dict | None:
    """Per-frame largest blob of the colour (any object colour when None): centroid track [F', 2], median
    radius (fraction of the frame), majority shape; None when it is missing in over a quarter of frames."""
    labels = colour_labels(video)
    background = background_of(video)
    res = video.shape[1]
    track, areas, shapes = [], [], []
    for frame, lab in zip(video, labels, strict=True):
        if colour is None:
            objects = (lab >= 0) & (lab < len(COLOURS))
            blob = _largest(objects)
            name = _NAMES[int(np.bincount(lab[blob]).argmax())] if blob.any() else None
        else:
            name = colour
            blob = _largest(lab == _NAMES.index(colour))
        if blob.sum() < MIN_AREA:
            continue
        cover = coverage(frame, blob, name, background)
        track.append(np.argwhere(blob).mean(0)[::-1] / res)
        areas.append(cover.sum() / res**2)
        shapes.append(shape_of(cover))
    if len(track) < 0.75 * len(video):
        return None
    # on a tie the shape seen first (the order of a set of strings varies with PYTHONHASHSEED)
    shape = max(dict.fromkeys(shapes), key=shapes.count)
    radius = float(np.sqrt(np.median(areas) / SHAPE_AREA[shape]))  # the renderer's size unit, shape-free
    return {"track": np.array(track), "radius": radius, "shape": shape}


def _quality(video: np.ndarray, check: str) -> bool:
    labels = colour_labels(video)
    fg = (labels >= 0) & (labels < len(COLOURS))  # [F, H, W]
    counts = fg.reshape(len(fg), -1).sum(1)
    if counts.min() < MIN_AREA:
        return False
    if check == "stable":  # the amount of foreground should not jump from frame to frame
        return counts.max() / counts.min() <= 1.6
    for f in range(len(video)):  # intact: each colour is one blob, and sharp: some pixels hit the colour
        dist = np.linalg.norm(video[f].astype(np.float32)[..., None, :] - _PALETTE[: len(COLOURS)], axis=-1)
        for k in range(len(COLOURS)):
            mask = labels[f] == k
            if mask.sum() < MIN_AREA:
                continue
            if _largest(mask).sum() < 0.85 * mask.sum() or (dist[..., k][mask] < 60).sum() < 0.3 * mask.sum():
                return False
    return True


def answer(question: Question, video: np.ndarray, cache: dict | None = None) -> bool:
    """Answer one question on a clip [F, H, W, 3] uint8 (``cache`` shares object tracks between questions)."""
    cache = {} if cache is None else cache
    t = question.target
    if question.kind == "quality":
        return _quality(video, t["check"])
    if question.kind == "background":
        return background_of(video) == t["background"]
    if question.kind == "neg":
        if t.get("colour"):
            return track_object(video, t["colour"]) is None
        obj = track_object(video, None)
        return obj is None or obj["shape"] != t["shape"]
    key = t.get("colour")
    if key not in cache:
        cache[key] = track_object(video, key)
    obj = cache[key]
    if obj is None:
        return False
    if question.kind in ("colour", "object"):
        return True
    if question.kind == "shape":
        return obj["shape"] == t["shape"]
    if question.kind == "size":
        return (obj["radius"] > np.mean(list(SIZES.values()))) == (t["size"] == "large")
    if question.kind == "motion":
        return motion_of(obj["track"]) == t["motion"]
    raise ValueError(f"unknown question kind {question.kind!r}")


def score_video(questions: list[Question], video: np.ndarray) -> dict:
    """``{"answers": {qid: bool}, "score": weighted yes, "max_score": total weight}`` for a clip [F, H, W, 3]."""
    cache: dict = {}
    answers = {q.id: bool(answer(q, video, cache)) for q in questions}
    score = sum(q.weight for q in questions if answers[q.id])
    return {"answers": answers, "score": float(score), "max_score": float(sum(q.weight for q in questions))}


def warn_if_constant(scores: list[float], what: str = "video scores") -> bool:
    """Warn loudly (and return True) when every score in a batch is the same: the known VisionReward failure
    where every answer is silently 'no' and the reward carries no signal."""
    if len(scores) > 1 and len(set(np.round(scores, 6))) == 1:
        warnings.warn(
            f"ALL {len(scores)} {what} are identical ({scores[0]}): the reward carries no signal; "
            "check the detectors and the generated videos",
            RuntimeWarning,
            stacklevel=2,
        )
        return True
    return False
