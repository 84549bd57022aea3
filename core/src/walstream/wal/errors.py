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


class AlreadyAckedError(WALInvariantError):
    """An :class:`~walstream.wal.ack.Acker` was acknowledged twice: a bug in the append path."""


# --- transactions (write side) -----------------------------------------------------


class TransactionError(WalstreamError):
    """A transaction request was refused; the message names the txn and the reason."""


class InvalidTransactionRequestError(TransactionError, ValueError):
    """A transaction was asked for something it can never do.

    A keepalive below 1 ms, a body message that is not Insert/Delete, or one on
    another vchannel than the transaction's.
    """


class InvalidTransactionStateError(TransactionError):
    """The transaction is not in a state that allows the request.

    For example a second commit, a body append after commit or a commit after
    rollback: commit and rollback may each be called once, bodies only before.
    """


class TransactionExpiredError(TransactionError):
    """The transaction's keepalive passed; it stays expired and will never commit.

    Begin a new transaction (Milvus ``TRANSACTION_EXPIRED``).
    """


class TransactionAbortedError(TransactionError):
    """The WAL aborted the transaction; it will never commit.

    Causes: an exclusive message (DDL, ManualFlush, SchemaChange) took its
    vchannel, the WAL is closing, or its begin/commit/rollback append failed.
    Begin a new transaction.
    """


class TransactionNotFoundError(TransactionError, LookupError):
    """No transaction with that id is known to this WAL.

    It was never begun here (transactions do not move with a WAL to another
    node) or it ended so long ago that the WAL no longer remembers it.
    """
