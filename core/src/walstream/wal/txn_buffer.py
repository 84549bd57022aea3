"""Consume-side transaction assembly: committed transactions out whole, others never.

Fed messages in timetick order (the output of the reorder buffer). Messages
without a txn context pass straight through. A BeginTxn opens a pending
transaction; its body messages are held; the CommitTxn turns them into one
:class:`ImmutableTxnMessage` emitted at the commit's place in the stream; a
RollbackTxn, or a TimeTick at or past the transaction's expiry, drops them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from walstream.errors import MessageError
from walstream.message import ImmutableMessage, MessageType
from walstream.tso import LOGICAL_BITS
from walstream.wal.txn_message import ImmutableTxnMessage

__all__ = ["DEFAULT_TXN_KEEPALIVE_MS", "TxnBuffer", "expiry_timetick"]

DEFAULT_TXN_KEEPALIVE_MS = 10_000
"""Keepalive used when a txn context carries none (Milvus ``txn.defaultKeepaliveTimeout``)."""


def expiry_timetick(last_timetick: int, keepalive_ms: int) -> int:
    """The TSO timetick at which a transaction last active at ``last_timetick`` expires.

    Adds the keepalive to the physical (millisecond) part of the hybrid timestamp
    and keeps the logical part, like Milvus ``AddPhysicalDurationOnTs``.
    """
    return last_timetick + (keepalive_ms << LOGICAL_BITS)


@dataclass(slots=True)
class _PendingTxn:
    begin: ImmutableMessage
    keepalive_ms: int
    expiry: int
    body: list[ImmutableMessage] = field(default_factory=list)
    bytes: int = 0


class TxnBuffer:
    """Holds open transactions of one reader until they commit, roll back or expire.

    Use: for every message released by the reorder buffer call :meth:`push` (or
    :meth:`handle` for a batch plus the TimeTick that released it) and deliver
    what it returns. A TimeTick pushed here expires transactions, then passes
    through. Counters tell what was dropped; ``len()`` and ``bytes`` report what
    is held so the scanner can account for its memory. Single-task use.
    """

    __slots__ = (
        "_bytes",
        "_committed",
        "_default_keepalive_ms",
        "_dropped",
        "_expired",
        "_pending",
        "_rolled_back",
    )

    def __init__(self, *, default_keepalive_ms: int = DEFAULT_TXN_KEEPALIVE_MS) -> None:
        if default_keepalive_ms <= 0:
            raise ValueError(f"default_keepalive_ms must be positive, got {default_keepalive_ms}")
        self._default_keepalive_ms = default_keepalive_ms
        self._pending: dict[int, _PendingTxn] = {}
        self._bytes = 0
        self._committed = 0
        self._rolled_back = 0
        self._expired = 0
        self._dropped = 0

    def push(self, message: ImmutableMessage) -> ImmutableMessage | None:
        """Feed one message (in timetick order); return what to deliver now, if anything.

        Returns the message itself when it is not part of a transaction (a
        TimeTick first expires transactions), the composite on a CommitTxn, and
        ``None`` when the message was held or dropped.
        """
        mtype = message.message_type
        ctx = message.txn_context
        if ctx is None:
            if mtype is MessageType.TIME_TICK:
                self.expire(message.timetick)
            elif mtype in (
                MessageType.BEGIN_TXN,
                MessageType.COMMIT_TXN,
                MessageType.ROLLBACK_TXN,
            ):
                # A control message without a txn id cannot be matched to anything.
                self._dropped += 1
                return None
            return message
        txn_id = ctx.txn_id
        if mtype is MessageType.BEGIN_TXN:
            self._begin(txn_id, ctx.keepalive_milliseconds, message)
            return None
        pending = self._pending.get(txn_id)
        if pending is None:
            # Unknown: began before this reader started, already expired, or a duplicate.
            self._dropped += 1
            return None
        if mtype is MessageType.COMMIT_TXN:
            self._end(txn_id, pending)
            try:
                composite = ImmutableTxnMessage(pending.begin, pending.body, message)
            except MessageError:
                # Malformed in the log: deliver nothing rather than part of it.
                self._dropped += 1
                return None
            self._committed += 1
            return composite
        if mtype is MessageType.ROLLBACK_TXN:
            self._end(txn_id, pending)
            self._rolled_back += 1
            return None
        size = message.size
        pending.body.append(message)
        pending.bytes += size
        self._bytes += size
        # Each body append refreshes the session's keepalive on the writer; mirror it.
        pending.expiry = expiry_timetick(message.timetick, pending.keepalive_ms)
        return None

    def handle(self, messages: Iterable[ImmutableMessage], timetick: int) -> list[ImmutableMessage]:
        """Feed a batch released by the TimeTick ``timetick``, then expire up to it.

        The batch must be in timetick order with every timetick <= ``timetick``.
        Returns what to deliver, in order (the TimeTick itself is not included).
        """
        out: list[ImmutableMessage] = []
        for message in messages:
            result = self.push(message)
            if result is not None:
                out.append(result)
        self.expire(timetick)
        return out

    def expire(self, timetick: int) -> int:
        """Drop every transaction whose expiry is <= ``timetick``; return how many."""
        expired = [tid for tid, p in self._pending.items() if p.expiry <= timetick]
        for tid in expired:
            self._end(tid, self._pending[tid])
        self._expired += len(expired)
        return len(expired)

    def _begin(self, txn_id: int, keepalive_ms: int, begin: ImmutableMessage) -> None:
        if txn_id in self._pending:
            self._dropped += 1  # a repeated BeginTxn (stream switch): keep the first
            return
        keepalive = keepalive_ms if keepalive_ms > 0 else self._default_keepalive_ms
        size = begin.size
        self._pending[txn_id] = _PendingTxn(
            begin, keepalive, expiry_timetick(begin.timetick, keepalive), bytes=size
        )
        self._bytes += size

    def _end(self, txn_id: int, pending: _PendingTxn) -> None:
        del self._pending[txn_id]
        self._bytes -= pending.bytes

    def __len__(self) -> int:
        """Open transactions held."""
        return len(self._pending)

    @property
    def bytes(self) -> int:
        """Sum of ``size`` of the begin and body messages held."""
        return self._bytes

    @property
    def committed(self) -> int:
        """Transactions delivered as composites."""
        return self._committed

    @property
    def rolled_back(self) -> int:
        """Transactions dropped on RollbackTxn."""
        return self._rolled_back

    @property
    def expired(self) -> int:
        """Transactions dropped because a TimeTick passed their keepalive."""
        return self._expired

    @property
    def dropped(self) -> int:
        """Messages dropped: body/commit/rollback of an unknown or expired txn, repeated begins."""
        return self._dropped
