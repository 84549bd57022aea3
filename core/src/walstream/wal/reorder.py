"""Reorder buffer: messages in log order in, messages in timetick order out.

Appends run concurrently, so a backend stores messages in id order while their
TSO timeticks may be out of order. A TimeTick ``tt`` promises that every message
with a timetick <= ``tt`` has already been written; the scanner pushes messages
here and, on each TimeTick, pops everything up to it in timetick order.
"""

from __future__ import annotations

import enum
import heapq
import itertools

from walstream.message import ImmutableMessage

__all__ = ["PushResult", "ReorderBuffer"]


class PushResult(enum.Enum):
    """What :meth:`ReorderBuffer.push` did with a message."""

    ACCEPTED = "accepted"
    """Held until a ``pop_until`` reaches its timetick."""
    DUPLICATE = "duplicate"
    """A message with the same id is already held; dropped."""
    TIMETICK_VIOLATION = "timetick_violation"
    """Its timetick was already released; dropped (delivering it would break the order)."""


class ReorderBuffer:
    """Holds messages in a heap by ``(timetick, arrival)`` until a timetick releases them.

    Not self-limiting: it can only drain on a TimeTick, which arrives through the
    same upstream, so refusing pushes would deadlock the scanner. It reports
    ``len()`` and ``bytes`` instead; between two TimeTicks (200 ms by default) it
    holds at most what was written in that window. Back-pressure belongs on the
    scanner's output queue. Single-task use; not thread-safe.
    """

    __slots__ = (
        "_arrival",
        "_bytes",
        "_duplicates",
        "_heap",
        "_ids",
        "_last_emitted",
        "_released",
        "_violations",
    )

    def __init__(self) -> None:
        # (timetick, arrival, size, message, sort key of its id)
        self._heap: list[tuple[int, int, int, ImmutableMessage, tuple[int, ...]]] = []
        self._arrival = itertools.count()
        # Why only the ids held now (as Milvus): duplicates come from switching
        # between the write-ahead buffer and the backend; one already popped is
        # caught by the timetick rule instead, so memory stays bounded.
        # By sort key: ids of one backend are equal exactly when their sort keys are, and a
        # tuple hashes in C (an id's own __hash__ is Python code, three calls per message).
        self._ids: set[tuple[int, ...]] = set()
        self._bytes = 0
        self._released = -1
        self._last_emitted = -1
        self._violations = 0
        self._duplicates = 0

    def push(self, message: ImmutableMessage) -> PushResult:
        """Hold ``message`` until released; drop and count it if it is late or a duplicate.

        Late means its timetick is below the last ``pop_until`` bound, or not above
        a timetick already emitted (so the output never repeats or goes back).
        """
        tt = message.timetick
        if tt < self._released or tt <= self._last_emitted:
            self._violations += 1
            return PushResult.TIMETICK_VIOLATION
        key = message.message_id.sort_key()
        if key in self._ids:
            self._duplicates += 1
            return PushResult.DUPLICATE
        size = message.size
        heapq.heappush(self._heap, (tt, next(self._arrival), size, message, key))
        self._ids.add(key)
        self._bytes += size
        return PushResult.ACCEPTED

    def pop_until(self, timetick: int) -> list[ImmutableMessage]:
        """Remove and return every held message with timetick <= ``timetick``, in timetick order.

        Ties (equal timeticks, which unique TSO timestamps never produce) keep
        arrival order. A bound below an earlier one releases nothing new.
        """
        heap = self._heap
        out: list[ImmutableMessage] = []
        while heap and heap[0][0] <= timetick:
            tt, _, size, message, key = heapq.heappop(heap)
            self._ids.discard(key)
            self._bytes -= size
            self._last_emitted = tt
            out.append(message)
        self._released = max(self._released, timetick)
        return out

    def __len__(self) -> int:
        """Messages held."""
        return len(self._heap)

    @property
    def bytes(self) -> int:
        """Sum of ``size`` of the messages held."""
        return self._bytes

    @property
    def released_timetick(self) -> int:
        """The highest ``pop_until`` bound so far (-1 before the first)."""
        return self._released

    @property
    def violations(self) -> int:
        """Messages dropped because their timetick was already released."""
        return self._violations

    @property
    def duplicates(self) -> int:
        """Messages dropped because a message with the same id was held."""
        return self._duplicates
