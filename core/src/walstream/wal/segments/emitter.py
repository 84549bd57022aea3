"""``FlushEmitter``: appends the Flush of each sealed segment, exactly once, and tells observers.

A seal is decided in memory first (the segment takes no further insert at once);
the Flush message follows through the WAL's internal append once the segment is
settled: no insert assigned to it still in flight, no open transaction with a body
in it (Milvus's ack and txn semaphores), so the Flush comes after all of them. A
Flush that fails to append is kept and retried on the next periodic tick, so a
sealed segment is never left without its Flush while the WAL lives.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from walstream import hooks
from walstream.wal.chain import AppendFunc
from walstream.wal.segments.messages import flush_message
from walstream.wal.segments.state import GrowingSegment
from walstream.walimpls.options import PChannelInfo

log = logging.getLogger(__name__)

SEALED_HOOK = "walstream_segment_sealed"


class FlushEmitter:
    """Turns sealed segments into appended Flush messages."""

    def __init__(self, pchannel: PChannelInfo, append_system: AppendFunc) -> None:
        self._pchannel = pchannel
        self._append = append_system
        # Sealed, Flush not appended yet (failed, or queued behind another emission).
        self._unflushed: dict[int, tuple[GrowingSegment, str]] = {}
        self._waiting: set[int] = set()  # unflushed, waiting for ``GrowingSegment.settled``
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def unflushed(self) -> list[int]:
        """Ids of sealed segments whose Flush is still to be appended."""
        return sorted(self._unflushed)

    async def flush_all(self, sealed: Iterable[tuple[GrowingSegment, str]]) -> None:
        """Append a Flush for each (segment, reason); failures are logged and kept for retry."""
        batch = list(sealed)
        # Record all first: if this task is cancelled half way the rest is still retried.
        for seg, reason in batch:
            self._unflushed.setdefault(seg.segment_id, (seg, reason))
        for seg, _ in batch:
            await self._emit(seg.segment_id)

    def flush_soon(self, sealed: Iterable[tuple[GrowingSegment, str]]) -> None:
        """Like ``flush_all``, in a background task: for callers that hold a vchannel lock.

        A Flush runs the whole chain and takes the vchannel read lock; awaited
        under that vchannel's write lock (ManualFlush, drops), or under a read
        lock with a writer queued behind it (an Insert), it would deadlock.
        """
        batch = list(sealed)
        if not batch:
            return
        # Recorded now, so a tick's retry may already send them; ``_emit`` sends each once.
        for seg, reason in batch:
            self._unflushed.setdefault(seg.segment_id, (seg, reason))
        task = asyncio.get_running_loop().create_task(
            self._emit_each([seg.segment_id for seg, _ in batch]), name="walstream-segment-flush"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every background Flush started so far has been attempted."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Cancel background Flushes (those not appended stay in ``unflushed``)."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def retry(self) -> None:
        """Append the Flush of every segment whose earlier attempt failed."""
        await self._emit_each(list(self._unflushed))

    def _settled(self, segment_id: int) -> None:
        self._waiting.discard(segment_id)
        if segment_id not in self._unflushed or self._closed:
            return
        task = asyncio.get_running_loop().create_task(
            self._emit_each([segment_id]), name="walstream-segment-flush"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _emit_each(self, segment_ids: list[int]) -> None:
        for segment_id in segment_ids:
            await self._emit(segment_id)

    async def _emit(self, segment_id: int) -> None:
        entry = self._unflushed.get(segment_id)
        if entry is None:
            return
        seg, reason = entry
        if not seg.settled:
            # Inserts into it are in flight, or an open transaction wrote into it: its
            # Flush must come after them. Queued; emitted once they are done.
            if segment_id not in self._waiting:
                self._waiting.add(segment_id)
                seg.when_settled(lambda: self._settled(segment_id))
            return
        # Taken out while in flight so a concurrent retry cannot append a second Flush.
        del self._unflushed[segment_id]
        try:
            await self._append(flush_message(seg, reason))
        except BaseException as exc:
            self._unflushed[segment_id] = entry
            if not isinstance(exc, Exception):
                raise  # cancellation: keep it queued and stop
            log.warning(
                "Flush of segment %d (%s) on %s failed; retried on the next tick",
                segment_id,
                reason,
                seg.stats.vchannel,
                exc_info=True,
            )
            return
        log.info("segment %d on %s sealed (%s)", segment_id, seg.stats.vchannel, reason)
        if hooks.has_observers(SEALED_HOOK):
            hooks.notify(
                SEALED_HOOK,
                pchannel=self._pchannel,
                vchannel=seg.stats.vchannel,
                segment_id=segment_id,
            )
