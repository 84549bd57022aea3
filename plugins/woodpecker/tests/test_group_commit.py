"""Group commit: what triggers a flush, ordering of acknowledgements, close and cancel."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from walstream.errors import MessageTooLargeError, WALClosedError
from walstream.message import MutableMessage
from walstream_woodpecker import WoodpeckerMessageID as ID
from wp_helpers import OpenerFactory, block_headers, msg, read_all, rw, tags

SEGMENT0 = Path("ch") / ("0" * 20 + ".seg")


async def test_entry_count_triggers_a_flush(make_opener: OpenerFactory, root: Path) -> None:
    wal = await make_opener(flush_interval_ms=30_000, flush_max_entries=5).open(rw())
    ids = await asyncio.wait_for(asyncio.gather(*(wal.append(msg(i)) for i in range(5))), 5)
    assert ids == [ID(0, i) for i in range(5)]
    [(_, header)] = block_headers(root / SEGMENT0)
    assert header.entry_count == 5


async def test_byte_count_triggers_a_flush(make_opener: OpenerFactory, root: Path) -> None:
    wal = await make_opener(flush_interval_ms=30_000, flush_max_bytes=1000).open(rw())
    # ~416 bytes each: the third crosses 1000 bytes; all three go out, two blocks
    ids = await asyncio.wait_for(
        asyncio.gather(*(wal.append(msg(i, size=400)) for i in range(3))), 5
    )
    assert ids == [ID(0, i) for i in range(3)]
    counts = [h.entry_count for _, h in block_headers(root / SEGMENT0)]
    assert counts == [2, 1]


async def test_interval_triggers_a_flush(make_opener: OpenerFactory, root: Path) -> None:
    wal = await make_opener(flush_interval_ms=100).open(rw())
    started = time.monotonic()
    ids = await asyncio.wait_for(asyncio.gather(*(wal.append(msg(i)) for i in range(3))), 5)
    waited = time.monotonic() - started
    assert ids == [ID(0, i) for i in range(3)]
    assert 0.09 <= waited < 3
    [(_, header)] = block_headers(root / SEGMENT0)
    assert header.entry_count == 3


async def test_hundreds_of_concurrent_appends_ack_in_order(
    make_opener: OpenerFactory, root: Path
) -> None:
    wal = await make_opener(flush_interval_ms=2, flush_max_entries=64).open(rw())
    order: list[int] = []

    async def one(i: int) -> ID:
        mid = await wal.append(msg(i))
        assert isinstance(mid, ID)
        order.append(mid.entry)
        return mid

    ids = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(500))), 20)
    assert ids == [ID(0, i) for i in range(500)]
    assert order == sorted(order)  # acknowledgements go out in entry order
    headers = block_headers(root / SEGMENT0)
    assert sum(h.entry_count for _, h in headers) == 500
    assert all(h.entry_count <= 64 for _, h in headers)
    assert tags(await read_all(wal)) == [str(i) for i in range(500)]


async def test_close_flushes_pending_appends(make_opener: OpenerFactory) -> None:
    opener = make_opener(flush_interval_ms=30_000)
    wal = await opener.open(rw())
    pending = [asyncio.ensure_future(wal.append(msg(i))) for i in range(4)]
    await asyncio.sleep(0.01)
    await asyncio.wait_for(wal.close(), 5)
    assert [p.result() for p in pending] == [ID(0, i) for i in range(4)]
    with pytest.raises(WALClosedError):
        await wal.append(msg("late"))
    await wal.close()  # idempotent
    reader = await opener.open(rw(term=2))
    assert tags(await read_all(reader)) == ["0", "1", "2", "3"]


async def test_a_cancelled_append_before_its_flush_is_not_written(
    make_opener: OpenerFactory,
) -> None:
    wal = await make_opener(flush_interval_ms=100).open(rw())
    keep = asyncio.ensure_future(wal.append(msg("keep")))
    drop = asyncio.ensure_future(wal.append(msg("drop")))
    await asyncio.sleep(0.01)
    drop.cancel()
    assert await asyncio.wait_for(keep, 5) == ID(0, 0)
    last = await wal.append(msg("last"))
    assert last == ID(0, 1)
    assert tags(await read_all(wal)) == ["keep", "last"]


async def test_size_limit(make_opener: OpenerFactory) -> None:
    wal = await make_opener(max_message_bytes=100, flush_interval_ms=0).open(rw())
    exact = MutableMessage.raw(b"x" * 100)
    assert exact.size == 100
    await wal.append(exact)
    with pytest.raises(MessageTooLargeError, match="100-byte limit"):
        await wal.append(MutableMessage.raw(b"x" * 101))
    with pytest.raises(MessageTooLargeError):
        await wal.append(MutableMessage.raw(b"x" * 90, {"k": "v" * 10}))
    assert len(await read_all(wal)) == 1
