"""Pika/Midjourney-style tags in user queries: ``-neg blur -camera zoom in -ar 16:9 -motion 2``.

VPO's critique prompt asks the optimizer to follow ``-xxx`` content constraints, avoid ``-neg``
items, and ignore format-only tags. So each tag is classed ``content`` or ``format``.
Only known tag names count, so hyphenated words (``sci-fi``, ``close-up``) are never tags.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

NUMBER = r"\d+(?:\.\d+)?"
# Tags whose value is a single token; the pattern is what a valid value looks like.
VALUE_TAGS = {
    "ar": r"\d+\s*:\s*\d+",  # aspect ratio
    "motion": NUMBER,  # Pika motion strength
    "gs": NUMBER,  # guidance scale
    "fps": NUMBER,
    "seed": r"\d+",
    "v": NUMBER,  # Midjourney model version
    "q": NUMBER,
    "s": NUMBER,
    "chaos": NUMBER,
    "stylize": NUMBER,
    "iw": NUMBER,
    "quality": NUMBER,
    "w": NUMBER,  # width
    "h": NUMBER,  # height
}
# Tags whose value is free text up to the next tag.
TEXT_TAGS = {"neg", "no", "camera", "style"}
CONTENT_TAGS = {"neg", "no", "camera", "motion"}  # what the prompt must honour
NEGATIVE_TAGS = {"neg", "no"}  # items the prompt must avoid

_CANDIDATE = re.compile(r"(-{1,2})([A-Za-z]+)")


@dataclass
class Tag:
    name: str
    value: str | None
    kind: str  # "content" | "format"
    raw: str


@dataclass
class ParsedQuery:
    content: str  # the query with every tag removed
    tags: list[Tag] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def negatives(self) -> list[str]:
        """Items the user asked to avoid (``-neg a, b`` -> ``["a", "b"]``)."""
        return negatives(self.tags)

    def tag_dicts(self) -> list[dict]:
        return [{k: v for k, v in asdict(t).items() if k != "raw"} for t in self.tags]


def negatives(tags: list[Tag] | list[dict] | None) -> list[str]:
    """Items of ``-neg``/``-no`` tags, lower-cased: ``-neg Blur, "text"`` -> ``["blur", "text"]``.

    ``tags``: :class:`Tag` objects or their dicts (as records store them, :meth:`ParsedQuery.tag_dicts`).
    """
    out = []
    for tag in tags or []:
        name, value = (tag.get("name"), tag.get("value")) if isinstance(tag, dict) else (tag.name, tag.value)
        if name in NEGATIVE_TAGS and value:
            items = (x.strip().strip("\"'").strip().lower() for x in re.split(r"[,;]", value))
            out += [x for x in items if x]
    return out


def _starts(query: str) -> list[tuple[int, int, str]]:
    """(start, end_of_name, name) of every accepted tag start."""
    found = []
    for m in _CANDIDATE.finditer(query):
        name = m.group(2).lower()
        if name not in VALUE_TAGS and name not in TEXT_TAGS:
            continue
        before = query[m.start() - 1] if m.start() > 0 else " "
        if before == "-":
            continue  # '---x' or a dash run: not a tag
        attached = not before.isspace() and before not in ",;([{\"'"
        after = query[m.end() :]
        if attached:
            # 'challenges-ar 16:9' is a tag, 'cartoon-style' is not: glued tags need a valid value.
            if name not in VALUE_TAGS or not re.match(rf"\s*(?:{VALUE_TAGS[name]})", after):
                continue
        found.append((m.start(), m.end(), name))
    return found


_UNICODE_DASH = re.compile(r"[\u2010-\u2015\u2212](?=[A-Za-z])")


def parse_tags(query: str) -> ParsedQuery:
    """Split a query into its content and its tags (with warnings for dangling or malformed tags)."""
    query = _UNICODE_DASH.sub("-", query)  # '–neg' typed on phones and word processors
    starts = _starts(query)
    tags, warnings, spans = [], [], []
    for i, (start, name_end, name) in enumerate(starts):
        limit = starts[i + 1][0] if i + 1 < len(starts) else len(query)
        rest = query[name_end:limit]
        kind = "content" if name in CONTENT_TAGS else "format"
        if name in VALUE_TAGS:
            m = re.match(rf"\s*({VALUE_TAGS[name]})", rest)
            if m:
                value, end = re.sub(r"\s+", "", m.group(1)), name_end + m.end()
            else:
                value, end = None, name_end
                warnings.append(f"-{name} without a valid value")
        else:
            value = rest.strip().strip(",;.").strip() or None
            end = limit
            if value is None:
                warnings.append(f"dangling -{name}")
        tags.append(Tag(name, value, kind, query[start:end].strip()))
        spans.append((start, end))
    pieces, pos = [], 0
    for start, end in spans:
        pieces.append(query[pos:start])
        pos = end
    pieces.append(query[pos:])
    content = re.sub(r"\s+", " ", " ".join(pieces)).strip()
    content = re.sub(r"\s+([,.;:!?])", r"\1", content).strip(" ,;")
    seen = set()
    for tag in tags:
        if tag.name in seen and tag.name not in NEGATIVE_TAGS:  # repeated -neg items just add up
            warnings.append(f"-{tag.name} given more than once")
        seen.add(tag.name)
    return ParsedQuery(content, tags, warnings)
