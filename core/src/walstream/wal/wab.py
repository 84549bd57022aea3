"""Write-ahead buffer: the recent persisted messages of a pchannel and their ticks, in timetick order.

The WAL's time-tick sync is the only writer: after each sync it appends the
messages acknowledged since the previous one plus the TimeTick that covers them.
Tailing scanners read from here instead of the backend. The buffer keeps only
the newest messages (bounded by age and bytes); a reader asking for something
older, or falling behind eviction, gets :class:`EvictedError` and catches up from
the backend, then rejoins with :meth:`WriteAheadBuffer.read_from_exclusive_timetick`.

One writer, many readers, one asyncio event loop; no locks are needed because
nothing awaits between a state check and the change it guards.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable, Sequence

from walstream.message import ImmutableMessage, MessageType
from walstream.wal.errors import EvictedError, WALInvariantError, WriteAheadBufferClosedError

__all__ = [
    "DEFAULT_CAPACITY_BYTES",
    "DEFAULT_KEEPALIVE_SECONDS",
    "WriteAheadBuffer",
    "WriteAheadBufferCursor",
]

DEFAULT_CAPACITY_BYTES = 64 * 1024 * 1024
"""Milvus ``streaming.walWriteAheadBuffer.capacity``."""
DEFAULT_KEEPALIVE_SECONDS = 30.0
"""Milvus ``streaming.walWriteAheadBuffer.keepalive``."""

_COMPACT_MIN = 1024


class WriteAheadBuffer:
    """An in-memory, timetick-ordered queue of persisted messages (see module docs).

    Invariant readers rely on: every persisted message with a timetick above
    ``floor_timetick`` that was appended is still held.
    """

    def __init__(
        self,
        initial_tick: ImmutableMessage,
        *,
        capacity_bytes: int = DEFAULT_CAPACITY_BYTES,
        keepalive: float = DEFAULT_KEEPALIVE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Start the buffer at the WAL's first TimeTick (written when the WAL opened).

        Nothing older than ``initial_tick`` is ever held, so reads from before it
        raise ``EvictedError``. ``keepalive`` is in seconds of ``clock``.
        """
        if capacity_bytes <= 0:
            raise ValueError(f"capacity_bytes must be positive, got {capacity_bytes}")
        if keepalive <= 0:
            raise ValueError(f"keepalive must be positive, got {keepalive}")
        _check_tick(initial_tick)
        self._capacity = capacity_bytes
        self._keepalive = keepalive
        self._clock = clock
        # One entry per held message, as four parallel lists rather than an object per
        # message: the buffer holds tens of thousands, and every object is one more for
        # the garbage collector to walk. Slots before _head were evicted (message None);
        # compacted in bulk so eviction is O(1).
        self._messages: list[ImmutableMessage | None] = []
        self._timeticks: list[int] = []
        self._sizes: list[int] = []
        self._added_at: list[float] = []
        self._head = 0
        self._base = 0  # offset of entry 0
        self._bytes = 0
        self._floor = initial_tick.timetick
        self._last_tick = initial_tick
        self._closed = False
        self._changed = asyncio.Event()
        if initial_tick.is_persisted:
            self._push([initial_tick], self._clock())

    # --- writer ---------------------------------------------------------------

    def append(self, messages: Sequence[ImmutableMessage], tick: ImmutableMessage) -> None:
        """Add the messages acknowledged since the last sync, then the TimeTick covering them.

        ``messages`` must be persisted, in timetick order, with timeticks in
        ``(last_timetick, tick.timetick]``; ``tick`` must be a TimeTick above the
        last one, persisted or not (a not-persisted tick is held like any other, so
        readers behind the newest tick still see it). Broken invariants raise
        ``WALInvariantError`` and change nothing. Ignored after ``close()``.
        """
        if self._closed:
            return
        _check_tick(tick)
        last = self._last_tick.timetick
        tt = tick.timetick
        if tt <= last:
            raise WALInvariantError(
                f"write-ahead buffer: TimeTick {tt} is not above the last TimeTick {last}"
            )
        prev = last
        for msg in messages:
            if not msg.is_persisted or msg.message_type is MessageType.TXN:
                raise WALInvariantError(
                    f"write-ahead buffer holds persisted log messages only, got {msg!r}"
                )
            mtt = msg.timetick
            if mtt <= last or mtt > tt:
                raise WALInvariantError(
                    f"write-ahead buffer: message {msg!r} at timetick {mtt} is outside "
                    f"({last}, {tt}] between the last TimeTick and this one"
                )
            if mtt < prev:
                raise WALInvariantError(
                    f"write-ahead buffer: messages out of timetick order ({mtt} after {prev})"
                )
            prev = mtt
        now = self._clock()
        self._push(messages, now)
        # Every tick is held, persisted or not: a reader behind the newest tick needs
        # the ticks between batches too, or its reorder buffer would hold everything
        # it reads until it reaches the end.
        self._push([tick], now)
        self._last_tick = tick
        self._evict(now)
        self._wake()

    def evict(self) -> int:
        """Evict by age and size now (appends do it too); return how many were evicted.

        For a periodic maintenance call while no TimeTicks arrive.
        """
        return self._evict(self._clock())

    def close(self) -> None:
        """Release the held messages and end every waiting and future read; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._messages, self._timeticks, self._sizes, self._added_at = [], [], [], []
        self._head = 0
        self._bytes = 0
        self._wake()

    def _push(self, messages: Sequence[ImmutableMessage], now: float) -> None:
        sizes = [msg.size for msg in messages]
        self._messages.extend(messages)
        self._timeticks.extend([msg.timetick for msg in messages])
        self._sizes.extend(sizes)
        self._added_at.extend([now] * len(sizes))
        self._bytes += sum(sizes)

    def _evict(self, now: float) -> int:
        messages, timeticks, sizes, added_at = (
            self._messages,
            self._timeticks,
            self._sizes,
            self._added_at,
        )
        start = self._head
        head = start
        # The last entry (a tick) is never evicted, so the floor stays at or below the
        # newest persisted message: a catch-up reader can always reach it in the backend
        # and switch to the buffer.
        last = len(messages) - 1
        while head < last:
            if self._bytes <= self._capacity and now - added_at[head] <= self._keepalive:
                break
            self._bytes -= sizes[head]
            self._floor = max(self._floor, timeticks[head])
            messages[head] = None  # the memory goes; a cursor still holding it keeps its copy
            head += 1
        self._head = head
        if head >= _COMPACT_MIN and head * 2 >= len(messages):
            del messages[:head], timeticks[:head], sizes[:head], added_at[:head]
            self._base += head
            self._head = 0
        return head - start

    def _wake(self) -> None:
        # Readers wait on the current event; swapping in a fresh one before
        # setting the old one means nobody can miss a change or see a stale set.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # --- readers ----------------------------------------------------------------

    def read_from_exclusive_timetick(self, timetick: int) -> WriteAheadBufferCursor:
        """A cursor that yields every message with a timetick above ``timetick``.

        Raises ``EvictedError`` if the buffer may no longer hold all of them
        (``timetick < floor_timetick``): read from the backend instead. A timetick
        ahead of the buffer is fine: the cursor skips anything up to it.
        Raises ``WriteAheadBufferClosedError`` after ``close()``.
        """
        self._check_open()
        if timetick < self._floor:
            raise EvictedError(
                f"write-ahead buffer holds messages after timetick {self._floor} only; "
                f"{timetick} is older: read from the backend"
            )
        idx = bisect.bisect_right(self._timeticks, timetick, lo=self._head)
        return WriteAheadBufferCursor(self, self._base + idx, timetick)

    def _check_open(self) -> None:
        if self._closed:
            raise WriteAheadBufferClosedError("the write-ahead buffer is closed")

    def _entry(self, offset: int) -> tuple[int, ImmutableMessage] | None:
        """(timetick, message) at ``offset``; None past the end; ``EvictedError`` if evicted."""
        self._check_open()
        idx = offset - self._base
        if idx < self._head:
            raise EvictedError(
                f"write-ahead buffer evicted offset {offset} (it holds {self.first_offset} "
                f"onwards): the reader fell behind; catch up from the backend"
            )
        if idx >= len(self._messages):
            return None
        message = self._messages[idx]
        assert message is not None  # only evicted entries drop it, and those are below _head
        return self._timeticks[idx], message

    # --- state --------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    @property
    def last_timetick_message(self) -> ImmutableMessage:
        """The newest TimeTick appended, persisted or not."""
        return self._last_tick

    @property
    def last_timetick(self) -> int:
        """Timetick of ``last_timetick_message``: everything up to it has been appended."""
        return self._last_tick.timetick

    @property
    def floor_timetick(self) -> int:
        """Every appended message with a timetick above this is still held."""
        return self._floor

    @property
    def first_offset(self) -> int:
        """Offset of the oldest held message."""
        return self._base + self._head

    @property
    def next_offset(self) -> int:
        """Offset the next appended message will get."""
        return self._base + len(self._messages)

    def __len__(self) -> int:
        """Messages held."""
        return len(self._messages) - self._head

    @property
    def bytes(self) -> int:
        """Sum of ``size`` of the messages held."""
        return self._bytes

    @property
    def capacity_bytes(self) -> int:
        """Eviction starts when ``bytes`` is above this."""
        return self._capacity

    @property
    def keepalive(self) -> float:
        """Messages older than this (seconds of the clock) are evicted."""
        return self._keepalive


def _check_tick(tick: ImmutableMessage) -> None:
    if tick.message_type is not MessageType.TIME_TICK:
        raise WALInvariantError(f"write-ahead buffer expects a TimeTick, got {tick!r}")


class WriteAheadBufferCursor:
    """A reader's position in a :class:`WriteAheadBuffer`.

    Yields held messages in timetick order, then, at the end of the buffer, the
    latest TimeTick once if it is newer than anything yielded (how not-persisted
    ticks reach tailing readers), then waits for appends. A TimeTick at the same
    timetick as the last message yielded is yielded too (a sync may cover its
    messages with a tick at exactly the newest one's timetick): it is what
    releases that message downstream. Raises ``EvictedError``
    when its next message was evicted (switch back to catch-up from the backend,
    starting after ``last_timetick``), and ends with
    ``WriteAheadBufferClosedError`` (``async for`` just stops) once the buffer
    is closed.
    """

    __slots__ = ("_buffer", "_last_timetick", "_next_offset", "_tick_owed")

    def __init__(self, buffer: WriteAheadBuffer, next_offset: int, last_timetick: int) -> None:
        self._buffer = buffer
        self._next_offset = next_offset
        self._last_timetick = last_timetick
        # True while the last thing yielded is a message at _last_timetick: a
        # TimeTick at that same timetick is still to be yielded (it covers it).
        self._tick_owed = False

    @property
    def next_offset(self) -> int:
        """Offset of the next held message this cursor reads."""
        return self._next_offset

    @property
    def last_timetick(self) -> int:
        """The timetick of the last message yielded (or the start timetick)."""
        return self._last_timetick

    def try_next(self) -> ImmutableMessage | None:
        """The next message if one is available now, else ``None``; never waits."""
        buf = self._buffer
        while (entry := buf._entry(self._next_offset)) is not None:
            self._next_offset += 1
            timetick, message = entry
            # Entries at or below the start timetick exist when the cursor was
            # placed ahead of the buffer; they were already seen elsewhere.
            if timetick > self._last_timetick:
                self._last_timetick = timetick
                self._tick_owed = message.message_type is not MessageType.TIME_TICK
                return message
            if (
                self._tick_owed
                and timetick == self._last_timetick
                and message.message_type is MessageType.TIME_TICK
            ):
                self._tick_owed = False
                return message
        tick = buf.last_timetick_message
        tt = tick.timetick
        if tt > self._last_timetick or (self._tick_owed and tt == self._last_timetick):
            self._last_timetick = tt
            self._tick_owed = False
            return tick
        return None

    async def next(self) -> ImmutableMessage:
        """The next message, waiting for an append if there is none yet.

        Cancel the awaiting task (e.g. ``asyncio.timeout``) to stop waiting.
        """
        while True:
            changed = self._buffer._changed
            message = self.try_next()
            if message is not None:
                return message
            await changed.wait()

    def __aiter__(self) -> WriteAheadBufferCursor:
        return self

    async def __anext__(self) -> ImmutableMessage:
        try:
            return await self.next()
        except WriteAheadBufferClosedError:
            raise StopAsyncIteration from None
