"""Taking a pchannel read-write at a term: fence, recover, start a new segment."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass

from walstream.errors import FencedError
from walstream.walimpls import PChannelInfo

from walstream_woodpecker.durable import TEMP_GLOB, fsync_dir
from walstream_woodpecker.fence import (
    FenceMark,
    lock_exclusive,
    open_lock_file,
    read_fence,
    unlock,
    write_fence,
)
from walstream_woodpecker.layout import ChannelLayout
from walstream_woodpecker.recovery import recover_segment
from walstream_woodpecker.truncation import read_truncation_point


@dataclass(frozen=True, slots=True)
class Ownership:
    """What a new writer starts with.

    ``lock_fd`` is the writer's own descriptor of the lock file (unlocked now; each
    flush takes it shared); ``segment_fd`` is the new, empty segment open for writing.
    """

    mark: FenceMark
    lock_fd: int
    segment: int
    segment_fd: int


def _take_locked(layout: ChannelLayout, pchannel: PChannelInfo, lock_fd: int) -> Ownership:
    # Runs in a worker thread while ``lock_fd`` holds the exclusive lock; releases it.
    try:
        current = read_fence(layout)
        if current is not None and pchannel.term < current.term:
            raise FencedError(
                f"cannot open pchannel {pchannel.name!r} read-write at term {pchannel.term}: "
                f"term {current.term} already took it, and terms only move forward"
            )
        _remove_stale_temp_files(layout)
        mark = FenceMark(pchannel.term, (current.generation + 1) if current else 1)
        # From here on every older writer's next flush sees it was fenced.
        write_fence(layout, mark)
        segments = layout.list_segments()
        if segments:
            recover_segment(layout, segments[-1])
        truncated = read_truncation_point(layout)
        new = segments[-1] + 1 if segments else 0
        if truncated is not None:
            # Never hand out ids at or below a truncation point (if its segment is gone).
            new = max(new, truncated.segment + 1)
        # A new writer never appends to an old segment: the previous one becomes final
        # the moment this one exists, which is what tells readers to move on.
        segment_fd = os.open(
            layout.segment_path(new), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644
        )
        try:
            fsync_dir(layout.directory)
        except BaseException:
            os.close(segment_fd)
            raise
        return Ownership(mark, lock_fd, new, segment_fd)
    finally:
        unlock(lock_fd)


def _remove_stale_temp_files(layout: ChannelLayout) -> None:
    # Left by a crash inside ``atomic_write``; only an owner (exclusive lock) writes them.
    for path in layout.directory.glob(TEMP_GLOB):
        path.unlink(missing_ok=True)


def _prepare_directory(layout: ChannelLayout) -> None:
    existed = layout.directory.exists()
    layout.directory.mkdir(parents=True, exist_ok=True)
    if not existed:
        fsync_dir(layout.directory.parent)


async def take_ownership(
    layout: ChannelLayout, pchannel: PChannelInfo, lock_timeout: float
) -> Ownership:
    """Fence every older writer of ``pchannel`` and prepare a new segment for this one."""
    await asyncio.to_thread(_prepare_directory, layout)
    lock_fd = open_lock_file(layout)
    try:
        await lock_exclusive(lock_fd, layout, lock_timeout)
    except BaseException:
        os.close(lock_fd)
        raise
    loop = asyncio.get_running_loop()
    work = loop.run_in_executor(None, _take_locked, layout, pchannel, lock_fd)
    try:
        # Shielded: if the caller is cancelled the thread still finishes; the lock is
        # released by the thread itself, and the descriptors are closed once it is done.
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        work.add_done_callback(lambda f: _abandon(f, lock_fd))
        raise
    except BaseException:
        os.close(lock_fd)
        raise


def _abandon(fut: asyncio.Future[Ownership], lock_fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(lock_fd)
    if not fut.cancelled() and fut.exception() is None:
        with contextlib.suppress(OSError):
            os.close(fut.result().segment_fd)
