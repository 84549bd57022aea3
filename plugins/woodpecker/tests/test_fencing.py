"""Fencing by term within one process (flock is per open file description)."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

import pytest
from walstream.errors import FencedError, ReadOnlyWALError, WALError
from walstream.walimpls import ReadOption
from walstream_woodpecker import WoodpeckerMessageID as ID
from walstream_woodpecker.fence import read_fence
from walstream_woodpecker.layout import ChannelLayout
from wp_helpers import OpenerFactory, msg, read_all, ro, rw, segments, tags


async def test_old_writer_fails_and_its_appends_never_show(make_opener: OpenerFactory) -> None:
    first = await make_opener(flush_interval_ms=0).open(rw(term=1))
    for i in range(3):
        await first.append(msg(f"old{i}"))
    await first.close()
    opener = make_opener(flush_interval_ms=30_000)
    old = await opener.open(rw(term=1))
    # queued (the interval is long) while the new term opens: the flush that close()
    # forces must see the fence and write none of them
    racing = [asyncio.ensure_future(old.append(msg(f"race{i}"))) for i in range(20)]
    await asyncio.sleep(0)
    new = await make_opener(flush_interval_ms=0).open(rw(term=2))
    await asyncio.wait_for(old.close(), 5)
    outcomes = await asyncio.wait_for(asyncio.gather(*racing, return_exceptions=True), 10)
    assert all(isinstance(o, FencedError) for o in outcomes), outcomes
    assert all("fenced by term 2" in str(o) for o in outcomes)
    await new.append(msg("new"))
    assert tags(await read_all(new)) == ["old0", "old1", "old2", "new"]
    await old.close()  # closing twice is fine


async def test_fenced_writer_fails_on_its_next_flush(make_opener: OpenerFactory) -> None:
    opener = make_opener(flush_interval_ms=0)
    old = await opener.open(rw(term=1))
    acked = await old.append(msg("a"))
    new = await opener.open(rw(term=2))
    with pytest.raises(FencedError, match="fenced by term 2"):
        await old.append(msg("b"))
    with pytest.raises(FencedError):
        await old.truncate(acked)
    await new.append(msg("c"))
    assert tags(await read_all(new)) == ["a", "c"]


async def test_lower_term_is_refused_equal_term_reopens(make_opener: OpenerFactory) -> None:
    opener = make_opener(flush_interval_ms=0)
    wal = await opener.open(rw(term=5))
    await wal.append(msg("a"))
    await wal.close()
    with pytest.raises(FencedError, match="term 5 already took it"):
        await opener.open(rw(term=4))
    again = await opener.open(rw(term=5))
    await again.append(msg("b"))
    assert tags(await read_all(again)) == ["a", "b"]


async def test_same_term_reopen_supersedes_an_open_writer(make_opener: OpenerFactory) -> None:
    opener = make_opener(flush_interval_ms=0)
    first = await opener.open(rw(term=3))
    second = await opener.open(rw(term=3))
    with pytest.raises(FencedError, match="superseded"):
        await first.append(msg("x"))
    await second.append(msg("y"))
    assert tags(await read_all(second)) == ["y"]


async def test_every_rw_open_starts_a_new_segment(make_opener: OpenerFactory, root: Path) -> None:
    opener = make_opener(flush_interval_ms=0)
    for term in (1, 2, 3):
        wal = await opener.open(rw(term=term))
        mid = await wal.append(msg(term))
        assert mid == ID(term - 1, 0)
        await wal.close()
    assert segments(root) == [0, 1, 2]
    mark = read_fence(ChannelLayout(root / "ch"))
    assert mark is not None and mark.term == 3 and mark.generation == 3


async def test_read_only_never_fences(make_opener: OpenerFactory, root: Path) -> None:
    opener = make_opener(flush_interval_ms=0)
    wal = await opener.open(rw(term=7))
    reader = await opener.open(ro(term=1))
    with pytest.raises(ReadOnlyWALError, match="read-only"):
        await reader.append(msg("no"))
    with pytest.raises(ReadOnlyWALError):
        await reader.truncate(await wal.append(msg("a")))
    await wal.append(msg("b"))
    assert tags(await read_all(reader)) == ["a", "b"]
    mark = read_fence(ChannelLayout(root / "ch"))
    assert mark is not None and mark.term == 7


async def test_read_only_open_of_an_unknown_pchannel_waits_for_data(
    make_opener: OpenerFactory, root: Path
) -> None:
    reader = await make_opener().open(ro("fresh"))
    scanner = await reader.read(ReadOption())
    assert not (root / "fresh").exists()
    wal = await make_opener(flush_interval_ms=0).open(rw("fresh"))
    await wal.append(msg("first"))
    got = await asyncio.wait_for(scanner.__anext__(), 5)
    assert got.properties["n"] == "first"
    await scanner.close()


async def test_lock_wait_is_bounded(make_opener: OpenerFactory, root: Path) -> None:
    opener = make_opener(fence_lock_timeout_s=0.2)
    await (await opener.open(rw(term=1))).close()
    fd = os.open(root / "ch" / "LOCK", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(WALError, match=r"timed out after 0\.2s"):
            await asyncio.wait_for(opener.open(rw(term=2)), 5)
    finally:
        os.close(fd)
    await (await opener.open(rw(term=2))).close()


async def test_flush_waits_for_an_opening_owner(make_opener: OpenerFactory, root: Path) -> None:
    # While someone holds the exclusive lock (a new owner mid-open) a flush waits, bounded.
    opener = make_opener(flush_interval_ms=0, fence_lock_timeout_s=0.3)
    wal = await opener.open(rw(term=1))
    fd = os.open(root / "ch" / "LOCK", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(WALError, match="timed out"):
            await asyncio.wait_for(wal.append(msg("blocked")), 5)
    finally:
        os.close(fd)
    with pytest.raises(WALError, match="writer is stopped"):
        await wal.append(msg("after"))
