"""One transaction on the write side: its state, lease and in-flight body appends.

States (Milvus ``TxnState`` plus our terminal ``FAILED``)::

    IN_FLIGHT --commit()--> ON_COMMIT --commit_done(ok)--> COMMITTED
    IN_FLIGHT --rollback()-> ON_ROLLBACK --rollback_done(ok)--> ROLLED_BACK
    IN_FLIGHT --a timetick reaches the lease end--> EXPIRED
    any non-final --fail(reason) / failed commit or rollback append--> FAILED

The lease: a session expires once a timetick ``>= last_timetick + keepalive``
(keepalive added to the physical milliseconds, as the read side's
:func:`~walstream.wal.txn_buffer.expiry_timetick`), where ``last_timetick`` is
the begin's timetick refreshed by every successful body append. Once expired
it stays expired. Sessions are driven by the timetick interceptor; one event
loop, no threads.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable

from walstream.message import MutableMessage
from walstream.proto import messages_pb2 as pb
from walstream.tso import LOGICAL_BITS
from walstream.wal.errors import (
    InvalidTransactionRequestError,
    InvalidTransactionStateError,
    TransactionAbortedError,
    TransactionExpiredError,
    WALInvariantError,
)
from walstream.wal.txn_buffer import expiry_timetick
from walstream.wal.txn_message import TXN_BODY_TYPES

__all__ = ["FINAL_TXN_STATES", "TxnSession", "TxnState"]


class TxnState(enum.Enum):
    """Where a write-side transaction is in its life."""

    IN_FLIGHT = "in_flight"
    """Begun; accepts body appends, commit and rollback."""
    ON_COMMIT = "on_commit"
    """Commit requested; waiting for body appends, then for the CommitTxn append."""
    COMMITTED = "committed"
    ON_ROLLBACK = "on_rollback"
    """Rollback requested; waiting for the RollbackTxn append."""
    ROLLED_BACK = "rolled_back"
    EXPIRED = "expired"
    """The keepalive passed with no body append; readers drop it too."""
    FAILED = "failed"
    """Aborted by the WAL (exclusive message, close, failed control append)."""


FINAL_TXN_STATES = frozenset(
    {TxnState.COMMITTED, TxnState.ROLLED_BACK, TxnState.EXPIRED, TxnState.FAILED}
)
"""States a session never leaves; it can no longer commit (it is *resolved*)."""


def _ms(timetick: int) -> int:
    return timetick >> LOGICAL_BITS


class TxnSession:
    """The write-side state of one transaction (create it with ``TxnManager.begin``).

    The timetick interceptor calls, per message of the transaction:

    - body: :meth:`add_body` before the append, :meth:`body_done` after it;
    - CommitTxn: ``await`` :meth:`commit` before the append, :meth:`commit_done` after;
    - RollbackTxn: :meth:`rollback` before the append, :meth:`rollback_done` after.

    Refusals raise :class:`TransactionExpiredError`, :class:`TransactionAbortedError`,
    :class:`InvalidTransactionStateError` or :class:`InvalidTransactionRequestError`.
    """

    __slots__ = (
        "_abort_reason",
        "_begin_timetick",
        "_drained",
        "_in_flight",
        "_keepalive_ms",
        "_last_timetick",
        "_on_final",
        "_state",
        "_txn_id",
        "_vchannel",
    )

    def __init__(
        self,
        txn_id: int,
        vchannel: str,
        keepalive_ms: int,
        begin_timetick: int,
        on_final: Callable[[TxnSession], None] | None = None,
    ) -> None:
        """A session begun at ``begin_timetick``; ``keepalive_ms`` must already be resolved (>= 1).

        ``on_final`` is called once, when the session reaches a final state.
        """
        if keepalive_ms < 1:
            raise InvalidTransactionRequestError(
                f"txn {txn_id}: keepalive must be >= 1 ms, got {keepalive_ms}"
            )
        self._txn_id = txn_id
        self._vchannel = vchannel
        self._keepalive_ms = keepalive_ms
        self._begin_timetick = begin_timetick
        self._last_timetick = begin_timetick
        self._state = TxnState.IN_FLIGHT
        self._in_flight = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self._abort_reason = ""
        self._on_final = on_final

    # --- inspection ---------------------------------------------------------------

    @property
    def txn_id(self) -> int:
        """The transaction id (unique within the WAL)."""
        return self._txn_id

    @property
    def vchannel(self) -> str:
        """The one vchannel every message of the transaction goes to."""
        return self._vchannel

    @property
    def keepalive_ms(self) -> int:
        """The lease length in milliseconds (the default already applied)."""
        return self._keepalive_ms

    @property
    def txn_context(self) -> pb.TxnContext:
        """The context to stamp on every message of the transaction (a fresh copy)."""
        return pb.TxnContext(txn_id=self._txn_id, keepalive_milliseconds=self._keepalive_ms)

    @property
    def state(self) -> TxnState:
        """The current state."""
        return self._state

    @property
    def resolved(self) -> bool:
        """True once the session is final: it can never commit (any more)."""
        return self._state in FINAL_TXN_STATES

    @property
    def begin_timetick(self) -> int:
        """The BeginTxn's timetick."""
        return self._begin_timetick

    @property
    def last_timetick(self) -> int:
        """The lease start: the begin's timetick or the latest successful body's."""
        return self._last_timetick

    @property
    def expiry_timetick(self) -> int:
        """The first timetick at which the session counts as expired."""
        return expiry_timetick(self._last_timetick, self._keepalive_ms)

    @property
    def in_flight(self) -> int:
        """Body appends started with :meth:`add_body` and not finished yet."""
        return self._in_flight

    @property
    def abort_reason(self) -> str:
        """Why the session failed (empty unless ``state`` is ``FAILED``)."""
        return self._abort_reason

    def __repr__(self) -> str:
        return (
            f"TxnSession(txn={self._txn_id}, vchannel={self._vchannel!r}, "
            f"state={self._state.name}, in_flight={self._in_flight})"
        )

    # --- lease --------------------------------------------------------------------

    def is_expired_at(self, timetick: int) -> bool:
        """Whether an in-flight session's lease is over at ``timetick`` (no state change)."""
        return self._state is TxnState.IN_FLIGHT and timetick >= self.expiry_timetick

    def expire_if_due(self, timetick: int) -> bool:
        """Expire the session if its lease is over at ``timetick``; return whether it did.

        Only an ``IN_FLIGHT`` session expires: one that asked to commit or roll back
        already had its final timetick checked, and waits for its own append.
        """
        if not self.is_expired_at(timetick):
            return False
        self._finish(TxnState.EXPIRED)
        return True

    def fail(self, reason: str) -> bool:
        """Abort a session that is not final; return whether it did.

        A waiting :meth:`commit` wakes and raises :class:`TransactionAbortedError`.
        """
        if self.resolved:
            return False
        self._abort_reason = reason
        self._finish(TxnState.FAILED)
        return True

    # --- body appends ---------------------------------------------------------------

    def add_body(self, message: MutableMessage) -> None:
        """Admit a body message about to be appended (its timetick already stamped).

        Refuses anything but Insert/Delete on the transaction's vchannel, and any
        session that is not ``IN_FLIGHT`` or whose lease is over at the message's
        timetick. Each admitted body must be finished with :meth:`body_done`.
        """
        mtype = message.message_type
        if mtype not in TXN_BODY_TYPES:
            raise InvalidTransactionRequestError(
                f"txn {self._txn_id}: a transaction body holds Insert/Delete only, "
                f"got a {mtype.name} message"
            )
        if message.vchannel != self._vchannel:
            raise InvalidTransactionRequestError(
                f"txn {self._txn_id} is on vchannel {self._vchannel!r}; a body message for "
                f"{message.vchannel!r} cannot join it (transactions span one vchannel)"
            )
        self._check_usable("append a body message to", message.timetick)
        self._in_flight += 1
        self._drained.clear()

    def body_done(self, timetick: int, ok: bool) -> None:
        """Finish a body append admitted by :meth:`add_body`.

        A successful one refreshes the lease from its timetick (unless the session
        is final by now); a failed one leaves the transaction usable, as in Milvus:
        the client saw the error and may roll back.
        """
        if self._in_flight <= 0:
            raise WALInvariantError(f"txn {self._txn_id}: body_done without a matching add_body")
        self._in_flight -= 1
        if ok and not self.resolved and timetick > self._last_timetick:
            self._last_timetick = timetick
        if self._in_flight == 0:
            self._drained.set()

    # --- commit and rollback ---------------------------------------------------------

    async def commit(self, timetick: int) -> None:
        """Request the commit at ``timetick``, then wait until no body append is in flight.

        Moves the session to ``ON_COMMIT`` at once, so no body is admitted after it.
        Why wait: a body written after the CommitTxn would be missing from what
        readers assemble. If the wait is cancelled the session fails (the client
        gave up on it); if the session is aborted meanwhile this raises
        :class:`TransactionAbortedError`. Finish with :meth:`commit_done`.
        """
        self._check_usable("commit", timetick)
        self._state = TxnState.ON_COMMIT
        try:
            await self._drained.wait()
        except asyncio.CancelledError:
            self.fail(
                f"the commit was cancelled while {self._in_flight} body appends were in flight"
            )
            raise
        if self._state is TxnState.FAILED:
            raise self._aborted_error("commit")

    def commit_done(self, ok: bool) -> None:
        """Finish the CommitTxn append: ``COMMITTED`` if it succeeded, else ``FAILED``.

        Ignored when the session was aborted meanwhile (the WAL is closing).
        """
        self._finish_request(TxnState.ON_COMMIT, TxnState.COMMITTED, ok, "commit")

    def rollback(self, timetick: int) -> None:
        """Request the rollback at ``timetick``; finish with :meth:`rollback_done`.

        It does not wait for body appends: a rolled-back body is never delivered,
        whenever it lands.
        """
        self._check_usable("roll back", timetick)
        self._state = TxnState.ON_ROLLBACK

    def rollback_done(self, ok: bool) -> None:
        """Finish the RollbackTxn append: ``ROLLED_BACK`` if it succeeded, else ``FAILED``."""
        self._finish_request(TxnState.ON_ROLLBACK, TxnState.ROLLED_BACK, ok, "rollback")

    # --- internals ---------------------------------------------------------------------

    def _check_usable(self, action: str, timetick: int) -> None:
        state = self._state
        if state is TxnState.IN_FLIGHT and timetick >= self.expiry_timetick:
            self._finish(TxnState.EXPIRED)
            state = self._state
        if state is TxnState.IN_FLIGHT:
            return
        if state is TxnState.EXPIRED:
            raise TransactionExpiredError(
                f"cannot {action} txn {self._txn_id} on vchannel {self._vchannel!r}: it expired "
                f"(keepalive {self._keepalive_ms} ms; last active at timetick "
                f"{self._last_timetick}, {_ms(self._last_timetick)} ms; lease ended at timetick "
                f"{self.expiry_timetick}; request at timetick {timetick}); begin a new transaction"
            )
        if state is TxnState.FAILED:
            raise self._aborted_error(action)
        raise InvalidTransactionStateError(
            f"cannot {action} txn {self._txn_id} on vchannel {self._vchannel!r}: it is "
            f"{state.value} (commit and rollback may each be called once, and bodies only "
            f"before either)"
        )

    def _aborted_error(self, action: str) -> TransactionAbortedError:
        return TransactionAbortedError(
            f"cannot {action} txn {self._txn_id} on vchannel {self._vchannel!r}: it was aborted "
            f"({self._abort_reason}); begin a new transaction"
        )

    def _finish_request(self, expected: TxnState, success: TxnState, ok: bool, what: str) -> None:
        if self._state is TxnState.FAILED:
            return
        if self._state is not expected:
            raise WALInvariantError(
                f"txn {self._txn_id}: {what}_done in state {self._state.name}, "
                f"expected {expected.name}"
            )
        if ok:
            self._finish(success)
        else:
            self.fail(f"its {what} append failed")

    def _finish(self, state: TxnState) -> None:
        self._state = state
        # Wake a commit waiting for bodies so it can see the abort.
        self._drained.set()
        if self._on_final is not None:
            callback, self._on_final = self._on_final, None
            callback(self)
