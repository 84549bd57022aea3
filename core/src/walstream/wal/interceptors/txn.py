"""The transaction part of the timetick step: route txn messages to their session.

BeginTxn opens a session (its timetick is the txn id) and stamps its context;
a body is admitted into its session (Insert/Delete on the txn's vchannel, lease
not over, size within ``txn_max_bytes``); CommitTxn waits for in-flight bodies;
RollbackTxn ends it. After the append each step is finished with its outcome.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from walstream.message import MessageType, MutableMessage
from walstream.proto import messages_pb2 as pb
from walstream.wal.errors import InvalidTransactionRequestError, TransactionTooLargeError
from walstream.wal.txn_manager import TxnManager
from walstream.wal.txn_session import TxnSession

__all__ = ["TxnDispatcher", "TxnStep"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TxnStep:
    """One transaction message being appended, to be finished after the append."""

    kind: MessageType
    session: TxnSession
    timetick: int
    size: int = 0


class TxnDispatcher:
    """Drives :class:`TxnManager` sessions from the messages passing the timetick step."""

    __slots__ = ("_bytes", "_manager", "_max_bytes")

    def __init__(self, manager: TxnManager, max_bytes: int) -> None:
        """Sessions of ``manager``; a txn's bodies may sum to ``max_bytes``."""
        self._manager = manager
        self._max_bytes = max_bytes
        self._bytes: dict[int, int] = {}

    @property
    def manager(self) -> TxnManager:
        """The transaction table."""
        return self._manager

    def forget(self, session: TxnSession) -> None:
        """Drop the byte count of an ended session (the manager's ``on_end``)."""
        self._bytes.pop(session.txn_id, None)

    async def prepare(self, message: MutableMessage, timetick: int) -> TxnStep | None:
        """Admit ``message`` (already stamped with ``timetick``); ``None`` if not a txn message.

        Raises the session's refusal (expired, aborted, wrong state, wrong type,
        too large); a CommitTxn waits here for the bodies still in flight.
        """
        mtype = message.message_type
        if mtype is MessageType.BEGIN_TXN:
            header = message.header()
            assert isinstance(header, pb.BeginTxnMessageHeader)
            session = self._manager.begin(message.vchannel, header.keepalive_milliseconds, timetick)
            message.with_txn_context(session.txn_context)
            return TxnStep(mtype, session, timetick)
        ctx = message.txn_context
        if ctx is None:
            if mtype in (MessageType.COMMIT_TXN, MessageType.ROLLBACK_TXN):
                raise InvalidTransactionRequestError(
                    f"a {mtype.name} message needs the txn context of the transaction it ends "
                    f"(use the handle returned by begin_txn)"
                )
            return None
        session = self._manager.get(ctx.txn_id)
        if mtype in (MessageType.COMMIT_TXN, MessageType.ROLLBACK_TXN):
            if message.vchannel != session.vchannel:
                raise InvalidTransactionRequestError(
                    f"txn {session.txn_id} is on vchannel {session.vchannel!r}, but its "
                    f"{mtype.name} names {message.vchannel!r}"
                )
            if mtype is MessageType.COMMIT_TXN:
                await session.commit(timetick)
            else:
                session.rollback(timetick)
            return TxnStep(mtype, session, timetick)
        size = message.size
        total = self._bytes.get(session.txn_id, 0) + size
        if total > self._max_bytes:
            raise TransactionTooLargeError(
                f"txn {session.txn_id} on vchannel {session.vchannel!r}: a {size}-byte body "
                f"would bring it to {total} bytes, over txn_max_bytes={self._max_bytes}; "
                f"commit it and put the rest in another transaction"
            )
        session.add_body(message)
        self._bytes[session.txn_id] = total
        return TxnStep(mtype, session, timetick, size)

    def finish(self, step: TxnStep, ok: bool) -> None:
        """Record the outcome of the append admitted by :meth:`prepare`."""
        session = step.session
        if step.kind is MessageType.BEGIN_TXN:
            if not ok:
                session.fail("its BeginTxn append failed")
        elif step.kind is MessageType.COMMIT_TXN:
            session.commit_done(ok)
        elif step.kind is MessageType.ROLLBACK_TXN:
            session.rollback_done(ok)
        else:
            if not ok and session.txn_id in self._bytes:
                self._bytes[session.txn_id] -= step.size
            session.body_done(step.timetick, ok)
