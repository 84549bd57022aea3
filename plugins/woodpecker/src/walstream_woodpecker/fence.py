"""Fencing by term: the fence marker and the lock file.

A read-write open at term T takes the lock file exclusively, refuses T below the
stored term, stores ``(T, generation + 1)`` and recovers; every flush of a writer
takes the lock shared and first checks that the marker still holds its own
``(term, generation)``. Because marker check and block write happen under the shared
lock and the marker changes only under the exclusive lock, a writer that lost the
pchannel can never write another byte once the new owner has opened.

The generation makes a re-open at the same term supersede the earlier writer too, so
there is never more than one writer appending to a pchannel.

``flock`` locks belong to an open file description, so two writers in one process
(each with its own descriptor) exclude each other exactly like two processes.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from dataclasses import dataclass

from walstream.errors import WALError

from walstream_woodpecker.durable import Record
from walstream_woodpecker.layout import ChannelLayout

_RECORD = Record(b"WPFN", "QQ", "fence marker")
_FIRST_BACKOFF_S = 0.001
_MAX_BACKOFF_S = 0.02


@dataclass(frozen=True, slots=True)
class FenceMark:
    """The owner of a pchannel: its term and which read-write open of that term."""

    term: int
    generation: int


def read_fence(layout: ChannelLayout) -> FenceMark | None:
    """The stored fence marker, or None before the first read-write open."""
    values = _RECORD.read(layout.fence_path)
    return None if values is None else FenceMark(values[0], values[1])


def write_fence(layout: ChannelLayout, mark: FenceMark) -> None:
    """Store ``mark`` durably and atomically."""
    _RECORD.write(layout.fence_path, mark.term, mark.generation)


def open_lock_file(layout: ChannelLayout) -> int:
    """A new open file description of the lock file (each holder needs its own)."""
    return os.open(layout.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def _try_lock(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _timeout_error(layout: ChannelLayout, timeout: float, kind: str) -> WALError:
    return WALError(
        f"timed out after {timeout:g}s waiting for the {kind} lock on {layout.lock_path}: "
        f"another writer of this pchannel is opening or flushing and did not let go; "
        f"retry, or raise fence_lock_timeout_s if opens/flushes are legitimately this slow"
    )


async def lock_exclusive(fd: int, layout: ChannelLayout, timeout: float) -> None:
    """Take the exclusive lock, polling without blocking the event loop."""
    # flock(2) cannot be given a timeout and a blocked thread cannot be cancelled, so
    # poll the non-blocking form with a short back-off.
    deadline = time.monotonic() + timeout
    delay = _FIRST_BACKOFF_S
    while not _try_lock(fd, fcntl.LOCK_EX):
        if time.monotonic() >= deadline:
            raise _timeout_error(layout, timeout, "exclusive")
        await asyncio.sleep(delay)
        delay = min(delay * 2, _MAX_BACKOFF_S)


def lock_shared(fd: int, layout: ChannelLayout, timeout: float) -> None:
    """Take the shared lock (called from a worker thread), bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = _FIRST_BACKOFF_S
    while not _try_lock(fd, fcntl.LOCK_SH):
        if time.monotonic() >= deadline:
            raise _timeout_error(layout, timeout, "shared")
        time.sleep(delay)
        delay = min(delay * 2, _MAX_BACKOFF_S)


def unlock(fd: int) -> None:
    """Release whatever lock ``fd`` holds."""
    fcntl.flock(fd, fcntl.LOCK_UN)
