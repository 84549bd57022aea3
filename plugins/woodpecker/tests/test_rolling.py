"""Segment rolling by block count, size and age."""

from __future__ import annotations

import asyncio
from pathlib import Path

from walstream.message import MessageID
from walstream.walimpls import DeliverStartAfter, DeliverStartFrom, ReadOption
from walstream_woodpecker import WoodpeckerMessageID as ID
from wp_helpers import OpenerFactory, block_headers, msg, read_all, read_n, rw, segments, tags


def _pairs(ids: list[MessageID]) -> list[tuple[int, int]]:
    assert all(isinstance(i, ID) for i in ids)
    return [(i.segment, i.entry) for i in ids]  # type: ignore[attr-defined]


async def test_roll_by_blocks(make_opener: OpenerFactory, root: Path) -> None:
    wal = await make_opener(flush_interval_ms=0, segment_max_blocks=2).open(rw())
    ids = [await wal.append(msg(i)) for i in range(5)]
    assert _pairs(ids) == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]
    assert segments(root) == [0, 1, 2]
    assert tags(await read_all(wal)) == ["0", "1", "2", "3", "4"]
    mid = ids[2]
    assert tags(await read_all(wal, ReadOption("f", DeliverStartFrom(mid)))) == ["2", "3", "4"]
    assert tags(await read_all(wal, ReadOption("a", DeliverStartAfter(ids[1])))) == ["2", "3", "4"]


async def test_roll_by_size(make_opener: OpenerFactory, root: Path) -> None:
    wal = await make_opener(flush_interval_ms=0, segment_max_bytes=150).open(rw())
    ids = [await wal.append(msg(i, size=60)) for i in range(4)]
    # each block is ~130 bytes: the second block crosses 150, so every segment holds two
    assert _pairs(ids) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for seg in segments(root):
        assert len(block_headers(root / "ch" / f"{seg:020d}.seg")) == 2


async def test_roll_by_age(make_opener: OpenerFactory, root: Path) -> None:
    wal = await make_opener(flush_interval_ms=0, segment_max_age_s=0.1).open(rw())
    a = await wal.append(msg("a"))
    b = await wal.append(msg("b"))
    await asyncio.sleep(0.15)
    c = await wal.append(msg("c"))
    assert _pairs([a, b, c]) == [(0, 0), (0, 1), (1, 0)]


async def test_an_empty_segment_never_rolls(make_opener: OpenerFactory, root: Path) -> None:
    wal = await make_opener(flush_interval_ms=0, segment_max_age_s=0.05).open(rw())
    await asyncio.sleep(0.1)
    a = await wal.append(msg("a"))
    assert _pairs([a]) == [(0, 0)]
    assert segments(root) == [0]


async def test_tail_reader_follows_rolls(make_opener: OpenerFactory) -> None:
    wal = await make_opener(flush_interval_ms=0, segment_max_blocks=1).open(rw())
    async with await wal.read(ReadOption()) as scanner:
        for i in range(4):
            await wal.append(msg(i))
            got = await read_n(scanner, 1)
            assert got[0].properties["n"] == str(i)
            assert got[0].message_id == ID(i, 0)
