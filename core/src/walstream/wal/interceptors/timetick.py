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

from walstream.message import ImmutableMessage, MessageType, MutableMessage
from walstream.wal.ack import Acker, AckManager
from walstream.wal.chain import AppendFunc, AppendResult, BatchAppendFunc, Interceptor, Outcome
from walstream.wal.interceptors.txn import TxnDispatcher, TxnStep

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
        # The synchronous paths first: no coroutine per message when nothing has to wait.
        barrier = message.barrier_timetick
        acker = self._ack.try_allocate(barrier)
        if acker is None:
            acker = await self._ack.allocate_waiting(barrier)
        timetick = acker.timestamp
        message.with_timetick(timetick).with_last_confirmed(acker.last_confirmed_message_id)
        step: TxnStep | None = None
        try:
            # ``prepare`` returns None for anything else: skip its coroutine.
            if message.message_type in _TXN_CONTROL or message.txn_context is not None:
                step = await self._txns.prepare(message, timetick)
        except BaseException as exc:
            acker.ack(exc)
            raise
        session = step.session if step is not None else None
        task = asyncio.ensure_future(next_(message))
        # Wait for ``task`` to end even if cancelled once (keep the cancellation to re-raise);
        # cancelled twice: cancel the append itself. Like ``asyncio.wait([task])`` without
        # its per-call set, list and callbacks, and inline (no coroutine of its own): this
        # runs once per appended message.
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
        error: BaseException | None = (
            (cancelled or asyncio.CancelledError()) if task.cancelled() else task.exception()
        )
        if step is not None:
            self._txns.finish(step, ok=error is None)
        if error is not None:
            acker.ack(error, session)
            try:
                raise cancelled if cancelled is not None else error
            finally:
                # The error's traceback holds this frame: drop the locals that hold the
                # error, or each failed append is a reference cycle until a full collection.
                del task, error, cancelled, acker
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

    async def do_append_batch(
        self, messages: list[MutableMessage], next_: BatchAppendFunc
    ) -> list[Outcome]:
        """Stamp every message (timeticks in batch order), append them together, ack each.

        A batch holds no TimeTick and no transaction message. Every allocated
        timetick is acknowledged, with the message or with its error.
        """
        ack = self._ack
        ackers = ack.try_allocate_many(len(messages))
        if ackers is None:
            ackers = []
            try:
                for _ in messages:
                    acker = ack.try_allocate(None)
                    ackers.append(acker if acker is not None else await ack.allocate_waiting(None))
            except BaseException as exc:
                ack.ack_many([(acker, exc) for acker in ackers])
                raise
        for message, acker in zip(messages, ackers, strict=True):
            message.with_timetick(acker.timestamp).with_last_confirmed(
                acker.last_confirmed_message_id
            )
        # Awaited directly, not in a task of its own: batches run in the WAL's own tasks,
        # which nothing cancels but the event loop's teardown (then every timetick is
        # acknowledged with the cancellation, and the process is going away).
        outcomes: list[Outcome]
        try:
            outcomes = await next_(messages)
        except BaseException as exc:
            ack.ack_many([(acker, exc) for acker in ackers])
            raise
        results: list[Outcome] = []
        acks: list[tuple[Acker, ImmutableMessage | BaseException]] = []
        for message, acker, outcome in zip(messages, ackers, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                acks.append((acker, outcome))
                results.append(outcome)
            else:
                acks.append((acker, message.into_immutable(outcome.message_id)))
                results.append(
                    AppendResult(
                        outcome.message_id, acker.timestamp, acker.last_confirmed_message_id
                    )
                )
        ack.ack_many(acks)
        return results


_TXN_CONTROL = frozenset({MessageType.BEGIN_TXN, MessageType.COMMIT_TXN, MessageType.ROLLBACK_TXN})


def _wake(waiter: asyncio.Future[None], _task: object) -> None:
    if not waiter.done():
        waiter.set_result(None)
