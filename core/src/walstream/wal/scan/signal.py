"""A wake-up for asyncio waiters that can never be missed."""

from __future__ import annotations

import asyncio

__all__ = ["Signal"]


class Signal:
    """Waiters check their condition, then ``await wait()``; a writer calls ``notify()``.

    Why not a bare ``asyncio.Event``: set/clear races let a waiter sleep through a
    change or spin on a stale set. Here ``notify`` swaps in a fresh event before
    setting the old one, and since nothing awaits between a waiter's check and its
    ``wait()`` (one event loop), no change is ever missed.
    """

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Wake every current waiter."""
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self) -> None:
        """Sleep until the next ``notify()``."""
        await self._event.wait()
