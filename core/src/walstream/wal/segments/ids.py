"""Segment ids: the allocator the interceptor calls when it creates a segment."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

SegmentIdAllocator = Callable[[int], Awaitable[int]]
"""Called with the timetick of the insert that needs a segment; returns a fresh segment id.

Production should pass the cluster's id allocator (Milvus asks RootCoord); the
default, :class:`TimetickSeededIds`, needs nothing but the TSO.
"""


class TimetickSeededIds:
    """Ids unique per WAL without any service: ``max(previous + 1, timetick)``.

    TSO timeticks only grow, also across WAL terms, so seeding from them keeps a
    reopened WAL's ids above the previous term's (as long as that term did not
    create more segments than its timeticks advanced, which a TSO's logical bits
    make practically impossible). Not unique across pchannels: use a cluster
    allocator when ids must be global.
    """

    def __init__(self, start: int = 0) -> None:
        self._last = start - 1

    async def __call__(self, timetick: int) -> int:
        """The next id: above every id handed out, and at least ``timetick``."""
        self._last = max(self._last + 1, timetick)
        return self._last
