"""English function words: what every word-level text check here ignores (the judge's coverage check, the
VBench line alignment) or counts as evidence of English (the language flag of stage 01)."""

from __future__ import annotations

FUNCTION_WORDS = frozenset(
    """a an the of in on at with and or but is are was were be been to by from for its it his her their
this that these those into as over under while then than so very just also up down out about
there here who whom which what when where how i me my we our you your he she they them us not no""".split()
)
