"""The client side of a transaction: a handle returned by ``StreamingWAL.begin_txn``."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from walstream.message import MessageType, MutableMessage, new_message
from walstream.proto import messages_pb2 as pb
from walstream.wal.chain import AppendResult
from walstream.wal.errors import InvalidTransactionStateError

if TYPE_CHECKING:
    from walstream.wal.streaming_wal import StreamingWAL

__all__ = ["TxnHandle"]


class _HandleState(enum.Enum):
    OPEN = "open"
    COMMITTED = "committed"
    ROLLED_BACK = "rolled back"
    ENDING = "ending"


class TxnHandle:
    """Append Insert/Delete bodies, then commit or roll back, each once.

    The WAL enforces the rules (expiry, aborts, body types, size); the handle
    also refuses a second commit/rollback or a body after either without
    spending a timetick.
    """

    __slots__ = ("_begin", "_context", "_state", "_vchannel", "_wal")

    def __init__(self, wal: StreamingWAL, vchannel: str, begin: AppendResult) -> None:
        """A handle for the transaction begun by the BeginTxn append ``begin``."""
        assert begin.txn_context is not None
        self._wal = wal
        self._vchannel = vchannel
        self._begin = begin
        self._context: pb.TxnContext = begin.txn_context
        self._state = _HandleState.OPEN

    @property
    def txn_id(self) -> int:
        """The transaction id (the BeginTxn's timetick)."""
        return self._context.txn_id

    @property
    def vchannel(self) -> str:
        """The vchannel every message of the transaction goes to."""
        return self._vchannel

    @property
    def keepalive_ms(self) -> int:
        """The keepalive granted (the default already applied)."""
        return self._context.keepalive_milliseconds

    @property
    def begin_result(self) -> AppendResult:
        """Where the BeginTxn was stored."""
        return self._begin

    def _check_open(self, action: str) -> None:
        if self._state is not _HandleState.OPEN:
            raise InvalidTransactionStateError(
                f"cannot {action} txn {self.txn_id} on vchannel {self._vchannel!r}: it is "
                f"{self._state.value} (commit and rollback may each be called once, and bodies "
                f"only before either)"
            )

    async def append(self, message: MutableMessage) -> AppendResult:
        """Append an Insert or Delete of the transaction's vchannel as part of it."""
        self._check_open("append a body message to")
        return await self._wal.append(message.with_txn_context(self._context))

    async def commit(self) -> AppendResult:
        """Commit: waits for body appends in flight; readers then see all bodies at once."""
        return await self._end(MessageType.COMMIT_TXN, _HandleState.COMMITTED, "commit")

    async def rollback(self) -> AppendResult:
        """Roll back: no body of the transaction is ever delivered."""
        return await self._end(MessageType.ROLLBACK_TXN, _HandleState.ROLLED_BACK, "roll back")

    async def _end(self, mtype: MessageType, final: _HandleState, action: str) -> AppendResult:
        self._check_open(action)
        self._state = _HandleState.ENDING
        message = new_message(mtype, vchannel=self._vchannel).with_txn_context(self._context)
        try:
            result = await self._wal.append(message)
        except BaseException:
            self._state = _HandleState.OPEN  # the WAL's session now answers precisely
            raise
        self._state = final
        return result

    def __repr__(self) -> str:
        return f"TxnHandle(txn={self.txn_id}, vchannel={self._vchannel!r}, {self._state.value})"
