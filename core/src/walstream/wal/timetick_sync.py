"""The time-tick sync: release acknowledged messages to readers, and persist TimeTicks.

Release on ack: soon after the ack manager confirms new messages (its listener,
at most once per event-loop iteration) they go to the write-ahead buffer at
once, covered by a not-persisted TimeTick at a fresh sync timestamp (or at the
confirmed watermark if the TSO would have to wait). Tailing readers get them
without waiting for a backend write or for the next periodic sync. Both are
valid promises: every timetick at or below them is acknowledged.

Persist: the periodic sync (every interval, and on demand) writes a persisted
TimeTick at the confirmed watermark when messages were released since the last
persisted one, or when asked to (a scanner catching up needs one it will reach
in the log; close writes a last one). Every message at or below the watermark
is in the log before it, so backend readers can release their reorder buffers
and switch to the write-ahead buffer at it. Otherwise the sync's tick is not
persisted and only advances in-memory readers. The sync's tick passes through
the chain either way (whose timetick step expires due transactions); release
ticks do not, so transactions expire at every sync as before.

The buffer needs strictly increasing ticks and messages in timetick order, so
every push happens synchronously right after the messages were taken from the
ack manager, never across an await: a sync releases what it took before it
writes its tick, and pushes the tick afterwards only if it is still the newest.
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
from walstream.wal.ack import AckManager, SyncResult
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
        release_on_ack: bool = True,
    ) -> None:
        """Sync ticks go through ``append`` (the chain); ``hint_id`` names a stored id for
        in-memory ticks; ``on_batch`` gets each batch of released messages.

        ``release_on_ack`` registers with ``ack_manager`` to release messages as
        soon as they are confirmed; ``False`` releases them at syncs only.
        """
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
        # Timetick of the last persisted TimeTick, and of the newest message
        # released: messages were released since the last persisted tick (which
        # must then be written) iff the second is above the first.
        self._persisted_timetick = wab.last_timetick
        self._released_timetick = wab.last_timetick
        self._releasing = release_on_ack
        self.persisted_ticks = 0
        """TimeTicks written to the backend by this sync (for tests and metrics)."""
        self.releases = 0
        """Batches released to the write-ahead buffer on ack, between syncs (for tests and metrics)."""
        if release_on_ack:
            ack_manager.set_listener(self._on_acknowledged)

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
        """One last persisted sync at close, after :meth:`stop` (not concurrent with any).

        Releasing on ack ends here: what is acknowledged later is not delivered.
        """
        try:
            if self._fatal is None:
                await self._sync_once(force_persist=True)
        finally:
            self._stop_releasing()

    @property
    def dirty(self) -> bool:
        """Whether messages were released since the last persisted TimeTick."""
        return self._released_timetick > self._persisted_timetick

    def _stop_releasing(self) -> None:
        if self._releasing:
            self._releasing = False
            self._ack.set_listener(None)

    # --- release on ack ----------------------------------------------------------------

    def _on_acknowledged(self) -> None:
        # Called by the ack manager from the event loop (call_soon), never inside an ack.
        if not self._releasing or self._fatal is not None:
            return
        # A fresh sync timestamp lets the tick promise up to "now" when nothing else is
        # in flight; if the TSO would have to wait, the watermark itself is a valid
        # tick: do not make readers wait for a TSO window extension.
        result = self._ack.try_sync_nowait() or self._ack.take_acknowledged()
        if not result.details:
            return
        try:
            self._release(result)
        except Exception:
            # Cannot happen unless an invariant broke; keep the WAL running and say so.
            log.exception("releasing acknowledged messages to the write-ahead buffer failed")
        else:
            self.releases += 1

    def _release(self, result: SyncResult) -> None:
        """Push ``result``'s messages with a not-persisted TimeTick at its timetick.

        Synchronous: the caller took ``result`` from the ack manager without an
        await since, so nothing newer reached the buffer in between.
        """
        messages = [detail.message for detail in result.details]  # in timetick order
        self._wab.append(messages, self._memory_tick(result))
        if messages:
            self._released_timetick = max(self._released_timetick, messages[-1].timetick)
        self._report(messages)

    def _memory_tick(self, result: SyncResult) -> ImmutableMessage:
        return (
            new_message(MessageType.TIME_TICK, vchannel=None)
            .with_timetick(result.timetick)
            .with_last_confirmed(result.last_confirmed_message_id)
            .with_not_persisted()
            .into_immutable(self._hint_id())
        )

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
        tt = result.timetick
        if result.details:
            # Released before the tick is written, without an await in between:
            # a release on ack during the write would otherwise push newer
            # messages ahead of these.
            self._release(result)
        # Also when eviction took the buffer's floor above the newest persisted tick: a
        # scanner catching up from the backend can only switch to the buffer at or above
        # its floor, so the log needs a tick there (an idle WAL evicts by age).
        evicted_past = self._wab.floor_timetick > self._persisted_timetick
        persist = (self.dirty or force_persist or evicted_past) and tt > self._persisted_timetick
        if not persist and tt <= self._wab.last_timetick:
            # A slow append holds the watermark back: nothing new can be promised
            # yet, and the log already has a tick at it.
            return
        tick = (
            new_message(MessageType.TIME_TICK, vchannel=None)
            .with_timetick(tt)
            .with_last_confirmed(result.last_confirmed_message_id)
        )
        if not persist:
            tick.with_not_persisted()
        try:
            appended = await self._append(tick)
        except BaseException:
            if tt > self._wab.last_timetick:
                # Readers still learn that time moved on; the next sync retries the
                # persisted tick (still dirty).
                self._wab.append([], self._memory_tick(result))
            raise
        if persist:
            self.persisted_ticks += 1
            self._persisted_timetick = tt
        # The buffer may have moved past it by releases during the append; the
        # log has it anyway, and readers switching at it find what follows.
        if tt > self._wab.last_timetick:
            self._wab.append([], tick.into_immutable(appended.message_id))

    def _report(self, messages: Sequence[ImmutableMessage]) -> None:
        if messages and self._on_batch is not None:
            self._on_batch(messages)
