"""Scanners: read a pchannel's segments in order, then follow the tail.

A scanner owns no task. ``__anext__`` reads a batch of blocks in a worker thread and
hands out the decoded messages; at the tail it waits for a writer in this process to
publish (see ``hub``), or, with no writer here, re-checks every
``reader_poll_interval_ms``.

Reading trusts only the valid prefix of a segment. At the first block that is
missing, short or invalid the scanner stops; it moves on to segment N+1 only once that
file exists, and first looks at segment N once more, because N is final only from the
moment N+1 exists (its writer finished N, or a new owner recovered it, before creating
N+1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from walstream.errors import MessageDecodeError, WALError, WalstreamError
from walstream.message import ImmutableMessage, decode
from walstream.walimpls import Scanner

from walstream_woodpecker.block import BlockRead, Cursor, ReadStatus, read_block
from walstream_woodpecker.hub import ChannelHub
from walstream_woodpecker.layout import ChannelLayout
from walstream_woodpecker.message_id import WoodpeckerMessageID
from walstream_woodpecker.truncation import read_truncation_point

log = logging.getLogger(__name__)

Floor = tuple[int, int]
"""The smallest ``(segment, entry)`` a scanner may deliver."""

_BATCH_BYTES = 4 * 1024 * 1024
_DEFAULT_BATCH_MESSAGES = 1024
# With a writer of the pchannel in this process readers are woken on every flush; this
# slow re-check only covers a writer elsewhere taking over while the local one sits
# idle (it never publishes again, having lost the pchannel).
_NOTIFIED_RECHECK_S = 1.0


@dataclass(frozen=True, slots=True)
class _Batch:
    messages: list[ImmutableMessage]
    cursor: Cursor
    floor: Floor
    caught_up: bool  # stopped because nothing more is readable yet


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _consume(fut: asyncio.Future[_Batch]) -> None:
    # A read abandoned by close(): fetch its outcome so asyncio does not log it as lost.
    if not fut.cancelled():
        fut.exception()


class WoodpeckerScanner(Scanner):
    """Async iterator over one pchannel from a start cursor; see the module doc."""

    def __init__(
        self,
        name: str,
        layout: ChannelLayout,
        hub: ChannelHub,
        start: Cursor,
        floor: Floor,
        *,
        poll_interval_s: float,
        batch_messages: int = 0,
        on_close: Callable[[WoodpeckerScanner], None] | None = None,
    ) -> None:
        super().__init__(name)
        self._layout = layout
        self._hub = hub
        self._cursor = start
        self._floor = floor
        self._poll_interval_s = poll_interval_s
        self._batch_messages = batch_messages if batch_messages > 0 else _DEFAULT_BATCH_MESSAGES
        self._on_close = on_close
        self._buffer: deque[ImmutableMessage] = deque()
        self._closed = False
        # A read survives the cancellation of the __anext__ that started it: the next
        # call picks up its result instead of reading again. Kept with the hub version
        # seen before it started, so a publication during it is never missed.
        self._read: tuple[asyncio.Future[_Batch], int] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._warned: set[int] = set()

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    async def __anext__(self) -> ImmutableMessage:
        while True:
            if self._buffer:
                return self._buffer.popleft()
            if self._closed or self._error is not None:
                raise StopAsyncIteration
            if self._read is None:
                seen = self._hub.version
                fut = asyncio.get_running_loop().run_in_executor(
                    None, self._read_batch, self._cursor, self._floor
                )
                self._read = (fut, seen)
            fut, seen = self._read
            try:
                batch = await asyncio.shield(fut)
            except asyncio.CancelledError:
                raise  # the read goes on; the next call takes its result
            except WalstreamError as exc:
                self._read = None
                self._error = exc
                raise
            except Exception as exc:
                self._read = None
                error = WALError(
                    f"woodpecker scanner {self.name!r} failed reading "
                    f"{self._layout.directory}: {exc!r}"
                )
                self._error = error
                raise error from exc
            self._read = None
            if self._closed:
                raise StopAsyncIteration
            self._cursor, self._floor = batch.cursor, batch.floor
            self._buffer.extend(batch.messages)
            if self._buffer or not batch.caught_up:
                continue
            await self._wait(seen)

    async def close(self) -> None:
        """Stop; a pending ``__anext__`` wakes and raises ``StopAsyncIteration``."""
        if self._closed:
            return
        self._closed = True
        self._buffer.clear()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.get_loop().call_soon_threadsafe(_wake, waiter)
        if self._read is not None:
            self._read[0].add_done_callback(_consume)
        if self._on_close is not None:
            self._on_close(self)

    # --- waiting at the tail --------------------------------------------------------

    async def _wait(self, seen: int) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self._hub.add_waiter(seen, fut):
            return  # something was published since the read started
        self._waiter = fut
        timeout = (
            max(_NOTIFIED_RECHECK_S, self._poll_interval_s)
            if self._hub.has_writer()
            else self._poll_interval_s
        )
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await fut
        finally:
            self._hub.remove_waiter(fut)
            self._waiter = None

    # --- reading (worker thread; pure: state changes only through the returned batch) ---

    def _read_batch(self, cursor: Cursor, floor: Floor) -> _Batch:
        messages: list[ImmutableMessage] = []
        budget = _BATCH_BYTES
        while budget > 0 and len(messages) < self._batch_messages:
            path = self._layout.segment_path(cursor.segment)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                moved = self._skip_missing(cursor, floor)
                if moved is None:
                    return _Batch(messages, cursor, floor, caught_up=True)
                cursor, floor = moved
                continue
            try:
                while budget > 0 and len(messages) < self._batch_messages:
                    result = read_block(fd, cursor, self._hub.limit(cursor.segment))
                    if result.status is not ReadStatus.OK:
                        if not self._layout.segment_exists(cursor.segment + 1):
                            return _Batch(messages, cursor, floor, caught_up=True)
                        # Segment N+1 exists, so N is final: every flush of N was synced or
                        # cut off before N+1 could be made, so read the rest of N to its end.
                        result = read_block(fd, cursor, None)
                        if result.status is not ReadStatus.OK:
                            self._note_segment_end(fd, cursor, result)
                            cursor = Cursor(cursor.segment + 1)
                            break
                    header = result.header
                    assert header is not None
                    for i, raw in enumerate(result.entries):
                        entry = header.first_entry + i
                        if (cursor.segment, entry) >= floor:
                            messages.append(self._decode(raw, cursor.segment, entry))
                    budget -= header.size
                    cursor = cursor.after(header)
            finally:
                os.close(fd)
        return _Batch(messages, cursor, floor, caught_up=False)

    def _decode(self, raw: bytes, segment: int, entry: int) -> ImmutableMessage:
        message_id = WoodpeckerMessageID(segment, entry)
        try:
            payload, properties = decode(raw)
        except MessageDecodeError as exc:
            # The block passed its CRC, so the writer stored these bytes: not a torn write.
            raise WALError(
                f"entry {message_id!r} in {self._layout.segment_path(segment)} is not a "
                f"walstream message: {exc}"
            ) from exc
        return ImmutableMessage(payload, properties, message_id)

    def _skip_missing(self, cursor: Cursor, floor: Floor) -> tuple[Cursor, Floor] | None:
        """Where to go when the cursor's segment file does not exist (None: wait)."""
        point = read_truncation_point(self._layout)
        if point is not None and cursor.segment < point.segment:
            # Deleted by truncation while this scanner was behind it.
            return Cursor(point.segment), max(floor, point.sort_key())
        later = [s for s in self._layout.list_segments() if s > cursor.segment]
        if later:
            log.warning(
                "woodpecker scanner %r: segment %s is missing but later ones exist; "
                "continuing at segment %d",
                self.name,
                self._layout.segment_path(cursor.segment),
                later[0],
            )
            return Cursor(later[0]), floor
        return None  # not created yet

    def _note_segment_end(self, fd: int, cursor: Cursor, result: BlockRead) -> None:
        size = os.fstat(fd).st_size
        if size > cursor.offset and cursor.segment not in self._warned:
            self._warned.add(cursor.segment)
            log.warning(
                "woodpecker scanner %r: %s: %d bytes after offset %d are not a valid block "
                "(%s: %s) and the segment is final; they were never acknowledged or are "
                "damaged, continuing with segment %d",
                self.name,
                self._layout.segment_path(cursor.segment),
                size - cursor.offset,
                cursor.offset,
                result.status.value,
                result.reason,
                cursor.segment + 1,
            )
