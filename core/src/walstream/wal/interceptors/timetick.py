"""TimeTick: every message gets a TSO timetick and its last-confirmed id; acks follow appends.

Appends run concurrently; the ack manager's watermark tells the time-tick sync
which timeticks are settled. A TimeTick message (from the sync) carries its own
timetick and only triggers transaction expiry here.

Cancellation: once the inner append started, a cancelled caller still waits for
it to end (it is bounded by the backend retry timeout), so the acknowledgement
matches what the log holds and the write-ahead buffer never misses a stored
message. A second cancellation stops waiting and acknowledges with the error.
"""

from __future__ import annotations

import asyncio
import functools
from typing import ClassVar

from walstream.message import MessageType, MutableMessage
from walstream.wal.ack import AckManager
from walstream.wal.chain import AppendFunc, AppendResult, Interceptor
from walstream.wal.interceptors.txn import TxnDispatcher

__all__ = ["TimeTickInterceptor"]


class TimeTickInterceptor(Interceptor):
    """Allocates, stamps and acknowledges timeticks; drives transactions."""

    name: ClassVar[str] = "timetick"

    def __init__(self, ack_manager: AckManager, txns: TxnDispatcher) -> None:
        """Timeticks from ``ack_manager``; transaction messages through ``txns``."""
        self._ack = ack_manager
        self._txns = txns

    async def do_append(self, message: MutableMessage, next_: AppendFunc) -> AppendResult:
        """Stamp, append through ``next_``, acknowledge with the stored message or the error."""
        if message.message_type is MessageType.TIME_TICK:
            self._txns.manager.cleanup_until(message.timetick)
            return await next_(message)
        acker = await self._ack.allocate(message.barrier_timetick)
        timetick = acker.timestamp
        message.with_timetick(timetick).with_last_confirmed(acker.last_confirmed_message_id)
        try:
            step = await self._txns.prepare(message, timetick)
        except BaseException as exc:
            acker.ack(exc)
            raise
        session = step.session if step is not None else None
        task = asyncio.ensure_future(next_(message))
        cancelled = await _wait_to_end(task)
        error: BaseException | None = (
            (cancelled or asyncio.CancelledError()) if task.cancelled() else task.exception()
        )
        if step is not None:
            self._txns.finish(step, ok=error is None)
        if error is not None:
            acker.ack(error, session)
            raise cancelled if cancelled is not None else error
        result = task.result()
        acker.ack(message.into_immutable(result.message_id), session)
        if cancelled is not None:
            raise cancelled
        return AppendResult(
            result.message_id,
            timetick,
            acker.last_confirmed_message_id,
            session.txn_context if session is not None else message.txn_context,
        )


async def _wait_to_end(task: asyncio.Future[AppendResult]) -> asyncio.CancelledError | None:
    """Wait for ``task`` to end even if cancelled once; return the cancellation to re-raise.

    Like ``asyncio.wait([task])`` (it neither raises the task's error nor cancels it
    when we are cancelled), without its per-call set, list and callbacks: this runs
    once per appended message.
    """
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        wake = functools.partial(_wake, waiter)
        task.add_done_callback(wake)
        try:
            await waiter
        except asyncio.CancelledError as exc:
            task.remove_done_callback(wake)
            if cancelled is not None:
                task.cancel()  # cancelled twice: stop the append itself
            cancelled = exc
    return cancelled


def _wake(waiter: asyncio.Future[None], _task: object) -> None:
    if not waiter.done():
        waiter.set_result(None)
