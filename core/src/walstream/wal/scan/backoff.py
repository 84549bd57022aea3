"""Backoff between backend read attempts, and which read errors are worth retrying."""

from __future__ import annotations

import random

from walstream.errors import FencedError, InvalidPChannelError, WALClosedError, WALError
from walstream.wal.errors import WALInvariantError

__all__ = [
    "DEFAULT_RETRY_INITIAL_SECONDS",
    "DEFAULT_RETRY_MAX_SECONDS",
    "Backoff",
    "is_transient_read_error",
]

DEFAULT_RETRY_INITIAL_SECONDS = 0.1
"""First wait after a failed backend read (Milvus: 100 ms)."""
DEFAULT_RETRY_MAX_SECONDS = 5.0
"""Longest wait between backend read attempts (Milvus: 5 s)."""


def is_transient_read_error(exc: BaseException) -> bool:
    """Whether a backend read failure may go away by itself (retry) or is final.

    Transient: I/O and timeouts, and backend ``WALError`` s in general. Final: the
    WAL was closed or fenced (it will not come back), a bad pchannel, broken
    invariants, and anything else (decode and programming errors do not heal).
    """
    if isinstance(exc, WALClosedError | FencedError | InvalidPChannelError | WALInvariantError):
        return False
    return isinstance(exc, WALError | OSError | TimeoutError)


class Backoff:
    """Exponential delays with full jitter between ``initial`` and ``maximum`` seconds."""

    __slots__ = ("_attempt", "_initial", "_maximum")

    def __init__(self, initial: float, maximum: float) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError(f"need 0 < initial <= maximum, got {initial} and {maximum}")
        self._initial = initial
        self._maximum = maximum
        self._attempt = 0

    def next_delay(self) -> float:
        """The wait before the next attempt; grows until ``reset()``."""
        cap = min(self._maximum, self._initial * (1 << self._attempt))
        self._attempt = min(self._attempt + 1, 32)
        # Half fixed, half random: never hammer, never sleep in lockstep with peers.
        return cap / 2 + random.random() * cap / 2

    def reset(self) -> None:
        """A read succeeded: start from ``initial`` again next time."""
        self._attempt = 0
