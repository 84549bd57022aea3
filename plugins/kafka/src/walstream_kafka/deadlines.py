"""Failing appends that wait longer than ``append_timeout_s``, with one timer per WAL.

A timer per append (``asyncio.timeout``) puts thousands of entries in the event loop's
timer heap when many appends are in flight, and costs more than the append itself.
Appends are queued in order with the same timeout, so their deadlines are in order too:
one FIFO and one timer for its head suffice.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from walstream_kafka.writer import Pending


class AppendDeadlines:
    """Fails each pending append still unresolved ``timeout_s`` after it was queued."""

    def __init__(self, timeout_s: float, error: Callable[[Pending], BaseException]) -> None:
        self._timeout_s = timeout_s
        self._error = error
        self._queue: deque[tuple[float, Pending]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, pending: Pending) -> None:
        """Start the clock of ``pending`` (call on the loop its future belongs to)."""
        queue = self._queue
        while queue and queue[0][1].future.done():  # resolved ones leave in order
            queue.popleft()
        loop = pending.loop
        deadline = loop.time() + self._timeout_s
        queue.append((deadline, pending))
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        queue = self._queue
        while queue:
            deadline, pending = queue[0]
            if pending.future.done():
                queue.popleft()
            elif deadline <= now:
                queue.popleft()
                pending.future.set_exception(self._error(pending))
            else:
                self._timer = loop.call_at(deadline, self._expire, loop)
                return

    def cancel(self) -> None:
        """Stop the timer (the WAL is closed)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()
