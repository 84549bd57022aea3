"""The group-commit writer of one read-write WAL.

Appends are queued. One task flushes the queue when the pending bytes or entries
reach their limit, or when the oldest pending entry has waited ``flush_interval_ms``.
A flush takes everything pending, cuts it into blocks of at most ``flush_max_entries``
entries and ``flush_max_bytes`` bytes, and (fence check, one write, one
``fdatasync``) runs in a worker thread, so the event loop keeps queueing appends
meanwhile; the next flush then carries everything that arrived during this one, which
is the group commit. Only one flush is in flight at a time, so blocks land in order
and acknowledgements go out in entry order, each only after its block is durable.

The first failure stops the writer for good: a fenced writer fails its flush and every
pending and later append with ``FencedError`` without writing them; any other flush
error fails them with ``WALError``. Reopening the WAL is the way to continue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from dataclasses import dataclass

from walstream.errors import FencedError, WALClosedError, WALError
from walstream.walimpls import PChannelInfo

from walstream_woodpecker.block import Cursor, encode_framed_block, frame_entry
from walstream_woodpecker.durable import fsync_dir
from walstream_woodpecker.fence import (
    lock_shared,
    open_lock_file,
    read_fence,
    unlock,
)
from walstream_woodpecker.hub import ChannelHub
from walstream_woodpecker.layout import ChannelLayout
from walstream_woodpecker.message_id import WoodpeckerMessageID
from walstream_woodpecker.ownership import Ownership
from walstream_woodpecker.settings import WoodpeckerSettings
from walstream_woodpecker.truncation import read_truncation_point, write_truncation_point

log = logging.getLogger(__name__)

# One queued append: its framed entry and the future its caller awaits. A plain tuple,
# because one is made per append and the hot path is what bounds small-message throughput.
_Pending = tuple[bytes, "asyncio.Future[WoodpeckerMessageID]"]


@dataclass(frozen=True, slots=True)
class _Flushed:
    fd: int  # the segment file written (new if the flush rolled)
    start: Cursor  # where the first block was written
    end: Cursor  # just past the last one


class SegmentWriter:
    """Appends to a pchannel's current segment, rolling to new ones; see the module doc."""

    def __init__(
        self,
        layout: ChannelLayout,
        pchannel: PChannelInfo,
        settings: WoodpeckerSettings,
        ownership: Ownership,
        hub: ChannelHub,
    ) -> None:
        self._layout = layout
        self._pchannel = pchannel
        self._settings = settings
        self._mark = ownership.mark
        self._lock_fd = ownership.lock_fd
        self._fd = ownership.segment_fd
        self._cursor = Cursor(ownership.segment)
        self._segment_since = time.monotonic()
        self._hub = hub
        self._truncating = asyncio.Lock()  # one truncation at a time: the point never moves back
        self._pending: deque[_Pending] = deque()
        self._pending_bytes = 0
        self._oldest = 0.0  # when the oldest pending entry was queued
        self._interval = settings.flush_interval_ms / 1000.0
        self._wake = asyncio.Event()
        self._closing = False
        self._error: WALError | None = None
        self._released = False
        hub.writer_started(self, ownership.segment)
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(
            self._run(), name=f"woodpecker-writer[{pchannel.name}@{pchannel.term}]"
        )

    # --- public -----------------------------------------------------------------

    @property
    def segment(self) -> int:
        """The segment currently appended to."""
        return self._cursor.segment

    def check_usable(self) -> None:
        """Raise the error that stopped this writer, or ``WALClosedError`` once closing."""
        if self._error is not None:
            raise type(self._error)(str(self._error))
        if self._closing:
            raise WALClosedError(f"woodpecker WAL {self._pchannel.name!r} is closed")

    async def append(self, data: bytes) -> WoodpeckerMessageID:
        """Queue one encoded entry; return its id once its block is durable."""
        return await self.enqueue(data)

    def enqueue(self, data: bytes) -> asyncio.Future[WoodpeckerMessageID]:
        """Queue one encoded entry; the future is its id once its block is durable.

        Entries are stored in the order they are queued.
        """
        if self._error is not None or self._closing:
            self.check_usable()
        fut: asyncio.Future[WoodpeckerMessageID] = self._loop.create_future()
        framed = frame_entry(data)
        pending = self._pending
        pending.append((framed, fut))
        self._pending_bytes += len(framed)
        if len(pending) == 1:
            # The first entry starts the interval clock.
            self._oldest = time.monotonic()
            self._wake.set()
        elif (
            self._pending_bytes >= self._settings.flush_max_bytes
            or len(pending) >= self._settings.flush_max_entries
        ):
            self._wake.set()  # a full batch flushes at once
        return fut

    async def truncate(self, point: WoodpeckerMessageID) -> None:
        """Persist ``point`` as the truncation point and delete segments wholly before it."""
        async with self._truncating:
            await self._truncate(point)

    async def _truncate(self, point: WoodpeckerMessageID) -> None:
        self.check_usable()
        end = (self._cursor.segment, self._cursor.entry)
        if point.sort_key() > end:
            raise WALError(
                f"cannot truncate pchannel {self._pchannel.name!r} at {point!r}: the log ends at "
                f"{WoodpeckerMessageID(*end)!r} (truncate only at ids that were appended)"
            )
        try:
            await asyncio.to_thread(self._truncate_sync, point)
        except FencedError as exc:
            self._stop(exc)
            raise

    async def close(self) -> None:
        """Flush what is pending, stop the task and release the files; idempotent.

        If the caller is cancelled meanwhile, the task still finishes its flush and the
        files are released when it ends (never under a flush still in flight)."""
        self._closing = True
        self._wake.set()
        if self._task.done():
            self._release()
            return
        self._task.add_done_callback(lambda _: self._release())
        with contextlib.suppress(Exception):
            # The task reports its own failures to the appends it fails.
            await asyncio.shield(self._task)

    # --- the flush task -----------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                if self._error is not None:
                    return
                if not self._pending:
                    if self._closing:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                delay = self._delay()
                if delay > 0 and not self._closing:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._wake.wait()
                    continue
                blocks = self._take_all()
                if blocks:
                    await self._flush(blocks)
        except asyncio.CancelledError:
            self._stop(WALClosedError(f"woodpecker WAL {self._pchannel.name!r} was cancelled"))
            raise
        except BaseException as exc:  # a bug, not an I/O error: still fail appends clearly
            self._stop(WALError(f"woodpecker writer of {self._pchannel.name!r} crashed: {exc!r}"))
            raise

    def _delay(self) -> float:
        """Seconds until the pending entries must be flushed (<= 0: now)."""
        if (
            self._pending_bytes >= self._settings.flush_max_bytes
            or len(self._pending) >= self._settings.flush_max_entries
        ):
            return 0.0
        return self._oldest + self._interval - time.monotonic()

    def _take_all(self) -> list[list[_Pending]]:
        """Everything pending, cut into blocks of at most ``flush_max_entries`` entries and
        ``flush_max_bytes`` bytes (a single larger entry gets a block of its own).
        Entries whose caller gave up (cancelled) before they were written are dropped."""
        live = [item for item in self._pending if not item[1].done()]
        self._pending.clear()
        max_bytes = self._settings.flush_max_bytes
        max_entries = self._settings.flush_max_entries
        fits = self._pending_bytes <= max_bytes and len(live) <= max_entries
        self._pending_bytes = 0
        if fits:
            return [live] if live else []
        blocks: list[list[_Pending]] = []
        block: list[_Pending] = []
        size = 0
        for item in live:
            cost = len(item[0])
            if block and (size + cost > max_bytes or len(block) >= max_entries):
                blocks.append(block)
                block, size = [], 0
            block.append(item)
            size += cost
        if block:
            blocks.append(block)
        return blocks

    def _should_roll(self) -> bool:
        # Checked before each flush, so one flush's blocks stay in one segment (and a
        # failed flush can be cut off in one file); a segment may overshoot by a flush.
        cursor = self._cursor
        if cursor.block_no == 0:
            return False  # never leave an empty segment behind
        return (
            cursor.offset >= self._settings.segment_max_bytes
            or cursor.block_no >= self._settings.segment_max_blocks
            or time.monotonic() - self._segment_since >= self._settings.segment_max_age_s
        )

    async def _flush(self, blocks: list[list[_Pending]]) -> None:
        roll = self._should_roll()
        old = self._cursor.segment
        groups = [[item[0] for item in block] for block in blocks]
        try:
            done = await asyncio.to_thread(self._flush_sync, self._fd, self._cursor, groups, roll)
        except FencedError as exc:
            for block in blocks:
                self._fail(block, exc)
            self._stop(exc)
            return
        except Exception as exc:
            path = self._layout.segment_path(old + 1 if roll else old)
            err = WALError(
                f"woodpecker flush to {path} failed: {exc!r}; this writer is stopped, "
                f"reopen the WAL to continue"
            )
            err.__cause__ = exc
            for block in blocks:
                self._fail(block, err)
            self._stop(err)
            return
        if roll:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = done.fd
            self._segment_since = time.monotonic()
        self._cursor = done.end
        entry = done.start.entry
        segment = done.start.segment
        for block in blocks:
            for _, fut in block:
                if not fut.done():
                    fut.set_result(WoodpeckerMessageID(segment, entry))
                entry += 1

    def _flush_sync(
        self, fd: int, cursor: Cursor, groups: list[list[bytes]], roll: bool
    ) -> _Flushed:
        # Worker thread. The shared lock spans the fence check and the write, so a new
        # owner (which needs the exclusive lock to move the fence) waits for these blocks
        # to land, and after that this writer can never write again.
        lock_shared(self._lock_fd, self._layout, self._settings.fence_lock_timeout_s)
        try:
            self._check_fence()
            new_fd: int | None = None
            if roll:
                cursor = Cursor(cursor.segment + 1)
                new_fd = os.open(
                    self._layout.segment_path(cursor.segment),
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                    0o644,
                )
                fd = new_fd
                # Only now, as the owner that created it: readers here must not read the
                # new segment past what is durable, from the moment it exists.
                self._hub.rolling(self, cursor.segment - 1, cursor.segment)
            try:
                if roll:
                    fsync_dir(self._layout.directory)
                start = end = cursor
                encoded: list[bytes] = []
                for entries in groups:
                    block = encode_framed_block(end.segment, end.block_no, end.entry, entries)
                    encoded.append(block)
                    end = Cursor(
                        end.segment,
                        end.offset + len(block),
                        end.block_no + 1,
                        end.entry + len(entries),
                    )
                # One write and one fdatasync for all blocks of this flush.
                _write_durably(
                    fd, b"".join(encoded) if len(encoded) > 1 else encoded[0], start.offset
                )
                # Publish while still holding the lock: a new owner (which needs the lock
                # exclusively) can then never see this block before local readers may
                # read it, and it is published before any append is acknowledged.
                self._hub.publish(self, end.segment, end.offset)
            except BaseException:
                if new_fd is not None:
                    os.close(new_fd)
                raise
            return _Flushed(fd, start, end)
        finally:
            unlock(self._lock_fd)

    def _check_fence(self) -> None:
        mark = read_fence(self._layout)
        if mark == self._mark:
            return
        name, term = self._pchannel.name, self._mark.term
        if mark is None:
            raise FencedError(
                f"pchannel {name!r}: the fence marker {self._layout.fence_path} disappeared; "
                f"this writer (term {term}) stops, reopen the WAL"
            )
        if mark.term > term:
            raise FencedError(
                f"pchannel {name!r}: this writer (term {term}) was fenced by term {mark.term}; "
                f"close it, the pchannel now belongs to the newer term"
            )
        raise FencedError(
            f"pchannel {name!r}: this writer (term {term}) was superseded by another "
            f"read-write open at term {mark.term}; close it"
        )

    def _truncate_sync(self, point: WoodpeckerMessageID) -> None:
        # A separate descriptor: flock locks belong to the open file description, and
        # unlocking the flush's descriptor here would drop the flush's lock too.
        lock_fd = open_lock_file(self._layout)
        try:
            lock_shared(lock_fd, self._layout, self._settings.fence_lock_timeout_s)
            self._check_fence()
            current = read_truncation_point(self._layout)
            if current is None or point > current:
                write_truncation_point(self._layout, point)
            else:
                point = current  # truncation never moves backwards
            deleted = False
            for segment in self._layout.list_segments():
                if segment >= point.segment:
                    break
                self._layout.segment_path(segment).unlink(missing_ok=True)
                deleted = True
            if deleted:
                fsync_dir(self._layout.directory)
        finally:
            os.close(lock_fd)  # closing the last descriptor releases its lock

    # --- stopping -----------------------------------------------------------------

    def _fail(self, batch: list[_Pending], error: WALError) -> None:
        for _, fut in batch:
            if not fut.done():
                fut.set_exception(type(error)(str(error)))

    def _stop(self, error: WALError) -> None:
        """Stop for good: remember ``error``, fail everything pending with it."""
        if self._error is None:
            self._error = error
            if isinstance(error, FencedError):
                log.warning("%s", error)
        pending = list(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        self._fail(pending, self._error)
        self._release_hub()

    def _release_hub(self) -> None:
        if not self._released:
            self._released = True
            self._hub.writer_stopped(self)

    def _release(self) -> None:
        self._release_hub()
        for fd in (self._fd, self._lock_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fd = self._lock_fd = -1


def _write_durably(fd: int, data: bytes, offset: int) -> None:
    """Write ``data`` at ``offset`` and ``fdatasync``; on failure cut it off again."""
    try:
        view = memoryview(data)
        at = offset
        while view:
            n = os.pwrite(fd, view, at)
            view = view[n:]
            at += n
        os.fdatasync(fd)
    except BaseException:
        # Best effort: unacknowledged blocks must not stay readable.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, offset)
            os.fdatasync(fd)
        raise
