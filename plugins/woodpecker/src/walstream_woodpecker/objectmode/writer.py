"""The writer of one read-write WAL in object mode.

Appends are queued and cut into blocks like local mode's group commit (at
``object_flush_max_bytes``, ``flush_max_entries`` or ``object_flush_interval_ms``).
Each block becomes one upload task; at most ``object_max_parallel_uploads`` run at
once (the flush loop waits for a free slot, which is the back-pressure). Uploads
finish in any order, but acknowledgements go out strictly in block order, each only
once its block object is stored: the in-flight queue is drained from its head only.

The first failed block (fenced, or retries exhausted) fails its appends and every
later in-flight and pending one, and the writer is dead for good: every later append
raises the same kind of error (``FencedError`` when fenced, a ``WALError`` saying the
store was unreachable otherwise). Earlier blocks still in flight are acknowledged if
they land: they are before any fence, so readers will see them.

A segment rolls (by blocks, bytes or age, as in local mode) between blocks: the
writer waits for its uploads, writes the footer, CASes the record to completed, checks
the owner record is still its own and creates the next segment with create-if-absent
on its own last + 1.

About once per flush cycle (at most every ``max(object_flush_interval_ms, 50 ms)``)
the writer also reads the owner record, overlapped with its uploads. Safety does not
rest on it (the fence object does), but a busy writer that a newer owner took over
stops submitting blocks within about one cycle, so the new owner's fence lands
quickly instead of racing the old writer's uploads for the next block number.

Appends queue in memory while uploads are slow or the store is down. Once the queued
(not yet uploading) bytes exceed ``4 x object_flush_max_bytes x
object_max_parallel_uploads``, further appends wait for room (back-pressure) instead
of growing the queue without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from walstream.errors import FencedError, MetastoreError, ObjectStoreError, WALClosedError, WALError

from walstream_woodpecker.block import frame_entry
from walstream_woodpecker.message_id import WoodpeckerMessageID
from walstream_woodpecker.objectmode.block_object import BlockInfo, encode_block
from walstream_woodpecker.objectmode.completion import complete_segment
from walstream_woodpecker.objectmode.context import LogContext
from walstream_woodpecker.objectmode.meta import Owner, SegmentMeta, fenced_error
from walstream_woodpecker.objectmode.storeio import is_transient
from walstream_woodpecker.objectmode.truncation import delete_truncated_segment
from walstream_woodpecker.objectmode.uploader import put_exactly

log = logging.getLogger(__name__)

_OWNER_CHECK_MIN_S = 0.05  # the owner record is read at most this often
_QUEUE_FACTOR = 4  # queued bytes allowed: this x flush_max_bytes x parallel uploads

T = TypeVar("T")
_Pending = tuple[bytes, "asyncio.Future[WoodpeckerMessageID]"]


@dataclass(slots=True)
class _Upload:
    info: BlockInfo
    key: str
    futures: list[asyncio.Future[WoodpeckerMessageID]]
    task: asyncio.Task[None]


class ObjectWriter:
    """Appends of one pchannel in object mode; see the module doc."""

    def __init__(self, ctx: LogContext, owner: Owner, segment: SegmentMeta) -> None:
        self._ctx = ctx
        self._settings = ctx.settings
        self._owner = owner
        self._who = f"woodpecker writer of {ctx.pchannel!r} (term {owner.term})"
        self._seg = segment
        self._blocks: list[BlockInfo] = []  # every block cut in the current segment
        self._next_entry = 0
        self._seg_bytes = 0
        self._seg_since = time.monotonic()
        self._acked = (segment.segment, 0)  # (segment, next entry) acknowledged so far
        self._pending: deque[_Pending] = deque()
        self._pending_bytes = 0
        self._oldest = 0.0
        self._interval = self._settings.object_flush_interval_ms / 1000.0
        self._max_bytes = self._settings.object_flush_max_bytes
        self._max_entries = self._settings.flush_max_entries
        self._wake = asyncio.Event()
        self._inflight: deque[_Upload] = deque()
        self._idle = asyncio.Event()
        self._idle.set()
        self._slots = asyncio.Semaphore(self._settings.object_max_parallel_uploads)
        self._queue_limit = (
            _QUEUE_FACTOR * self._max_bytes * self._settings.object_max_parallel_uploads
        )
        self._room = asyncio.Event()  # set whenever the queue is below its limit
        self._room.set()
        self._owner_check: asyncio.Task[None] | None = None
        self._owner_checked = time.monotonic()  # the take-over just checked it
        self._owner_every = max(self._interval, _OWNER_CHECK_MIN_S)
        self._truncating = asyncio.Lock()
        self._closing = False
        self._error: WALError | None = None
        self._released = False
        ctx.hub.writer_started(self, segment.segment)
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(
            self._run(), name=f"woodpecker-object-writer[{ctx.pchannel}@{owner.term}]"
        )

    # --- public -----------------------------------------------------------------------

    @property
    def segment(self) -> int:
        """The segment currently appended to."""
        return self._seg.segment

    def check_usable(self) -> None:
        """Raise the error that stopped this writer, or ``WALClosedError`` once closing."""
        if self._error is not None:
            raise type(self._error)(str(self._error))
        if self._closing:
            raise WALClosedError(f"woodpecker WAL {self._ctx.pchannel!r} is closed")

    async def append(self, data: bytes) -> WoodpeckerMessageID:
        """Queue one encoded entry; its id once its block object is stored (in order)."""
        if self._error is not None or self._closing:
            self.check_usable()
        framed = frame_entry(data)
        while self._pending and self._pending_bytes + len(framed) > self._queue_limit:
            # Back-pressure: the store is slower than the appends (or down).
            self._room.clear()
            await self._room.wait()
            if self._error is not None or self._closing:
                self.check_usable()
        fut: asyncio.Future[WoodpeckerMessageID] = self._loop.create_future()
        self._pending.append((framed, fut))
        self._pending_bytes += len(framed)
        if len(self._pending) == 1:
            self._oldest = time.monotonic()
            self._wake.set()
        elif self._pending_bytes >= self._max_bytes or len(self._pending) >= self._max_entries:
            self._wake.set()
        return await fut

    async def truncate(self, point: WoodpeckerMessageID) -> None:
        """Move the truncation point to ``point``; delete whole segments before its segment."""
        async with self._truncating:
            self.check_usable()
            if point.sort_key() > self._acked:
                raise WALError(
                    f"cannot truncate pchannel {self._ctx.pchannel!r} at {point!r}: the log ends "
                    f"at {WoodpeckerMessageID(*self._acked)!r} (truncate only at appended ids)"
                )
            try:
                await self._ctx.meta.check_owner(self._owner)
            except FencedError as exc:
                self._stop(exc)
                raise
            point = await self._ctx.meta.advance_truncation(point)
            for seg in await self._ctx.meta.segments():
                if seg.segment >= point.segment:
                    break
                await delete_truncated_segment(self._ctx, seg, self._owner)

    async def close(self) -> None:
        """Upload what is pending, complete the segment, stop; idempotent.

        If the caller is cancelled, the task still finishes (the WAL closes in a task of
        its own)."""
        self._closing = True
        self._wake.set()
        self._room.set()  # appends waiting for room fail with WALClosedError
        if not self._task.done():
            with contextlib.suppress(Exception):
                # The task reports its own failures to the appends it fails.
                await asyncio.shield(self._task)
        self._release_hub()

    # --- the flush loop -------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while self._error is None:
                if not self._pending:
                    if self._closing:
                        break
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
                self._check_owner_soon()
                for group in self._take_all():
                    if self._error is not None:
                        self._fail(group, self._error)
                        continue
                    if self._should_roll():
                        await self._roll()
                        if self._error is not None:
                            self._fail(group, self._error)
                            continue
                    await self._submit(group)
            await self._idle.wait()
            if self._error is None and self._closing:
                await self._guarded(
                    complete_segment(self._ctx, self._seg, self._owner, self._blocks)
                )
        except asyncio.CancelledError:
            self._stop(WALClosedError(f"woodpecker WAL {self._ctx.pchannel!r} was cancelled"))
            for up in self._inflight:
                up.task.cancel()
            raise
        except BaseException as exc:  # a bug: still fail the appends clearly
            self._stop(WALError(f"{self._who} crashed: {exc!r}"))
            raise
        finally:
            if self._owner_check is not None:
                self._owner_check.cancel()
            self._release_hub()

    def _delay(self) -> float:
        if self._pending_bytes >= self._max_bytes or len(self._pending) >= self._max_entries:
            return 0.0
        return self._oldest + self._interval - time.monotonic()

    def _take_all(self) -> list[list[_Pending]]:
        """Everything pending cut into blocks; appends whose caller gave up are dropped."""
        live = [item for item in self._pending if not item[1].done()]
        self._pending.clear()
        self._pending_bytes = 0
        self._room.set()
        blocks: list[list[_Pending]] = []
        block: list[_Pending] = []
        size = 0
        for item in live:
            cost = len(item[0])
            if block and (size + cost > self._max_bytes or len(block) >= self._max_entries):
                blocks.append(block)
                block, size = [], 0
            block.append(item)
            size += cost
        if block:
            blocks.append(block)
        return blocks

    def _should_roll(self) -> bool:
        if not self._blocks:
            return False  # never leave an empty segment behind by rolling
        s = self._settings
        return (
            self._seg_bytes >= s.segment_max_bytes
            or len(self._blocks) >= s.segment_max_blocks
            or time.monotonic() - self._seg_since >= s.segment_max_age_s
        )

    async def _submit(self, group: list[_Pending]) -> None:
        await self._slots.acquire()  # back-pressure: at most N uploads in flight
        if self._error is not None:
            self._slots.release()
            self._fail(group, self._error)
            return
        seg = self._seg.segment
        data, info = encode_block(
            seg, len(self._blocks), self._next_entry, self._owner.term, [f for f, _ in group]
        )
        self._blocks.append(info)
        self._next_entry = info.next_entry
        self._seg_bytes += info.size
        key = self._ctx.layout.block_key(seg, info.block)
        task = self._loop.create_task(self._upload(key, data))
        self._inflight.append(_Upload(info, key, [fut for _, fut in group], task))
        self._idle.clear()
        task.add_done_callback(self._uploaded)

    async def _upload(self, key: str, data: bytes) -> None:
        await put_exactly(
            self._ctx.store,
            key,
            data,
            deadline=self._ctx.deadline(),
            request_timeout=self._ctx.request_timeout,
            who=self._who,
        )

    def _uploaded(self, task: asyncio.Task[None]) -> None:
        # Done callback (also of cancelled tasks, whose bodies may never have run).
        self._slots.release()
        self._advance()

    def _advance(self) -> None:
        """Acknowledge finished uploads from the head of the queue, in order."""
        inflight = self._inflight
        while inflight and inflight[0].task.done():
            up = inflight.popleft()
            exc: BaseException | None = (
                asyncio.CancelledError() if up.task.cancelled() else up.task.exception()
            )
            if exc is None:
                seg, first = up.info.segment, up.info.first_entry
                for i, fut in enumerate(up.futures):
                    if not fut.done():
                        fut.set_result(WoodpeckerMessageID(seg, first + i))
                self._acked = (seg, up.info.next_entry)
                self._ctx.hub.publish(self, seg, up.info.block + 1)
                continue
            error = self._upload_error(up, exc)
            self._fail_futures(up.futures, error)
            for later in inflight:
                later.task.cancel()
                self._fail_futures(later.futures, error)
            inflight.clear()
            self._stop(error)
        if not inflight:
            self._idle.set()

    def _upload_error(self, up: _Upload, exc: BaseException) -> WALError:
        if isinstance(exc, FencedError):
            return FencedError(str(exc))
        if isinstance(exc, WALError):
            return type(exc)(str(exc))
        if isinstance(exc, asyncio.CancelledError):
            return WALClosedError(f"{self._who}: upload of {up.key!r} was cancelled")
        if is_transient(exc):
            return WALError(
                f"{self._who}: the object store was unreachable: storing block {up.key!r} "
                f"failed for {self._settings.object_upload_retry_deadline_s:g}s "
                f"(object_upload_retry_deadline_s), last error: {exc}; this writer is "
                f"stopped, reopen the WAL to continue"
            )
        return WALError(
            f"{self._who}: storing block {up.key!r} failed: {exc!r}; this writer is stopped, "
            f"reopen the WAL to continue"
        )

    # --- segments ------------------------------------------------------------------------

    async def _roll(self) -> None:
        await self._idle.wait()
        if self._error is not None:
            return
        old = self._seg
        done, _ = await self._guarded(complete_segment(self._ctx, old, self._owner, self._blocks))
        if not done:
            return
        # A newer owner may be fencing this writer: do not race it for the next segment.
        done, _ = await self._guarded(self._ctx.meta.check_owner(self._owner))
        if not done:
            return
        done, created = await self._guarded(
            self._ctx.meta.create_segment(old.segment + 1, self._owner)
        )
        if not done:
            return
        if created is None:
            self._stop(
                FencedError(
                    f"{self._who}: segment {old.segment + 1} already exists; another writer "
                    f"took the pchannel over, this one stops"
                )
            )
            return
        self._seg = created
        self._blocks = []
        self._next_entry = 0
        self._seg_bytes = 0
        self._seg_since = time.monotonic()
        self._acked = (created.segment, 0)
        self._ctx.hub.rolling(self, old.segment, created.segment)
        self._ctx.hub.publish(self, created.segment, 0)

    async def _guarded(self, work: Awaitable[T]) -> tuple[bool, T | None]:
        """Await ``work``; a failure stops the writer. ``(succeeded, result)``."""
        try:
            return True, await work
        except FencedError as exc:
            self._stop(FencedError(str(exc)))
        except (ObjectStoreError, MetastoreError, WALError, OSError, TimeoutError) as exc:
            self._stop(
                WALError(
                    f"{self._who}: ending segment {self._seg.segment} failed: {exc}; this "
                    f"writer is stopped, reopen the WAL to continue"
                )
            )
        return False, None

    # --- the owner check -------------------------------------------------------------------

    def _check_owner_soon(self) -> None:
        """Start one owner-record read (overlapping the uploads) unless one is recent."""
        now = time.monotonic()
        if self._owner_check is not None or now - self._owner_checked < self._owner_every:
            return
        self._owner_checked = now
        self._owner_check = self._loop.create_task(self._check_owner())

    async def _check_owner(self) -> None:
        try:
            current, _ = await self._ctx.meta.owner()
        except (MetastoreError, WALError, OSError, TimeoutError) as exc:
            # Only liveness rests on this check; the uploads and the roll find out anyway.
            log.debug("%s: reading the owner record failed: %s", self._who, exc)
            return
        finally:
            self._owner_check = None
        if current != self._owner:
            self._stop(fenced_error(self._ctx.pchannel, self._owner, current))

    # --- stopping ---------------------------------------------------------------------------

    def _fail(self, group: list[_Pending], error: WALError) -> None:
        self._fail_futures([fut for _, fut in group], error)

    @staticmethod
    def _fail_futures(futures: list[asyncio.Future[WoodpeckerMessageID]], error: WALError) -> None:
        for fut in futures:
            if not fut.done():
                fut.set_exception(type(error)(str(error)))

    def _stop(self, error: WALError) -> None:
        """Stop for good: remember ``error`` and fail everything pending with it."""
        if self._error is None:
            self._error = error
            if isinstance(error, FencedError):
                log.warning("%s", error)
            else:
                log.error("%s", error)
        pending = list(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        self._fail(pending, self._error)
        self._wake.set()
        self._room.set()

    def _release_hub(self) -> None:
        if not self._released:
            self._released = True
            self._ctx.hub.writer_stopped(self)
