"""Process-wide wake-ups for tail readers, keyed by the pchannel directory's real path.

A writer publishes after every fsync'ed block; readers of the same pchannel in this
process, on any event loop, wait for the next publication instead of polling. Waiters
are kept as ``(future, loop)`` and woken with ``loop.call_soon_threadsafe``.

The hub also carries the *durable length* of each segment a writer in this process
is appending to: readers in this process never read past it, so they never deliver
a block that is written but not yet fsynced (and so not yet acknowledged). Each
length is tagged with the writer that set it, so a writer that stops (fenced, closed,
failed) removes only its own, never those of a newer owner in the same process.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from walstream_woodpecker.layout import ChannelLayout


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class ChannelHub:
    """Wake-ups and durable lengths of one pchannel within this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = 0
        self._waiters: dict[asyncio.Future[None], asyncio.AbstractEventLoop] = {}
        self._writers = 0
        self._limits: dict[int, tuple[int, object]] = {}  # segment -> (length, writer)

    @property
    def version(self) -> int:
        """Changes on every publication; readers snapshot it before they read."""
        with self._lock:
            return self._version

    def has_writer(self) -> bool:
        """Whether a live writer of this pchannel runs in this process."""
        with self._lock:
            return self._writers > 0

    def limit(self, segment: int) -> int | None:
        """Bytes of ``segment`` known durable, if a writer here is appending to it."""
        with self._lock:
            entry = self._limits.get(segment)
            return None if entry is None else entry[0]

    def writer_started(self, writer: object, segment: int) -> None:
        """``writer`` opened and will append to ``segment`` (empty so far)."""
        with self._lock:
            self._writers += 1
            self._limits[segment] = (0, writer)
        self._bump()

    def writer_stopped(self, writer: object) -> None:
        """``writer`` closed, was fenced or failed: its segments are readable to their end."""
        with self._lock:
            self._writers -= 1
            for segment in [s for s, (_, owner) in self._limits.items() if owner is writer]:
                del self._limits[segment]
        self._bump()

    def rolling(self, writer: object, old: int, new: int) -> None:
        """``writer`` leaves ``old`` (all of it durable) for the new, empty ``new``."""
        with self._lock:
            if self._limits.get(old, (0, None))[1] is writer:
                del self._limits[old]
            self._limits[new] = (0, writer)

    def publish(self, writer: object, segment: int, durable_length: int) -> None:
        """``writer`` made ``segment`` durable up to ``durable_length``: wake readers."""
        with self._lock:
            self._limits[segment] = (durable_length, writer)
        self._bump()

    def add_waiter(self, seen_version: int, fut: asyncio.Future[None]) -> bool:
        """Wake ``fut`` at the next publication; False if one happened since ``seen_version``."""
        with self._lock:
            if self._version != seen_version:
                return False
            self._waiters[fut] = fut.get_loop()
            return True

    def remove_waiter(self, fut: asyncio.Future[None]) -> None:
        """Forget ``fut`` (woken, timed out or cancelled)."""
        with self._lock:
            self._waiters.pop(fut, None)

    def _bump(self) -> None:
        with self._lock:
            self._version += 1
            waiters = list(self._waiters.items())
            self._waiters.clear()
        for fut, loop in waiters:
            # RuntimeError: that reader's loop is closed, nobody is left to wake.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, fut)


_HUBS: dict[str, ChannelHub] = {}
_HUBS_LOCK = threading.Lock()


def hub_for(layout: ChannelLayout) -> ChannelHub:
    """The hub of ``layout``'s pchannel in this process (created on first use)."""
    return hub_for_key(layout.key())


def hub_for_key(key: str) -> ChannelHub:
    """The hub registered under ``key`` in this process (created on first use).

    Local mode keys hubs by the pchannel directory's real path; object mode by store
    URL and log name. In object mode the "durable length" is the number of blocks of
    the segment its writer has acknowledged."""
    with _HUBS_LOCK:
        hub = _HUBS.get(key)
        if hub is None:
            hub = _HUBS[key] = ChannelHub()
        return hub
