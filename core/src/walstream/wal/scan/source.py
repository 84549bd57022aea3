"""The produce side of a scanner: the backend (catch-up) or the write-ahead buffer (tailing).

Switch rules, chosen so that the consume side sees no gap and no duplicate:

- **Catch-up → tailing.** On each TimeTick ``T`` read from the backend, try
  ``wab.read_from_exclusive_timetick(T)``. Every message with a timetick
  ``<= T`` is stored before ``T`` in the log, so catch-up has read all of them;
  the cursor yields exactly those above ``T``. Messages above ``T`` that were
  stored before ``T`` were already read from the backend; they are still in the
  reorder buffer (only ``<= T`` was released), which drops the copies the cursor
  yields by message id. If the buffer has evicted past ``T`` (``EvictedError``)
  catch-up simply goes on to the next TimeTick.
- **Tailing → catch-up**, when the cursor's next message was evicted: read the
  backend from ``StartFrom(last-confirmed id)`` and drop every message with a
  timetick ``<= L``, ``L`` being the timetick of the last message the cursor
  yielded. The cursor yields in timetick order, so everything ``<= L`` was
  consumed and everything above is still to come; reading from the
  last-confirmed id of a message at ``<= L`` sees every message above it. The id
  is taken from the newest *persisted* message consumed (a not-persisted tick
  is not in the log, so its id is not trusted); without any, the scanner's own
  start position is used, which is always early enough.
- **No write-ahead buffer** (a read-only WAL): catch-up forever.
- **Backend read errors**: a transient one closes the backend reader, waits
  (backoff) and reopens it right after the last message read
  (``StartAfter(id)``), so nothing is lost or repeated; a final one ends the
  scanner. A ``Latest`` scanner that fails before its first message (or while
  opening its reader) has no such position; reopening at ``Latest`` would skip
  what was appended during the outage. Given ``latest_start`` (an RW WAL knows it:
  its last-confirmed id and confirmed watermark when the scanner was created) it
  reopens from that id and drops everything at or below the watermark: those were
  all stored before the scanner started. A message above it that was stored just
  before the start may then be delivered too; nothing appended later is missed.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass

from walstream.errors import WALClosedError
from walstream.message import ImmutableMessage, MessageID, MessageType
from walstream.message import properties as props
from walstream.wal.errors import EvictedError, ScannerBackendEndedError
from walstream.wal.scan.backoff import Backoff
from walstream.wal.wab import WriteAheadBuffer, WriteAheadBufferCursor
from walstream.walimpls.options import (
    DeliverLatest,
    DeliverPolicy,
    DeliverStartAfter,
    DeliverStartFrom,
    ReadOption,
)
from walstream.walimpls.spi import Scanner, WALImpl

__all__ = ["CLOSE_TIMEOUT_SECONDS", "LatestStart", "ScanMode", "SwitchableSource"]

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_SECONDS = 5.0
"""Longest wait for a backend reader to close; a stuck one is abandoned, not awaited forever."""


@dataclass(frozen=True, slots=True)
class LatestStart:
    """Where a ``Latest`` scanner resumes if its backend fails before its first message.

    ``after_timetick`` is the WAL's confirmed watermark when the scanner started: every
    message at or below it was stored (or failed) before then. Reading from
    ``message_id`` (the last-confirmed id of that moment) sees every message above it.
    """

    message_id: MessageID
    after_timetick: int


class ScanMode(enum.Enum):
    """Where a scanner reads from now."""

    CATCH_UP = "catch-up"
    """From the backend, in log order."""
    TAILING = "tailing"
    """From the write-ahead buffer, in timetick order."""


class SwitchableSource:
    """Yields the pchannel's messages from the backend or the write-ahead buffer.

    See the module docs for the switch rules. One task calls :meth:`next`;
    :meth:`close` may be called from another.
    """

    def __init__(
        self,
        impl: WALImpl,
        policy: DeliverPolicy,
        *,
        name: str,
        wab: WriteAheadBuffer | None,
        backoff: Backoff,
        transient: Callable[[BaseException], bool],
        read_ahead: int = 0,
        latest_start: LatestStart | None = None,
    ) -> None:
        self._impl = impl
        self._latest_start = latest_start
        self._name = name
        self._wab = wab
        self._backoff = backoff
        self._transient = transient
        self._read_ahead = read_ahead
        # Where the next backend reader starts; where to go back to without a
        # last-confirmed id (for Latest, fixed once the first message is read).
        self._policy: DeliverPolicy = policy
        self._origin: DeliverPolicy = policy
        self._reader: Scanner | None = None
        self._cursor: WriteAheadBufferCursor | None = None
        self._skip_until = -1  # drop every backend message at or below (already consumed)
        self._last_backend_id: MessageID | None = None
        self._tail_timetick = -1  # timetick of the last message the cursor yielded
        self._resume_from: MessageID | None = None
        # The newest consumed persisted message that carries a last-confirmed id;
        # decoded into _resume_from only when needed (a fall back), not per message.
        self._resume_message: ImmutableMessage | None = None
        self._closed = False
        self.to_tailing = 0
        """Switches catch-up → tailing so far."""
        self.to_catch_up = 0
        """Switches tailing → catch-up (evictions) so far."""
        self.read_retries = 0
        """Backend read attempts that failed with a transient error."""
        self.skipped = 0
        """Backend messages dropped: consumed before a switch, or without a timetick."""

    @property
    def mode(self) -> ScanMode:
        """Where the next message comes from."""
        return ScanMode.TAILING if self._cursor is not None else ScanMode.CATCH_UP

    async def open(self) -> None:
        """Open the backend reader now (``next`` would otherwise do it lazily).

        Lets the scanner open its position before it forces a TimeTick, so the
        forced tick is after the start even for ``Latest``.
        """
        if self._cursor is None and self._reader is None:
            self._reader = await self._open_reader()

    async def next(self) -> ImmutableMessage:
        """The next message for the consume side; waits at the tail.

        Raises the final backend error, ``ScannerBackendEndedError`` when the
        backend reader stopped by itself, ``WriteAheadBufferClosedError`` when the
        buffer closed, ``WALClosedError`` after :meth:`close`.
        """
        while True:
            if self._closed:
                raise WALClosedError(f"scanner {self._name!r} is closed")
            cursor = self._cursor
            if cursor is not None:
                try:
                    message = await cursor.next()
                except EvictedError:
                    self._fall_back()
                    continue
                self._tail_timetick = message.timetick
                self._note_position(message)
                return message
            backend_message = await self._next_from_backend()
            if backend_message is not None:
                return backend_message

    async def _next_from_backend(self) -> ImmutableMessage | None:
        """One message read from the backend; ``None`` if it was skipped or the read failed."""
        if self._reader is None:
            self._reader = await self._open_reader()
        try:
            message = await anext(self._reader)
        except StopAsyncIteration:
            if self._closed:
                raise WALClosedError(f"scanner {self._name!r} is closed") from None
            raise ScannerBackendEndedError(
                f"scanner {self._name!r}: the backend reader of {self._impl.channel.name!r} "
                f"stopped by itself (was its WAL closed?)"
            ) from None
        except Exception as exc:
            if self._closed or not self._transient(exc):
                raise
            await self._retry_after(exc)
            return None
        self._backoff.reset()
        self._last_backend_id = message.message_id
        if isinstance(self._origin, DeliverLatest):
            self._origin = DeliverStartFrom(message.message_id)
        if not message.has_timetick:
            # Not written through the WAL layer: it cannot be put in timetick order.
            self.skipped += 1
            log.warning("scanner %r: skipping %r, which carries no timetick", self._name, message)
            return None
        tt = message.timetick
        if tt <= self._skip_until:
            self.skipped += 1
            return None
        if message.message_type is MessageType.TIME_TICK and self._wab is not None:
            await self._try_tailing(message)
        return message

    def _note_position(self, message: ImmutableMessage) -> None:
        if message.is_persisted:
            stamped = message.properties
            if props.LAST_CONFIRMED in stamped or props.LAST_CONFIRMED_USE_SELF in stamped:
                self._resume_message = message  # its last_confirmed_message_id is not None

    async def _try_tailing(self, tick: ImmutableMessage) -> None:
        assert self._wab is not None
        try:
            cursor = self._wab.read_from_exclusive_timetick(tick.timetick)
        except EvictedError:
            return  # the buffer starts later: keep catching up to a later TimeTick
        self._cursor = cursor
        self._tail_timetick = tick.timetick
        # Only the tick's own last-confirmed id is valid here: the ones noted
        # earlier in catch-up came in log order, not timetick order.
        self._resume_from = tick.last_confirmed_message_id if tick.is_persisted else None
        self._resume_message = None
        self.to_tailing += 1
        log.debug("scanner %r: tailing the write-ahead buffer after %d", self._name, tick.timetick)
        await self._close_reader()

    def _fall_back(self) -> None:
        self._cursor = None
        self._skip_until = self._tail_timetick
        if self._resume_message is not None:
            self._resume_from = self._resume_message.last_confirmed_message_id
            self._resume_message = None
        resume = self._resume_from
        self._policy = DeliverStartFrom(resume) if resume is not None else self._origin
        self._last_backend_id = None
        self.to_catch_up += 1
        log.debug(
            "scanner %r: evicted from the write-ahead buffer after %d; catching up from %r",
            self._name,
            self._tail_timetick,
            self._policy,
        )

    async def _open_reader(self) -> Scanner:
        while True:
            if self._closed:
                raise WALClosedError(f"scanner {self._name!r} is closed")
            # Built per attempt: a failed attempt may move the start (a Latest scanner's).
            option = ReadOption(
                name=self._name,
                deliver_policy=self._policy,
                read_ahead_buffer_size=self._read_ahead,
            )
            try:
                reader = await self._impl.read(option)
            except Exception as exc:
                if not self._transient(exc):
                    raise
                await self._retry_after(exc, reopen=False)
                continue
            if self._closed:  # closed while opening: do not leak the reader
                await _close_quietly(reader, self._name)
                raise WALClosedError(f"scanner {self._name!r} is closed")
            return reader

    async def _retry_after(self, exc: BaseException, *, reopen: bool = True) -> None:
        self.read_retries += 1
        if isinstance(self._origin, DeliverLatest) and self._latest_start is not None:
            # Nothing read yet: "latest" must stay where it was when the scanner started.
            start = self._latest_start
            self._origin = self._policy = DeliverStartFrom(start.message_id)
            self._skip_until = max(self._skip_until, start.after_timetick)
        delay = self._backoff.next_delay()
        log.warning(
            "scanner %r: backend read failed (%s: %s); retrying in %.2fs",
            self._name,
            type(exc).__name__,
            exc,
            delay,
        )
        if reopen:
            await self._close_reader()
            if self._last_backend_id is not None:
                # Right after the last message read: the reorder and txn
                # buffers already hold everything before it.
                self._policy = DeliverStartAfter(self._last_backend_id)
        await asyncio.sleep(delay)

    async def _close_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            await _close_quietly(reader, self._name)

    async def close(self) -> None:
        """Close the backend reader and stop; idempotent, bounded by ``CLOSE_TIMEOUT_SECONDS``."""
        self._closed = True
        self._cursor = None
        await self._close_reader()


async def _close_quietly(reader: Scanner, name: str) -> None:
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
            await reader.close()
    except Exception:
        # A reader that fails or hangs while closing must not take the scanner with it.
        log.warning("scanner %r: closing the backend reader failed", name, exc_info=True)
