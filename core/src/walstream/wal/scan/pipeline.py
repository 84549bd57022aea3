"""The consume side of a scanner: filter, reorder, assemble transactions, hold for the reader.

Fed messages as the produce side reads them (log order from the backend, or
timetick order from the write-ahead buffer). Non-TimeTick messages that pass
the filters wait in the :class:`ReorderBuffer`; each TimeTick ``T`` releases
everything up to ``T`` in timetick order through the :class:`TxnBuffer` into
the *ready* queue the reader takes from.

TimeTick delivery (Milvus's rule): a TimeTick is delivered when it is
persisted (it is a message of the log, and a consumer that tracks positions
must see it), or, when it is not persisted, only if nothing else is pending
once its released messages were queued: then it is the only way the reader
learns that time moved on. A not-persisted tick behind pending messages adds
nothing: those messages, and the next tick, carry later timeticks. A tick is
never delivered at or below a timetick already delivered, nor when the
timetick filter excludes it.

Back-pressure: at most ``buffer_messages`` messages are ready. While the queue
is full, :meth:`DeliveryPipeline.feed` waits, and the produce loop that calls it
stops reading upstream. Messages released by one TimeTick but not yet ready are
*staged*; together with the reorder buffer they hold at most what the writer
stored between two TimeTicks.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from walstream.message import ImmutableMessage, MessageType
from walstream.wal.options import WALReadOption
from walstream.wal.reorder import PushResult, ReorderBuffer
from walstream.wal.scan.filters import build_message_filter, tick_visible
from walstream.wal.scan.signal import Signal
from walstream.wal.txn_buffer import DEFAULT_TXN_KEEPALIVE_MS, TxnBuffer

__all__ = ["DeliveryPipeline", "PipelineStats"]


@dataclass(frozen=True, slots=True)
class PipelineStats:
    """What the consume side holds now and what it did so far."""

    ready: int
    """Messages waiting for the reader (at most ``buffer_messages``)."""
    staged: int
    """Messages released by a TimeTick, waiting for room in the ready queue."""
    reordering: int
    """Messages in the reorder buffer, waiting for a TimeTick."""
    open_txns: int
    """Transactions begun but not yet committed, rolled back or expired."""
    held_bytes: int
    """Sum of ``size`` over everything above (transaction parts included)."""
    delivered: int
    """Messages the reader took."""
    filtered: int
    """Messages dropped by the vchannel or deliver filter."""
    duplicates: int
    """Messages dropped because the same id was already held (a source switch)."""
    late: int
    """Messages dropped because their timetick was already released or delivered."""

    @property
    def held_messages(self) -> int:
        """Messages held: ready, staged and reordering."""
        return self.ready + self.staged + self.reordering


class DeliveryPipeline:
    """Consume side of one scanner (see the module docs). Single producer task.

    The reader side (:meth:`take`, :meth:`wait_readable`) may run in any task of
    the same event loop.
    """

    def __init__(
        self, option: WALReadOption, *, txn_keepalive_ms: int = DEFAULT_TXN_KEEPALIVE_MS
    ) -> None:
        self._accept = build_message_filter(option)
        self._filter = option.deliver_filter
        self._capacity = option.buffer_messages
        self._reorder = ReorderBuffer()
        self._txns = TxnBuffer(default_keepalive_ms=txn_keepalive_ms)
        # Their bytes are summed only in stats(): ``size`` is not free per message.
        self._staged: deque[ImmutableMessage] = deque()
        self._ready: deque[ImmutableMessage] = deque()
        self._last_timetick = -1  # of the newest ready message: output is strictly above it
        self._readable = Signal()
        self._writable = Signal()
        self._closed = False
        self._delivered = 0
        self._filtered = 0
        self._late = 0

    # --- producer side -----------------------------------------------------------

    async def feed(self, message: ImmutableMessage) -> None:
        """Take one message from upstream; waits while the ready queue is full."""
        if message.message_type is MessageType.TIME_TICK:
            await self._on_tick(message)
        elif not self._accept(message):
            self._filtered += 1
        elif self._reorder.push(message) is PushResult.TIMETICK_VIOLATION:
            pass  # counted by the reorder buffer; reported in stats()

    async def _on_tick(self, tick: ImmutableMessage) -> None:
        tt = tick.timetick
        self._staged.extend(self._reorder.pop_until(tt))
        queued = False
        staged, ready, capacity = self._staged, self._ready, self._capacity
        while staged:
            # Wait before taking it out of staging, so that every message is
            # counted somewhere while the reader is slow. (Checked here first: no
            # coroutine per message while there is room.)
            if len(ready) >= capacity:
                await self._wait_room()
            out = self._txns.push(staged.popleft())
            if out is not None:
                queued = self._put(out) or queued
        self._txns.expire(tt)
        if (
            tt > self._last_timetick
            and tick_visible(self._filter, tt)
            and (tick.is_persisted or (not queued and not self._ready))
        ):
            await self._wait_room()
            self._put(tick)

    async def _wait_room(self) -> None:
        while len(self._ready) >= self._capacity and not self._closed:
            await self._writable.wait()

    def _put(self, message: ImmutableMessage) -> bool:
        if self._closed:
            return False
        tt = message.timetick
        if tt <= self._last_timetick:
            # Only reachable if a writer broke the TimeTick promise; never
            # deliver out of order, drop and count instead.
            self._late += 1
            return False
        self._last_timetick = tt
        self._ready.append(message)
        self._readable.notify()
        return True

    # --- reader side ---------------------------------------------------------------

    def take(self) -> ImmutableMessage | None:
        """The next ready message, or ``None`` if there is none now; never waits."""
        if not self._ready:
            return None
        message = self._ready.popleft()
        self._delivered += 1
        self._writable.notify()
        return message

    async def wait_readable(self) -> None:
        """Sleep until a message is queued or :meth:`wake` / :meth:`close` is called."""
        await self._readable.wait()

    def wake(self) -> None:
        """Wake every reader waiting in :meth:`wait_readable` (the scanner ended)."""
        self._readable.notify()

    def close(self) -> None:
        """Drop everything held and release every waiter; idempotent."""
        self._closed = True
        self._ready.clear()
        self._staged.clear()
        self._readable.notify()
        self._writable.notify()

    # --- state -------------------------------------------------------------------------

    @property
    def last_timetick(self) -> int:
        """Timetick of the newest message queued for the reader (-1 before any)."""
        return self._last_timetick

    def stats(self) -> PipelineStats:
        """A snapshot of what is held and what was dropped."""
        return PipelineStats(
            ready=len(self._ready),
            staged=len(self._staged),
            reordering=len(self._reorder),
            open_txns=len(self._txns),
            held_bytes=sum(m.size for m in self._ready)
            + sum(m.size for m in self._staged)
            + self._reorder.bytes
            + self._txns.bytes,
            delivered=self._delivered,
            filtered=self._filtered,
            duplicates=self._reorder.duplicates,
            late=self._late + self._reorder.violations,
        )
