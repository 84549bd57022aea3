"""Torn tails and damaged blocks: never a corrupt or unacknowledged entry, nothing acked lost."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path

import pytest
from walstream.walimpls import ReadOption
from walstream_woodpecker import WoodpeckerBuilder
from walstream_woodpecker.block import encode_block
from walstream_woodpecker.layout import ChannelLayout
from wp_helpers import OpenerFactory, block_headers, msg, read_idle, read_n, ro, rw, tags

SEGMENT0 = "ch/" + "0" * 20 + ".seg"


async def _write_sequential(
    make_opener: OpenerFactory, root: Path, n: int, **settings: object
) -> Path:
    """``n`` sequential appends: one block each (flush interval 0)."""
    opener = make_opener(flush_interval_ms=0, **settings)
    wal = await opener.open(rw())
    for i in range(n):
        await wal.append(msg(i, size=i))
    await wal.close()
    return root / SEGMENT0


async def _reopen_and_read(root: Path, expected: list[str]) -> int:
    """Open RW at a higher term, append a sentinel, read everything; return segment-0 size."""
    opener = WoodpeckerBuilder().build({"root": str(root), "flush_interval_ms": 0})
    async with opener:
        wal = await opener.open(rw(term=2))
        size = (root / SEGMENT0).stat().st_size
        end = await wal.append(msg("end"))
        async with await wal.read(ReadOption()) as scanner:
            got = await read_n(scanner, len(expected) + 1)
        assert tags(got) == [*expected, "end"]
        assert got[-1].message_id == end
        for m in got[:-1]:
            assert m.payload == msg(m.properties["n"], size=int(m.properties["n"])).payload
    return size


async def test_torn_tail_at_every_offset_of_the_last_block(
    make_opener: OpenerFactory, root: Path, tmp_path: Path
) -> None:
    path = await _write_sequential(make_opener, root, 3)
    data = path.read_bytes()
    (last_offset, _), *_ = reversed(block_headers(path))
    for cut in range(last_offset, len(data) + 1):
        case = tmp_path / f"cut{cut}"
        (case / "ch").mkdir(parents=True)
        (case / SEGMENT0).write_bytes(data[:cut])
        complete = cut == len(data)
        size = await asyncio.wait_for(
            _reopen_and_read(case, ["0", "1", "2"] if complete else ["0", "1"]), 10
        )
        assert size == (len(data) if complete else last_offset)
        shutil.rmtree(case)


@pytest.mark.parametrize(
    "garbage",
    ["random", "zeros", "duplicate", "wrong_segment", "future_block", "header_only"],
)
async def test_garbage_after_the_last_block_is_cut(
    make_opener: OpenerFactory, root: Path, garbage: str
) -> None:
    path = await _write_sequential(make_opener, root, 3)
    data = path.read_bytes()
    (last_offset, _), *_ = reversed(block_headers(path))
    tail = {
        "random": os.urandom(300),
        "zeros": bytes(100),
        "duplicate": data[last_offset:],
        "wrong_segment": encode_block(7, 3, 3, [b"x"]),
        "future_block": encode_block(0, 4, 3, [b"x"]),
        "header_only": encode_block(0, 3, 3, [b"x" * 50])[:40],
    }[garbage]
    path.write_bytes(data + tail)
    size = await asyncio.wait_for(_reopen_and_read(root, ["0", "1", "2"]), 10)
    assert size == len(data)


async def test_flipped_byte_stops_reader_and_recovery(
    make_opener: OpenerFactory, root: Path
) -> None:
    path = await _write_sequential(make_opener, root, 3)
    (_, _), (second, header), _ = block_headers(path)
    raw = bytearray(path.read_bytes())
    raw[second + 40 + header.data_length // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    # a reader stops at the damaged block and delivers nothing from it or after it
    reader = await make_opener().open(ro())
    async with await reader.read(ReadOption()) as scanner:
        assert tags(await read_idle(scanner, 0.3)) == ["0"]
    # a new owner keeps the valid prefix only
    size = await asyncio.wait_for(_reopen_and_read(root, ["0"]), 10)
    assert size == second


async def test_damaged_block_in_a_final_segment_is_skipped_with_a_warning(
    make_opener: OpenerFactory, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = await _write_sequential(make_opener, root, 4, segment_max_blocks=3)
    assert ChannelLayout(root / "ch").list_segments() == [0, 1]
    (_, _), (second, header), _ = block_headers(path)
    raw = bytearray(path.read_bytes())
    raw[second + 40 + header.data_length // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    reader = await make_opener().open(ro())
    with caplog.at_level(logging.WARNING, logger="walstream_woodpecker"):
        async with await reader.read(ReadOption()) as scanner:
            got = await read_idle(scanner, 0.3)
    assert tags(got) == ["0", "3"]
    assert any("not a valid block" in r.getMessage() for r in caplog.records)


async def test_reader_waits_at_a_torn_tail_until_the_new_owner_recovers(
    make_opener: OpenerFactory, root: Path
) -> None:
    path = await _write_sequential(make_opener, root, 2)
    data = path.read_bytes()
    path.write_bytes(data + encode_block(0, 2, 2, [b"torn" * 20])[:-5])
    reader = await make_opener().open(ro())
    async with await reader.read(ReadOption()) as scanner:
        assert tags(await read_n(scanner, 2)) == ["0", "1"]
        assert await read_idle(scanner, 0.2) == []  # torn: not yet, not ever
        wal = await make_opener(flush_interval_ms=0).open(rw(term=2))
        assert path.stat().st_size == len(data)
        await wal.append(msg("new"))
        assert tags(await read_n(scanner, 1)) == ["new"]
