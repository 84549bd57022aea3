"""Scanners: policies, tail wake-ups (not polling), close, cancellation, errors."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from pathlib import Path

import pytest
from walstream.errors import WALClosedError, WALError
from walstream.message import ImmutableMessage
from walstream.walimpls import DeliverLatest, DeliverStartFrom, ReadOption
from walstream_woodpecker import WoodpeckerBuilder
from walstream_woodpecker import WoodpeckerMessageID as ID
from walstream_woodpecker.block import encode_block
from wp_helpers import OpenerFactory, msg, read_all, read_idle, read_n, ro, rw, tags

NO_POLLING = 60_000  # ms: a reader that gets data quickly was woken, not polling


async def test_latest_delivers_only_later_appends(make_opener: OpenerFactory) -> None:
    wal = await make_opener(flush_interval_ms=0).open(rw())
    for i in range(3):
        await wal.append(msg(i))
    async with await wal.read(ReadOption("latest", DeliverLatest())) as scanner:
        assert await read_idle(scanner, 0.1) == []
        await wal.append(msg("after"))
        assert tags(await read_n(scanner, 1)) == ["after"]


async def test_latest_on_an_empty_pchannel(make_opener: OpenerFactory) -> None:
    reader = await make_opener().open(ro())
    async with await reader.read(ReadOption("latest", DeliverLatest())) as scanner:
        wal = await make_opener(flush_interval_ms=0).open(rw())
        await wal.append(msg("first"))
        assert tags(await read_n(scanner, 1)) == ["first"]


async def test_start_from_a_future_id_waits_for_it(make_opener: OpenerFactory) -> None:
    wal = await make_opener(flush_interval_ms=0).open(rw())
    await wal.append(msg(0))
    async with await wal.read(ReadOption("f", DeliverStartFrom(ID(0, 2)))) as scanner:
        await wal.append(msg(1))
        await wal.append(msg(2))
        assert tags(await read_n(scanner, 1)) == ["2"]


async def test_tail_is_woken_by_the_writer_not_by_polling(make_opener: OpenerFactory) -> None:
    wal = await make_opener(flush_interval_ms=0, reader_poll_interval_ms=NO_POLLING).open(rw())
    async with await wal.read(ReadOption()) as scanner:
        for i in range(5):
            reading = asyncio.ensure_future(scanner.__anext__())
            await asyncio.sleep(0.02)  # the scanner is parked at the tail
            started = time.monotonic()
            await wal.append(msg(i))
            got = await asyncio.wait_for(reading, 5)
            assert got.properties["n"] == str(i)
            assert time.monotonic() - started < 0.5


async def test_reader_on_another_event_loop_is_woken(
    make_opener: OpenerFactory, root: Path
) -> None:
    wal = await make_opener(flush_interval_ms=0).open(rw())
    ready = threading.Event()
    result: list[ImmutableMessage] = []

    async def other_loop() -> None:
        opener = WoodpeckerBuilder().build(
            {"root": str(root), "reader_poll_interval_ms": NO_POLLING}
        )
        async with opener:
            reader = await opener.open(ro())
            async with await reader.read(ReadOption("x", DeliverLatest())) as scanner:
                ready.set()
                result.append(await asyncio.wait_for(scanner.__anext__(), 5))

    thread = threading.Thread(target=asyncio.run, args=(other_loop(),))
    thread.start()
    try:
        assert await asyncio.to_thread(ready.wait, 5)
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await wal.append(msg("cross"))
        await asyncio.to_thread(thread.join, 5)
        assert time.monotonic() - started < 0.9  # well before the 1 s safety re-check
    finally:
        thread.join(10)
    assert [m.properties["n"] for m in result] == ["cross"]


_CHILD = """
import asyncio, json, sys
from walstream_woodpecker import WoodpeckerBuilder
from walstream.message import MutableMessage
from walstream.walimpls import PChannelInfo
async def main(root):
    async with WoodpeckerBuilder().build({"root": root, "flush_interval_ms": 0}) as opener:
        wal = await opener.open(PChannelInfo("ch", 1))
        for i in range(3):
            await wal.append(MutableMessage.raw(b"p", {"n": f"child{i}"}))
asyncio.run(main(json.loads(sys.argv[1])))
"""


async def test_reader_without_a_local_writer_polls(make_opener: OpenerFactory, root: Path) -> None:
    reader = await make_opener(reader_poll_interval_ms=20).open(ro())
    async with await reader.read(ReadOption()) as scanner:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CHILD, json.dumps(str(root))
        )
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        assert tags(await read_n(scanner, 3)) == ["child0", "child1", "child2"]


async def test_close_wakes_a_pending_next(make_opener: OpenerFactory) -> None:
    wal = await make_opener(reader_poll_interval_ms=NO_POLLING).open(rw())
    scanner = await wal.read(ReadOption())
    pending = asyncio.ensure_future(scanner.__anext__())
    await asyncio.sleep(0.05)
    assert not pending.done()
    await asyncio.wait_for(scanner.close(), 1)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, 1)
    await scanner.close()
    with pytest.raises(StopAsyncIteration):
        await scanner.__anext__()


async def test_wal_close_closes_its_scanners(make_opener: OpenerFactory) -> None:
    wal = await make_opener(reader_poll_interval_ms=NO_POLLING).open(rw())
    scanner = await wal.read(ReadOption())
    pending = asyncio.ensure_future(scanner.__anext__())
    await asyncio.sleep(0.02)
    await asyncio.wait_for(wal.close(), 2)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, 1)
    with pytest.raises(WALClosedError):
        await wal.read(ReadOption())


async def test_scanners_leave_no_tasks(make_opener: OpenerFactory) -> None:
    wal = await make_opener(flush_interval_ms=0).open(rw())
    await wal.append(msg(0))
    baseline = len(asyncio.all_tasks())
    scanners = await asyncio.gather(*(wal.read(ReadOption(f"s{i}")) for i in range(10)))
    assert len(asyncio.all_tasks()) == baseline
    await asyncio.gather(*(read_n(s, 1) for s in scanners))
    assert len(asyncio.all_tasks()) == baseline
    await asyncio.wait_for(asyncio.gather(*(s.close() for s in scanners)), 5)
    assert len(asyncio.all_tasks()) == baseline


async def test_cancelled_next_loses_nothing(make_opener: OpenerFactory) -> None:
    wal = await make_opener(flush_interval_ms=1).open(rw())
    writer = asyncio.ensure_future(asyncio.gather(*(wal.append(msg(i)) for i in range(300))))
    got: list[str] = []
    async with await wal.read(ReadOption(read_ahead_buffer_size=7)) as scanner:
        deadline = time.monotonic() + 15
        while len(got) < 300 and time.monotonic() < deadline:
            try:
                m = await asyncio.wait_for(scanner.__anext__(), 0.0005)
            except TimeoutError:
                continue
            got.append(m.properties["n"])
    await writer
    assert got == [str(i) for i in range(300)]


async def test_unsynced_bytes_are_invisible_to_local_readers(
    make_opener: OpenerFactory, root: Path
) -> None:
    wal = await make_opener(flush_interval_ms=0).open(rw())
    await wal.append(msg("a"))
    # What a flush in progress looks like: a complete block written, fsync not done yet.
    path = root / "ch" / ("0" * 20 + ".seg")
    with path.open("ab") as fh:
        fh.write(encode_block(0, 1, 1, [b"not acknowledged"]))
    assert tags(await read_all(wal, quiet=0.2)) == ["a"]


async def test_an_undecodable_entry_is_an_error(make_opener: OpenerFactory, root: Path) -> None:
    (root / "ch").mkdir(parents=True)
    (root / "ch" / ("0" * 20 + ".seg")).write_bytes(encode_block(0, 0, 0, [b"junk"]))
    reader = await make_opener().open(ro())
    scanner = await reader.read(ReadOption("bad"))
    with pytest.raises(WALError, match="not a walstream message"):
        await asyncio.wait_for(scanner.__anext__(), 5)
    assert isinstance(scanner.error, WALError)
    with pytest.raises(StopAsyncIteration):
        await scanner.__anext__()
    await scanner.close()


async def test_opener_close_closes_wals(make_opener: OpenerFactory) -> None:
    opener = make_opener(flush_interval_ms=30_000)
    wal = await opener.open(rw())
    pending = asyncio.ensure_future(wal.append(msg("x")))
    await asyncio.sleep(0.01)
    await asyncio.wait_for(opener.close(), 5)
    assert pending.result() == ID(0, 0)
    with pytest.raises(WALClosedError):
        await opener.open(rw())
    with pytest.raises(WALClosedError):
        await wal.append(msg("y"))
