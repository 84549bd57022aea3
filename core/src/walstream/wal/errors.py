"""Errors of the streaming node's WAL read side.

They live here rather than in :mod:`walstream.errors` while the WAL layer is
being built; each still derives from the shared hierarchy so a caller can catch
``WalstreamError`` / ``WALError``.
"""

from __future__ import annotations

from walstream.errors import WALClosedError, WALError, WalstreamError


class EvictedError(WALError):
    """The requested position is no longer (or not yet ever) held by the write-ahead buffer.

    Not a failure: the scanner answers it by reading from the backend (catch-up)
    and rejoining the buffer later.
    """


class WriteAheadBufferClosedError(WALClosedError):
    """The write-ahead buffer was closed (its WAL is closing); readers should stop."""


class WALInvariantError(WalstreamError, RuntimeError):
    """An internal ordering invariant was broken: a bug in the WAL, never a user error."""
