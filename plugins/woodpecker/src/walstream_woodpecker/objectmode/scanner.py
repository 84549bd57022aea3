"""Object-mode scanners: read a log's segments block by block, then follow the tail.

Per segment the record in the metastore decides how far to read: a completed
segment is read up to its block count (the count its footer holds); an active one
only along its contiguous prefix, stopping at the first missing block or at a fence
object (its fencer will complete it; the scanner sees that at its next look). Then
the scanner moves to segment + 1. A segment record that is gone was truncated (jump
to the truncation point) or, with later segments present, is skipped with a warning.

Every block is verified (header and payload CRC, its segment, number and first
entry); a corrupt block is a scanner error naming its key, never skipped.

At the tail a scanner waits for a writer in this process to publish (the hub), and
re-looks every ``object_reader_poll_interval_ms`` otherwise: one metastore read and
one GET of the next block key per idle poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from walstream.errors import MessageDecodeError, ObjectNotFoundError, WALError, WalstreamError
from walstream.message import ImmutableMessage, decode
from walstream.walimpls import Scanner

from walstream_woodpecker.message_id import WoodpeckerMessageID
from walstream_woodpecker.objectmode.block_object import (
    BLOCK_HEADER_SIZE,
    decode_block,
    decode_fence,
)
from walstream_woodpecker.objectmode.context import LogContext
from walstream_woodpecker.objectmode.meta import SegmentMeta
from walstream_woodpecker.objectmode.prefix import short_object_error
from walstream_woodpecker.objectmode.start import Floor, Position

log = logging.getLogger(__name__)

_BATCH_BYTES = 8 * 1024 * 1024
_DEFAULT_BATCH_MESSAGES = 1024
_PREFETCH = 4  # block GETs in flight while catching up on a completed segment
_NOTIFIED_RECHECK_S = 1.0


@dataclass(frozen=True, slots=True)
class _Batch:
    messages: list[ImmutableMessage]
    position: Position
    floor: Floor
    caught_up: bool


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _consume(fut: asyncio.Future[_Batch]) -> None:
    if not fut.cancelled():
        fut.exception()


class ObjectScanner(Scanner):
    """Async iterator over one log from a start position; see the module doc."""

    def __init__(
        self,
        name: str,
        ctx: LogContext,
        start: Position,
        floor: Floor,
        *,
        batch_messages: int = 0,
        on_close: Callable[[ObjectScanner], None] | None = None,
    ) -> None:
        super().__init__(name)
        self._ctx = ctx
        self._position = start
        self._floor = floor
        self._poll_s = ctx.settings.object_reader_poll_interval_ms / 1000.0
        self._batch_messages = batch_messages if batch_messages > 0 else _DEFAULT_BATCH_MESSAGES
        self._on_close = on_close
        self._buffer: deque[ImmutableMessage] = deque()
        self._closed = False
        # A read survives the cancellation of the __anext__ that started it.
        self._read: tuple[asyncio.Task[_Batch], int] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._warned: set[int] = set()
        self._deferred: WALError | None = None

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
                seen = self._ctx.hub.version
                task = asyncio.get_running_loop().create_task(
                    self._read_batch(self._position, self._floor)
                )
                self._read = (task, seen)
            task, seen = self._read
            try:
                batch = await asyncio.shield(task)
            except asyncio.CancelledError:
                if task.cancelled():
                    self._read = None
                    if self._closed:
                        raise StopAsyncIteration from None
                raise
            except WalstreamError as exc:
                self._read = None
                self._error = exc
                raise
            except Exception as exc:
                self._read = None
                error = WALError(
                    f"woodpecker scanner {self.name!r} of {self._ctx.pchannel!r} failed: {exc!r}"
                )
                self._error = error
                raise error from exc
            self._read = None
            if self._closed:
                raise StopAsyncIteration
            self._position, self._floor = batch.position, batch.floor
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
            task = self._read[0]
            task.cancel()  # an object read may sit in a retry loop; nobody needs it now
            task.add_done_callback(_consume)
        if self._on_close is not None:
            self._on_close(self)

    async def _wait(self, seen: int) -> None:
        hub = self._ctx.hub
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not hub.add_waiter(seen, fut):
            return
        self._waiter = fut
        timeout = max(_NOTIFIED_RECHECK_S, self._poll_s) if hub.has_writer() else self._poll_s
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await fut
        finally:
            hub.remove_waiter(fut)
            self._waiter = None

    # --- reading ---------------------------------------------------------------------------

    async def _read_batch(self, pos: Position, floor: Floor) -> _Batch:
        if self._deferred is not None:
            raise self._deferred
        messages: list[ImmutableMessage] = []
        try:
            return await self._read_into(pos, floor, messages)
        except WALError as exc:
            if not messages:
                raise
            # Deliver what came before the damage first; the error follows on the next read.
            self._deferred = exc
            return _Batch(messages, pos, floor, caught_up=False)

    async def _read_into(
        self, pos: Position, floor: Floor, messages: list[ImmutableMessage]
    ) -> _Batch:
        budget = _BATCH_BYTES
        while budget > 0 and len(messages) < self._batch_messages:
            seg = await self._ctx.meta.segment(pos.segment)
            if seg is None:
                moved = await self._skip_missing(pos, floor)
                if moved is None:
                    return _Batch(messages, pos, floor, caught_up=True)
                pos, floor = moved
                continue
            if seg.completed:
                pos, floor, used = await self._read_completed(seg, pos, floor, messages, budget)
                budget -= used
                continue
            pos, used, caught_up = await self._read_active(seg, pos, floor, messages, budget)
            budget -= used
            if caught_up:
                return _Batch(messages, pos, floor, caught_up=not messages)
        return _Batch(messages, pos, floor, caught_up=False)

    async def _read_completed(
        self,
        seg: SegmentMeta,
        pos: Position,
        floor: Floor,
        out: list[ImmutableMessage],
        budget: int,
    ) -> tuple[Position, Floor, int]:
        used = 0
        while pos.block < seg.block_count and used < budget and len(out) < self._batch_messages:
            wanted = range(pos.block, min(seg.block_count, pos.block + _PREFETCH))
            blobs = await asyncio.gather(*(self._get(seg.segment, b) for b in wanted))
            for block, raw in zip(wanted, blobs, strict=True):
                if raw is None:
                    key = self._ctx.layout.block_key(seg.segment, block)
                    point, _ = await self._ctx.meta.truncation()
                    if point is not None and seg.segment < point.segment:
                        # Truncated under us: continue at the point, and deliver nothing
                        # below it (as local mode does).
                        return Position(point.segment), max(floor, point.sort_key()), used
                    raise WALError(
                        f"woodpecker scanner {self.name!r}: block object {key!r} of completed "
                        f"segment {seg.segment} ({seg.block_count} blocks) is missing"
                    )
                pos, size = self._deliver(seg.segment, block, pos, raw, floor, out)
                used += size
        if pos.block >= seg.block_count:
            return Position(seg.segment + 1), floor, used
        return pos, floor, used

    async def _read_active(
        self,
        seg: SegmentMeta,
        pos: Position,
        floor: Floor,
        out: list[ImmutableMessage],
        budget: int,
    ) -> tuple[Position, int, bool]:
        used = 0
        while used < budget and len(out) < self._batch_messages:
            limit = self._ctx.hub.limit(seg.segment)
            if limit is not None and pos.block >= limit:
                return pos, used, True  # its writer here has not acknowledged more yet
            raw = await self._get(seg.segment, pos.block)
            if raw is None or decode_fence(raw) is not None:
                return pos, used, True  # the end of the prefix, for now
            pos, size = self._deliver(seg.segment, pos.block, pos, raw, floor, out)
            used += size
        return pos, used, False

    async def _get(self, segment: int, block: int) -> bytes | None:
        key = self._ctx.layout.block_key(segment, block)
        try:
            return await self._ctx.io(lambda: self._ctx.store.get(key))
        except ObjectNotFoundError:
            return None

    def _deliver(
        self,
        segment: int,
        block: int,
        pos: Position,
        raw: bytes,
        floor: Floor,
        out: list[ImmutableMessage],
    ) -> tuple[Position, int]:
        key = self._ctx.layout.block_key(segment, block)
        if len(raw) < BLOCK_HEADER_SIZE and decode_fence(raw) is None:
            raise short_object_error(key, raw)
        if decode_fence(raw) is not None:
            raise WALError(
                f"woodpecker scanner {self.name!r}: {key!r} is a fence object inside the "
                f"block range of a completed segment; the log's metadata is inconsistent"
            )
        first = pos.entry if pos.block == block else None
        info, entries = decode_block(key, raw, segment, block, first)
        for i, data in enumerate(entries):
            entry = info.first_entry + i
            if (segment, entry) >= floor:
                out.append(self._decode(data, segment, entry, key))
        return Position(segment, block + 1, info.next_entry), info.size

    def _decode(self, raw: bytes, segment: int, entry: int, key: str) -> ImmutableMessage:
        message_id = WoodpeckerMessageID(segment, entry)
        try:
            payload, properties = decode(raw)
        except MessageDecodeError as exc:
            raise WALError(
                f"entry {message_id!r} in block object {key!r} is not a walstream message: {exc}"
            ) from exc
        return ImmutableMessage(payload, properties, message_id)

    async def _skip_missing(self, pos: Position, floor: Floor) -> tuple[Position, Floor] | None:
        """Where to go when ``pos``'s segment has no record (None: not created yet)."""
        point, _ = await self._ctx.meta.truncation()
        if point is not None and pos.segment < point.segment:
            return Position(point.segment), max(floor, point.sort_key())
        later = [s.segment for s in await self._ctx.meta.segments() if s.segment > pos.segment]
        if later:
            if pos.segment not in self._warned:
                self._warned.add(pos.segment)
                log.warning(
                    "woodpecker scanner %r of %r: segment %d has no record but later ones "
                    "exist; continuing at segment %d",
                    self.name,
                    self._ctx.pchannel,
                    pos.segment,
                    later[0],
                )
            return Position(later[0]), floor
        return None
