"""A fair (FIFO) asyncio reader-writer lock with a synchronous, cancel-safe release."""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["RWLock"]


class RWLock:
    """Many readers or one writer; waiters are served in arrival order.

    Fairness matters here: a DDL waiting for the write lock must not be starved by
    a stream of inserts taking read locks. ``release`` is synchronous so it can run
    in ``finally`` even while the task is being cancelled.
    """

    __slots__ = ("_readers", "_waiters", "_writer")

    def __init__(self) -> None:
        self._readers = 0
        self._writer = False
        self._waiters: deque[tuple[bool, asyncio.Future[None]]] = deque()

    @property
    def idle(self) -> bool:
        """Nobody holds or waits for the lock."""
        return not self._writer and self._readers == 0 and not self._waiters

    def _can(self, write: bool) -> bool:
        return not self._writer and (self._readers == 0 or not write)

    def _grant(self, write: bool) -> None:
        if write:
            self._writer = True
        else:
            self._readers += 1

    def try_acquire(self, write: bool) -> bool:
        """Take the lock if that needs no wait (as ``acquire`` would at once); else False."""
        if not self._waiters and self._can(write):
            self._grant(write)
            return True
        return False

    async def acquire(self, write: bool) -> None:
        """Take the lock (``write``: exclusively); FIFO behind earlier waiters."""
        if not self._waiters and self._can(write):
            self._grant(write)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((write, fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(write)  # granted just before the cancellation landed
            else:
                self._wake()  # a waiter behind us may be grantable now
            raise

    def release(self, write: bool) -> None:
        """Give the lock back (synchronous)."""
        if write:
            self._writer = False
        else:
            self._readers -= 1
        self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters:
            write, fut = waiters[0]
            if fut.done():  # cancelled waiter
                waiters.popleft()
                continue
            if not self._can(write):
                return
            waiters.popleft()
            self._grant(write)
            fut.set_result(None)
