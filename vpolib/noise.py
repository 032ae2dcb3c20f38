"""Noise seeds: the starting noise each video is rendered from.

A seed is keyed by the run seed and the query id (never by a position in the run), so every method's video of a query
starts from the same noise, and a resumed or resharded run renders the same videos.
"""

from __future__ import annotations

import zlib


def video_seed(seed: int, query_id: str) -> int:
    """A stable per-query seed (not the position in the run): every video of a query, whichever prompt or
    method renders it and in whichever batch, starts from the same noise."""
    return (seed * 1_000_003 + zlib.crc32(query_id.encode())) % 2**31


def reward_seed(seed: int, query_id: str, index: int, round_: int = 1) -> int:
    """The noise of seed ``index`` for a query's videos in preference round ``round_``: keyed by query id, seed
    index and round (never by position), so a resumed run renders the same videos. Index 0 of round 1 is
    :func:`video_seed`, the one noise the paper's recipe renders with."""
    if index == 0 and round_ == 1:
        return video_seed(seed, query_id)
    return video_seed(seed, f"{query_id}#{index}@{round_}")
