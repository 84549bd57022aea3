"""Truncation: a durable point, whole segments behind it deleted, reads clamped to it."""

from __future__ import annotations

from pathlib import Path

import pytest
from walstream.errors import MessageIDMismatchError, WALError
from walstream.message import MessageID
from walstream.walimpls import (
    DeliverAll,
    DeliverStartAfter,
    DeliverStartFrom,
    ReadOption,
    WALImpl,
)
from walstream_woodpecker import WoodpeckerMessageID as ID
from walstream_woodpecker.layout import ChannelLayout
from walstream_woodpecker.truncation import read_truncation_point
from wp_helpers import OpenerFactory, msg, read_all, read_n, rw, segments, tags


async def _three_segments(make_opener: OpenerFactory) -> tuple[WALImpl, list[MessageID]]:
    wal = await make_opener(flush_interval_ms=0, segment_max_blocks=2).open(rw())
    ids = [await wal.append(msg(i)) for i in range(6)]  # segments 0,1,2 with 2 entries each
    return wal, ids


async def test_truncate_deletes_whole_segments_behind(
    make_opener: OpenerFactory, root: Path
) -> None:
    wal, ids = await _three_segments(make_opener)
    assert segments(root) == [0, 1, 2]
    await wal.truncate(ids[3])  # (1, 1): segment 1 stays, only segment 0 goes
    assert segments(root) == [1, 2]
    assert read_truncation_point(ChannelLayout(root / "ch")) == ID(1, 1)
    assert tags(await read_all(wal)) == ["3", "4", "5"]
    await wal.truncate(ids[4])  # (2, 0)
    assert segments(root) == [2]
    assert tags(await read_all(wal, ReadOption("all", DeliverAll()))) == ["4", "5"]


async def test_start_positions_below_the_point_are_clamped(make_opener: OpenerFactory) -> None:
    wal, ids = await _three_segments(make_opener)
    await wal.truncate(ids[3])
    assert tags(await read_all(wal, ReadOption("f", DeliverStartFrom(ids[0])))) == ["3", "4", "5"]
    assert tags(await read_all(wal, ReadOption("a", DeliverStartAfter(ids[1])))) == ["3", "4", "5"]
    assert tags(await read_all(wal, ReadOption("a", DeliverStartAfter(ids[3])))) == ["4", "5"]
    assert tags(await read_all(wal, ReadOption("f", DeliverStartFrom(ids[4])))) == ["4", "5"]


async def test_truncation_never_moves_back_and_survives_reopen(
    make_opener: OpenerFactory, root: Path
) -> None:
    opener = make_opener(flush_interval_ms=0, segment_max_blocks=2)
    wal = await opener.open(rw())
    ids = [await wal.append(msg(i)) for i in range(6)]
    await wal.truncate(ids[4])
    await wal.truncate(ids[1])  # behind the point: no effect
    assert read_truncation_point(ChannelLayout(root / "ch")) == ids[4]
    await wal.close()
    wal = await opener.open(rw(term=2))
    new = await wal.append(msg("new"))
    assert new > ids[-1]
    assert tags(await read_all(wal)) == ["4", "5", "new"]


async def test_truncate_refusals(make_opener: OpenerFactory) -> None:
    wal, _ = await _three_segments(make_opener)
    with pytest.raises(WALError, match="the log ends at"):
        await wal.truncate(ID(9, 0))
    with pytest.raises(WALError, match="the log ends at"):
        await wal.truncate(ID(2, 5))
    await wal.truncate(ID(2, 2))  # exactly the end is allowed: nothing retained yet
    assert await read_all(wal) == []

    class Other(ID):
        wal_name = "other"

    with pytest.raises(MessageIDMismatchError):
        await wal.truncate(Other(0, 0))


async def test_scanner_behind_truncation_jumps_to_the_point(make_opener: OpenerFactory) -> None:
    wal, ids = await _three_segments(make_opener)
    # one message per read batch, so the scanner has not read ahead into segment 1
    scanner = await wal.read(ReadOption("slow", DeliverAll(), read_ahead_buffer_size=1))
    assert tags(await read_n(scanner, 1)) == ["0"]
    await wal.truncate(ids[5])  # deletes segments 0 and 1
    assert tags(await read_n(scanner, 1)) == ["5"]
    rest = [m.properties["n"] for m in await read_all(wal, ReadOption("all"))]
    assert rest == ["5"]
    await scanner.close()
