"""Races between writers, readers, truncation and close in one process (found in review)."""

import asyncio
import errno
import fcntl
import os
import time
from pathlib import Path

import pytest
import walstream_woodpecker.writer as writer_module
from walstream.errors import FencedError, WALClosedError, WALError
from walstream.message import MutableMessage
from walstream.walimpls import ReadOption
from walstream_woodpecker import WoodpeckerBuilder
from walstream_woodpecker import WoodpeckerMessageID as ID
from walstream_woodpecker.truncation import read_truncation_point
from wp_helpers import rw


def opener(root: Path, **settings: object):  # type: ignore[no-untyped-def]
    return WoodpeckerBuilder().build({"root": str(root), "flush_interval_ms": 0, **settings})


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def collect(scanner, into: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    async for m in scanner:
        into.append(m.payload)


async def test_new_owner_between_sync_and_ack_loses_nothing_for_local_readers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new owner that opens after a flush synced but before the old writer acked it:
    a reader in this process still delivers the acknowledged entry."""
    oa, ob = opener(tmp_path), opener(tmp_path)
    a = await oa.open(rw("ch", 1))
    await a.append(MutableMessage.raw(b"m0"))
    scanner = await a.read(ReadOption("r"))
    got: list[bytes] = []
    reading = asyncio.create_task(collect(scanner, got))
    original = writer_module.SegmentWriter._flush_sync

    def slow(self, *args):  # type: ignore[no-untyped-def]
        done = original(self, *args)
        time.sleep(0.5)  # synced and unlocked; the event loop has not acknowledged yet
        return done

    monkeypatch.setattr(writer_module.SegmentWriter, "_flush_sync", slow)
    acked = asyncio.create_task(a.append(MutableMessage.raw(b"m1-acked")))
    await asyncio.sleep(0.1)
    b = await ob.open(rw("ch", 2))
    assert await acked == ID(0, 1)
    monkeypatch.undo()
    await b.append(MutableMessage.raw(b"m2"))
    for _ in range(100):
        if len(got) >= 3:
            break
        await asyncio.sleep(0.02)
    assert got == [b"m0", b"m1-acked", b"m2"]
    await scanner.close()
    await reading
    await oa.close()
    await ob.close()


async def test_fenced_roll_keeps_the_new_owners_durable_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fenced writer whose failed flush was a roll must not lift the new owner's limit:
    a block whose fdatasync fails is never delivered."""
    oa, ob = opener(tmp_path, segment_max_blocks=1), opener(tmp_path)
    a = await oa.open(rw("ch", 1))
    await a.append(MutableMessage.raw(b"a0"))
    b = await ob.open(rw("ch", 2))  # the new owner writes segment 1
    await b.append(MutableMessage.raw(b"b0"))
    with pytest.raises(FencedError):
        await a.append(MutableMessage.raw(b"a1"))  # A tries to roll into segment 1
    scanner = await b.read(ReadOption("r"))
    got: list[bytes] = []
    reading = asyncio.create_task(collect(scanner, got))
    await asyncio.sleep(0.2)

    def written_then_eio(fd: int, data: bytes, offset: int) -> None:
        os.pwrite(fd, data, offset)
        time.sleep(1.5)  # longer than a tail reader's re-check
        os.ftruncate(fd, offset)
        raise OSError(errno.EIO, "injected fdatasync failure")

    monkeypatch.setattr(writer_module, "_write_durably", written_then_eio)
    with pytest.raises(WALError):
        await b.append(MutableMessage.raw(b"b1-failed"))
    await asyncio.sleep(0.3)
    assert got == [b"a0", b"b0"], "a failed append was delivered"
    await scanner.close()
    await reading
    await oa.close()
    await ob.close()


async def test_concurrent_truncations_never_move_the_point_back(tmp_path: Path) -> None:
    for i in range(10):
        o = opener(tmp_path, segment_max_blocks=1)
        w = await o.open(rw(f"ch{i}", 1))
        for k in range(5):
            await w.append(MutableMessage.raw(b"x%d" % k))  # one segment per entry
        await asyncio.gather(w.truncate(ID(4, 0)), w.truncate(ID(1, 0)))
        layout = w._layout  # type: ignore[attr-defined]
        assert read_truncation_point(layout) == ID(4, 0)
        assert layout.list_segments() == [4]
        await o.close()


async def test_cancelled_close_still_releases_everything(tmp_path: Path) -> None:
    o = opener(tmp_path, flush_interval_ms=1000)
    before = fds()
    w = await o.open(rw("ch", 1))
    hub = w._hub  # type: ignore[attr-defined]
    lock = os.open(tmp_path / "ch" / "LOCK", os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)  # the flush that close() starts must wait for it
    pending = asyncio.create_task(w.append(MutableMessage.raw(b"x")))
    await asyncio.sleep(0.05)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(w.close(), 0.2)
    fcntl.flock(lock, fcntl.LOCK_UN)
    os.close(lock)
    assert await pending == ID(0, 0)
    await w.close()
    await o.close()
    assert fds() == before, "the writer's files stayed open"
    assert not hub.has_writer()


async def test_read_racing_close_gets_no_live_scanner(tmp_path: Path) -> None:
    o = opener(tmp_path)
    w = await o.open(rw("ch", 1))
    await w.append(MutableMessage.raw(b"x"))
    late = asyncio.create_task(w.read(ReadOption("late")))
    await asyncio.sleep(0)  # read() is resolving its start in a thread
    await o.close()
    with pytest.raises(WALClosedError):
        await late
