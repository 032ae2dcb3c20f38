"""A templated teacher for real user queries: the query's own words as the scene, then a setting sentence.

An offline stand-in for GPT-4o on the thousands of real queries of the SFT set, where SmolLM2-135M prompted
few-shot passes the judge on about one prompt in five. It keeps every content word of the query (typos and
all), removes what must go (harmful wording, format requests, "-neg" items), turns a ``-camera`` tag into a
camera sentence, and adds one or two sentences on light, motion and framing chosen from a small bank by the
kind of scene (people, animals, nature, city, objects; deterministic per query and seed). It never names a
subject, colour or place the user did not, so it cannot invent content; what it cannot do is make a scene
richer than the query: the bank is generic on purpose (scripts/teacher_eval.py measures it against the LLM
teachers on a dev sample of real queries).
"""

from __future__ import annotations

import hashlib
import re

from vpolib.safety_lexicon import harmful_terms
from vpolib.tags import negatives

# Leading requests that describe the asker, not the video ("create a video of ...", "prompt: ...").
_LEAD = re.compile(
    r"^\s*(?:prompt\s*:\s*|(?:please\s+)?(?:create|make|generate|render|show|produce)\s+(?:me\s+)?"
    r"(?:an?\s+)?(?:short\s+)?(?:(?:video|clip|animation|scene|film)\s+(?:of|about|showing|where|in which)\s+)?)",
    re.IGNORECASE,
)
# Format words a video prompt drops (critique rule 4): resolution, frame rate, aspect, length.
_FORMAT = re.compile(
    r"\b(?:\d+k|hd|uhd|full\s*hd|\d+\s*fps|\d+\s*p|\d+\s*(?:seconds?|secs?|s)\s+long|aspect ratio\s*\S+|"
    r"ratio\s*\d+\s*:\s*\d+|\d+\s*:\s*\d+|seed\s*\d+)\b",
    re.IGNORECASE,
)
KINDS = {  # a scene's kind, from its words (first match wins, in this order)
    "people": "man woman men women person people girl boy child children kid kids baby lady guy couple "
    "crowd dancer soldier warrior king queen prince princess he she they someone character hero student".split(),
    "animal": "dog dogs cat cats bird birds horse fish animal lion tiger bear wolf fox rabbit deer cow owl eagle "
    "dragon monkey elephant puppy kitten duck snake shark whale dolphin butterfly insect".split(),
    "nature": "forest ocean sea beach mountain mountains river lake sky sunset sunrise field tree trees flower "
    "flowers garden waterfall desert snow rain storm clouds island jungle meadow valley waves".split(),
    "city": "city street streets building buildings car cars train road town village market traffic bridge "
    "skyline tower castle house room office spaceship station".split(),
}
BANK = {  # one light/atmosphere sentence and one motion/framing sentence per kind, feasible in ~5 seconds
    "people": (
        [
            "Soft natural light falls on their faces, and their expressions and clothing are clearly visible.",
            "Warm, even lighting shapes the figures, with clear details in faces, hands and clothing.",
            "Gentle light from one side gives the scene depth, and every gesture reads clearly.",
        ],
        [
            "The camera holds a steady medium shot as the movement unfolds naturally over a few seconds.",
            "Their movements are smooth and lifelike, captured in one continuous shot.",
            "The action plays out at a natural pace, framed so the main figure stays in focus.",
        ],
    ),
    "animal": (
        [
            "Natural daylight brings out the texture of its body, with fine, lifelike detail.",
            "Soft light models its shape, and its eyes and outline stay sharp against the background.",
            "Clear, balanced light shows every detail of its form and surroundings.",
        ],
        [
            "It moves naturally and fluidly, and the camera follows it in one steady shot.",
            "The motion is smooth and believable, shown in a single continuous take over a few seconds.",
            "The camera stays close at eye level as the movement unfolds at a natural pace.",
        ],
    ),
    "nature": (
        [
            "The light is soft and natural, with rich colour and depth across the landscape.",
            "Atmospheric light spreads across the scene, giving it a calm, wide sense of space.",
            "Clear natural light reveals fine detail from the foreground to the horizon.",
        ],
        [
            "The camera glides slowly across the view in one smooth, continuous shot.",
            "Gentle motion runs through the scene as the camera holds a steady wide shot.",
            "The shot drifts slowly forward, keeping the whole scene in sharp focus.",
        ],
    ),
    "city": (
        [
            "The light picks out the shapes and surfaces of the scene with clear, crisp detail.",
            "Balanced light gives the setting depth, with sharp lines and visible textures.",
            "The scene is evenly lit, and its structures and surfaces are rendered in fine detail.",
        ],
        [
            "The camera moves slowly through the scene in a single steady shot.",
            "The motion is smooth and continuous, framed in a stable wide shot.",
            "A slow, steady camera movement reveals the layout of the scene over a few seconds.",
        ],
    ),
    "object": (
        [
            "Soft, even light shows the shapes, colours and textures in crisp detail.",
            "Clear light from one side gives the scene depth and brings out fine surface detail.",
            "The scene is well lit and sharply focused, with clean, vivid colours.",
        ],
        [
            "The movement is smooth and continuous, captured in one steady shot over a few seconds.",
            "The camera holds a stable close view as the action unfolds at a natural pace.",
            "A slow, steady camera movement keeps the main subject centred and in focus.",
        ],
    ),
}


# Words that show the query already says how the scene is lit, or how it is shot: its own words then win, and
# the bank adds no sentence that could contradict them ("dark light" next to "gentle light").
LIGHT_WORDS = set(
    "light lighting lit dark darkness night sunset sunrise dusk dawn shadow shadows neon glow glowing moonlight "
    "sunlight monochrome noir".split()
)
SHOT_WORDS = set(
    "camera shot pov aerial drone zoom pan tilt close closeup macro view angle tracking dolly footage".split()
)


def scene_kind(text: str) -> str:
    """The bank a query draws from: the first kind whose words it uses, else ``object``."""
    words = set(re.findall(r"[a-z]+", text.lower()))
    return next((kind for kind, vocab in KINDS.items() if words & set(vocab)), "object")


def clean_content(record: dict) -> str:
    """The query's content (tags already removed by 01) without requests, format words and harmful wording."""
    text = record.get("content") or record["query"]
    text = _LEAD.sub("", text)
    text = _FORMAT.sub(
        "\0", text
    )  # a mark where a word went, so the article before it can follow the next word
    for term in harmful_terms(text.replace("\0", " ")):
        text = re.sub(rf"\b{re.escape(term.split(':', 1)[1])}\b", "\0", text, flags=re.IGNORECASE)
    text = re.sub(  # "An 8k detailed portrait" -> "A detailed portrait"
        r"\b([Aa])n?\s+(?:\0\s*)+(?=([A-Za-z]))",
        lambda m: m.group(1) + ("n " if m.group(2) in "aeiouAEIOU" else " "),
        text,
    )
    text = re.sub(r"\s+", " ", text.replace("\0", " "))
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    text = re.sub(r"([,;:.])(?:\s*[,;:.])+", r"\1", text)
    return text.strip(" ,;:-")


def _camera(record: dict) -> str | None:
    value = next((t.get("value") for t in record.get("tags") or [] if t.get("name") == "camera"), None)
    return f"Camera movement: {value.strip().rstrip('.')}." if value and value.strip() else None


def _pick(options: list[str], key: str, avoid: list[str]) -> str | None:
    """One sentence of ``options``, chosen by ``key``'s hash; sentences naming an avoided item are skipped."""
    allowed = [s for s in options if not any(re.search(rf"\b{re.escape(a)}\b", s.lower()) for a in avoid)]
    if not allowed:
        return None
    return allowed[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(allowed)]


def compose_prompt(record: dict, seed: int = 0) -> str | None:
    """One prompt for one real query: its cleaned content as the first sentence, the ``-camera`` tag, then a
    light and a motion sentence for its kind of scene. None when nothing of the query is left to describe."""
    content = clean_content(record)
    if not re.search(r"[A-Za-z]{2}", content):
        return None
    first = content[0].upper() + content[1:]
    first = first if first[-1] in ".!?" else first + "."
    kind = scene_kind(content)
    light, motion = BANK[kind]
    avoid = negatives(record.get("tags"))
    key = f"{seed}:{record.get('id', record['query'])}"
    camera = _camera(record)
    words = set(re.findall(r"[a-z]+", content.lower()))
    light = None if words & LIGHT_WORDS else _pick(light, key + ":light", avoid)
    motion = None if words & SHOT_WORDS else _pick(motion, key + ":motion", avoid)
    parts = [first, light, camera or motion]
    return " ".join(p for p in parts if p)
