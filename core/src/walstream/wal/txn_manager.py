"""The write side's transaction table: begin, look up, expire and abort sessions.

Transaction ids are the BeginTxn's timetick. Why: TSO timeticks are unique and
strictly increasing for the lifetime of the pchannel's log, across WAL restarts
and moves, so a new transaction can never reuse the id of one a reader is still
holding from an older term (a counter restarting at 1 could, and the reader
would glue two transactions together). The begin's timetick also fits the
protobuf ``int64`` for the next two thousand years.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from walstream.errors import WALClosedError
from walstream.tso import LOGICAL_BITS, MAX_TIMESTAMP
from walstream.wal.errors import InvalidTransactionRequestError, TransactionNotFoundError
from walstream.wal.txn_buffer import DEFAULT_TXN_KEEPALIVE_MS
from walstream.wal.txn_session import TxnSession, TxnState

__all__ = ["DEFAULT_ENDED_TXNS_KEPT", "MAX_TXN_KEEPALIVE_MS", "TxnManager"]

DEFAULT_ENDED_TXNS_KEPT = 4096
"""Ended sessions remembered so a late use gets its precise error, not 'not found'."""
MAX_TXN_KEEPALIVE_MS = MAX_TIMESTAMP >> LOGICAL_BITS
"""The largest keepalive whose lease end still fits a TSO timestamp."""
_MAX_INT64 = (1 << 63) - 1


class TxnManager:
    """All transactions of one WAL (pchannel), driven by the timetick interceptor.

    - BeginTxn: allocate its timetick, :meth:`begin`, stamp ``session.txn_context``.
    - Body / CommitTxn / RollbackTxn: :meth:`get` the session by the message's txn id,
      then use the :class:`TxnSession` methods.
    - Every TimeTick: :meth:`cleanup_until`.
    - An exclusive message releasing its vchannel lock: :meth:`fail_txns_at`.
    - WAL close: :meth:`close`.

    The last-confirmed bookkeeping asks :meth:`is_resolved` (or ``session.resolved``).
    ``on_end`` is called once per session when it reaches a final state (for the
    "txn end" hooks). One event loop, no threads.
    """

    __slots__ = ("_active", "_closed", "_default_keepalive_ms", "_ended", "_ended_kept", "_on_end")

    def __init__(
        self,
        *,
        default_keepalive_ms: int = DEFAULT_TXN_KEEPALIVE_MS,
        ended_kept: int = DEFAULT_ENDED_TXNS_KEPT,
        on_end: Callable[[TxnSession], None] | None = None,
    ) -> None:
        """A manager whose keepalive 0 means ``default_keepalive_ms``."""
        if not 1 <= default_keepalive_ms <= MAX_TXN_KEEPALIVE_MS:
            raise ValueError(
                f"default_keepalive_ms must be in [1, {MAX_TXN_KEEPALIVE_MS}], "
                f"got {default_keepalive_ms}"
            )
        if ended_kept < 0:
            raise ValueError(f"ended_kept must be >= 0, got {ended_kept}")
        self._default_keepalive_ms = default_keepalive_ms
        self._ended_kept = ended_kept
        self._on_end = on_end
        self._active: dict[int, TxnSession] = {}
        self._ended: OrderedDict[int, TxnSession] = OrderedDict()
        self._closed = False

    @property
    def default_keepalive_ms(self) -> int:
        """The keepalive a ``begin`` with keepalive 0 gets."""
        return self._default_keepalive_ms

    def begin(self, vchannel: str, keepalive_ms: int, timetick: int) -> TxnSession:
        """Open a transaction on ``vchannel`` whose BeginTxn has timetick ``timetick``.

        ``keepalive_ms`` 0 means the default (10 s); below 0 (under 1 ms) is refused
        with :class:`InvalidTransactionRequestError`. The txn id is ``timetick``.
        """
        if self._closed:
            raise WALClosedError("the WAL is closing: it accepts no new transactions")
        if not vchannel:
            raise InvalidTransactionRequestError(
                "a transaction needs a vchannel (transactions span exactly one vchannel)"
            )
        if isinstance(keepalive_ms, bool) or not isinstance(keepalive_ms, int):
            raise InvalidTransactionRequestError(
                f"keepalive must be an int of milliseconds, got {keepalive_ms!r}"
            )
        if keepalive_ms < 0 or keepalive_ms > MAX_TXN_KEEPALIVE_MS:
            raise InvalidTransactionRequestError(
                f"transaction keepalive must be >= 1 ms (or 0 for the default "
                f"{self._default_keepalive_ms} ms) and at most {MAX_TXN_KEEPALIVE_MS} ms, "
                f"got {keepalive_ms} ms"
            )
        if not 0 < timetick <= _MAX_INT64:
            raise InvalidTransactionRequestError(
                f"a BeginTxn timetick must be in (0, 2**63) to serve as the txn id, got {timetick}"
            )
        if timetick in self._active or timetick in self._ended:
            raise InvalidTransactionRequestError(
                f"txn {timetick} already exists: each BeginTxn needs its own fresh timetick"
            )
        session = TxnSession(
            timetick,
            vchannel,
            keepalive_ms or self._default_keepalive_ms,
            timetick,
            on_final=self._session_ended,
        )
        self._active[timetick] = session
        return session

    def get(self, txn_id: int) -> TxnSession:
        """The session of ``txn_id``, open or recently ended (its methods then raise the reason).

        Raises :class:`TransactionNotFoundError` for an id this WAL does not know.
        """
        session = self._active.get(txn_id)
        if session is None:
            session = self._ended.get(txn_id)
        if session is None:
            raise TransactionNotFoundError(
                f"txn {txn_id} is not known to this WAL: it was never begun here "
                f"(transactions do not survive a WAL move) or ended long ago; "
                f"begin a new transaction"
            )
        return session

    def is_resolved(self, txn_id: int) -> bool:
        """Whether ``txn_id`` can no longer commit (an id not open here counts as resolved)."""
        session = self._active.get(txn_id)
        return session is None or session.resolved

    def cleanup_until(self, timetick: int) -> list[TxnSession]:
        """Expire every in-flight session whose lease is over at ``timetick``; return them.

        Call on every TimeTick (persisted or not) with its timetick.
        """
        due = [s for s in self._active.values() if s.is_expired_at(timetick)]
        for session in due:
            session.expire_if_due(timetick)
        return due

    def fail_txns_at(self, vchannel: str, reason: str = "") -> list[TxnSession]:
        """Abort every ``IN_FLIGHT`` session of ``vchannel``; return them.

        Called when an exclusive message (DDL, ManualFlush, SchemaChange) releases
        the vchannel's write lock, so no transaction straddles it. Sessions that
        already asked to commit or roll back are left alone: they held the read
        lock the exclusive message waited for, so they are in the log before it.
        An empty ``vchannel`` (a pchannel-wide exclusive message) aborts all of them.
        """
        why = reason or (
            f"an exclusive message took vchannel {vchannel!r}"
            if vchannel
            else "an exclusive message took the whole pchannel"
        )
        hit = [
            s
            for s in self._active.values()
            if (not vchannel or s.vchannel == vchannel) and s.state is TxnState.IN_FLIGHT
        ]
        for session in hit:
            session.fail(why)
        return hit

    def fail_all(self, reason: str = "the WAL is closing") -> list[TxnSession]:
        """Abort every session that is not final, including ones committing; return them."""
        hit = list(self._active.values())
        for session in hit:
            session.fail(reason)
        return hit

    def close(self) -> None:
        """Refuse new transactions and abort the open ones; idempotent."""
        self._closed = True
        self.fail_all()

    def __len__(self) -> int:
        """Sessions not final yet."""
        return len(self._active)

    def _session_ended(self, session: TxnSession) -> None:
        self._active.pop(session.txn_id, None)
        if self._ended_kept:
            self._ended[session.txn_id] = session
            while len(self._ended) > self._ended_kept:
                self._ended.popitem(last=False)
        if self._on_end is not None:
            self._on_end(session)
