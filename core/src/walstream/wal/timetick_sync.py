"""The time-tick sync: periodically (and on demand) cover acknowledged messages with a TimeTick.

Each sync takes what the ack manager confirmed since the last one. If real
messages were acknowledged, a persisted TimeTick at the confirmed watermark is
appended to the backend (so backend readers can release their reorder buffers),
then the messages and the tick go to the write-ahead buffer. Otherwise the
TimeTick is not persisted: it only advances in-memory readers. Either way the
tick passes through the chain, whose timetick step expires due transactions.

One background task runs every sync, so there is at most one at a time; an
on-demand request wakes it, and a persisted request wins over a non-persisted one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from walstream.errors import FencedError, WALClosedError
from walstream.message import ImmutableMessage, MessageID, MessageType, new_message
from walstream.wal.ack import AckManager
from walstream.wal.chain import AppendFunc
from walstream.wal.wab import WriteAheadBuffer

__all__ = ["TimeTickSync"]

log = logging.getLogger(__name__)


class TimeTickSync:
    """Runs the syncs of one WAL (see module docs)."""

    def __init__(
        self,
        *,
        ack_manager: AckManager,
        wab: WriteAheadBuffer,
        append: AppendFunc,
        hint_id: Callable[[], MessageID],
        interval_s: float,
        on_batch: Callable[[Sequence[ImmutableMessage]], None] | None = None,
    ) -> None:
        """Ticks go through ``append`` (the chain); ``hint_id`` names a stored id for
        in-memory ticks if a persisted one fails; ``on_batch`` gets each sync's messages."""
        self._ack = ack_manager
        self._wab = wab
        self._append = append
        self._hint_id = hint_id
        self._interval = interval_s
        self._on_batch = on_batch
        self._wakeup = asyncio.Event()
        self._want_persist = False
        self._waiters: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._fatal: FencedError | None = None
        self.persisted_ticks = 0
        """TimeTicks written to the backend by this sync (for tests and metrics)."""

    def start(self) -> None:
        """Start the periodic task (on the running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="walstream-timetick-sync"
            )

    async def sync(self, persisted: bool = False) -> None:
        """Run a sync now (or join the next one) and wait until it is done.

        ``persisted`` forces the TimeTick to the backend even if nothing new was
        acknowledged. Raises the sync's error, ``FencedError`` once fenced, or
        ``WALClosedError`` after :meth:`stop`.
        """
        self._check()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._want_persist = self._want_persist or persisted
        self._wakeup.set()
        await fut

    async def stop(self) -> None:
        """Stop the periodic task after the sync in progress; fail pending requests."""
        self._stopping = True
        self._wakeup.set()
        task = self._task
        if task is not None:
            # Not cancelled: a sync cut short after taking the acknowledged
            # messages would lose them for the write-ahead buffer.
            await asyncio.shield(task)
        self._fail_waiters(WALClosedError("the WAL is closing: no more time-tick syncs"))

    async def final_sync(self) -> None:
        """One last persisted sync at close, after :meth:`stop` (not concurrent with any)."""
        if self._fatal is None:
            await self._sync_once(force_persist=True)

    def _check(self) -> None:
        if self._fatal is not None:
            raise FencedError(f"the WAL was fenced: {self._fatal}")
        if self._stopping:
            raise WALClosedError("the WAL is closing: no more time-tick syncs")

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wakeup.wait()
            self._wakeup.clear()
            if self._stopping:
                return
            waiters, self._waiters = self._waiters, []
            persist, self._want_persist = self._want_persist, False
            error: BaseException | None = None
            try:
                await self._sync_once(persist)
            except FencedError as exc:
                self._fatal = exc
                error = exc
            except Exception as exc:
                log.warning("time-tick sync failed: %s", exc)
                error = exc
            for fut in waiters:
                if not fut.done():
                    if error is None:
                        fut.set_result(None)
                    else:
                        fut.set_exception(error)
            if self._fatal is not None:
                self._fail_waiters(FencedError(f"the WAL was fenced: {self._fatal}"))
                return

    def _fail_waiters(self, error: BaseException) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_exception(error)

    async def _sync_once(self, force_persist: bool) -> None:
        result = await self._ack.sync_and_get_acknowledged()
        if result.timetick <= self._wab.last_timetick:
            # A slow append holds the watermark back: nothing new can be promised yet.
            return
        messages = [detail.message for detail in result.details]  # in timetick order
        persist = bool(messages) or force_persist
        tick = (
            new_message(MessageType.TIME_TICK, vchannel=None)
            .with_timetick(result.timetick)
            .with_last_confirmed(result.last_confirmed_message_id)
        )
        if not persist:
            tick.with_not_persisted()
        try:
            appended = await self._append(tick)
        except BaseException:
            # The messages are in the log already; the buffer must still get them
            # in order, so cover them with an in-memory tick before giving up.
            fallback = (
                new_message(MessageType.TIME_TICK, vchannel=None)
                .with_timetick(result.timetick)
                .with_last_confirmed(result.last_confirmed_message_id)
                .with_not_persisted()
            )
            self._wab.append(messages, fallback.into_immutable(self._hint_id()))
            self._report(messages)
            raise
        if persist:
            self.persisted_ticks += 1
        self._wab.append(messages, tick.into_immutable(appended.message_id))
        self._report(messages)

    def _report(self, messages: Sequence[ImmutableMessage]) -> None:
        if messages and self._on_batch is not None:
            self._on_batch(messages)
