"""Zero-disk take-over regressions: truncation keeps fences, terms never go backwards,
busy writers can be fenced, damaged short objects are reported, back-pressure.

Each test here failed before the fixes of the zero-disk review: the scenario, then
what must hold.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from om_helpers import FaultStore, make_opener, object_settings
from walstream.errors import FencedError, ObjectNotFoundError, WALError
from walstream.message import MessageID, MutableMessage
from walstream.objectstore import ObjectStore
from walstream.walimpls import DeliverLatest, ReadOption, WALImpl
from walstream_woodpecker import WoodpeckerMessageID
from walstream_woodpecker.objectmode import meta as meta_mod
from walstream_woodpecker.objectmode.block_object import CorruptObjectError, decode_fence
from walstream_woodpecker.objectmode.layout import LogLayout
from walstream_woodpecker.objectmode.uploader import put_exactly
from walstream_woodpecker.objectmode.writer import ObjectWriter
from wp_helpers import msg, read_all, read_n, ro, rw

SEG0 = "ch/00000000000000000000/"


def writer_of(wal: WALImpl) -> ObjectWriter:
    writer = wal._writer  # type: ignore[attr-defined]
    assert isinstance(writer, ObjectWriter)
    return writer


# --- 1. truncation must not unfence a fenced writer -----------------------------------------


async def test_fenced_writer_is_refused_after_its_segment_was_truncated(tmp_path: Path) -> None:
    settings = object_settings(tmp_path / "wal")
    a, b = make_opener(settings), make_opener(settings)
    old = await a.open(rw("ch", 1))
    await old.append(msg("old-0"))  # segment 0, block 0
    new = await b.open(rw("ch", 2))  # fences segment 0 at block 1, starts segment 1
    last = await new.append(msg("new-0"))
    await new.truncate(last)  # deletes segment 0
    # The fence at block 1 stays, so the old writer's next block meets it.
    with pytest.raises(FencedError):
        await asyncio.wait_for(old.append(msg("old-1")), 10)
    store = b._store
    assert store is not None
    left = await store.list(SEG0)
    assert [o.key for o in left] == [f"{SEG0}000000000001.blk"]
    assert decode_fence(await store.get(left[0].key)) is not None
    # The old writer's close must not re-create the footer of the deleted segment.
    await old.close()
    assert [o.key for o in await store.list(SEG0)] == [f"{SEG0}000000000001.blk"]
    got = await read_all(new)
    assert [m.payload for m in got] == [b"payload new-0"]
    await a.close()
    await b.close()


async def test_late_roll_does_not_recreate_the_footer_of_a_truncated_segment(
    tmp_path: Path,
) -> None:
    settings = object_settings(tmp_path / "wal")
    a, b = make_opener(settings), make_opener(settings)
    old = await a.open(rw("ch", 1))
    await old.append(msg("old-0"))
    new = await b.open(rw("ch", 2))
    await new.truncate(await new.append(msg("new-0")))
    # The old writer has not uploaded since; closing it completes "its" segment 0.
    await old.close()
    store = b._store
    assert store is not None
    assert not [o.key for o in await store.list(SEG0) if o.key.endswith("footer.blk")]
    await a.close()
    await b.close()


async def test_a_truncated_segment_its_writer_completed_gets_a_fence(tmp_path: Path) -> None:
    settings = object_settings(tmp_path / "wal", segment_max_blocks=2, object_flush_interval_ms=0)
    opener = make_opener(settings)
    wal = await opener.open(rw("ch", 1))
    ids = [await wal.append(msg(i)) for i in range(5)]  # segments 0, 0, 1, 1, 2
    await wal.truncate(ids[-1])
    store = opener._store
    assert store is not None
    left = await store.list(SEG0)
    assert [o.key for o in left] == [f"{SEG0}000000000002.blk"]  # at its block count
    assert decode_fence(await store.get(left[0].key)) is not None
    await opener.close()


async def test_put_exactly_treats_exists_then_deleted_as_fenced(tmp_path: Path) -> None:
    settings = object_settings(tmp_path / "wal")
    opener = make_opener(settings)
    await opener.open(ro("ch", 1))  # connects the store
    inner = opener._store
    assert inner is not None
    key = f"{SEG0}000000000003.blk"
    await inner.put(key, b"an earlier object")

    async def delete_before_get(op: str, k: str) -> None:
        if op == "get" and k == key:
            await inner.delete(k)  # truncation between our put and our read-back

    store: ObjectStore = FaultStore(inner, delete_before_get)
    with pytest.raises(FencedError, match="deleted"):
        await put_exactly(
            store, key, b"ours", deadline=time.monotonic() + 5, request_timeout=1, who="t"
        )
    with pytest.raises(ObjectNotFoundError):
        await inner.get(key)  # and it was not put again
    await opener.close()


# --- 2. a lower term must never fence a higher one ----------------------------------------------


async def test_lower_term_open_that_stalls_cannot_fence_a_higher_term(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = object_settings(tmp_path / "wal")
    o1, o2, o3 = make_opener(settings), make_opener(settings), make_opener(settings)
    w1 = await o1.open(rw("ch", 1))
    await w1.append(msg("t1"))
    go_on = asyncio.Event()
    real_segments = meta_mod.LogMeta.segments
    stalled = False

    async def segments(self: meta_mod.LogMeta) -> list[meta_mod.SegmentMeta]:
        nonlocal stalled
        task = asyncio.current_task()
        if task is not None and task.get_name() == "t2" and not stalled:
            stalled = True  # the term-2 open stalls after its claim (GC, slow metastore)
            await go_on.wait()
        return await real_segments(self)

    monkeypatch.setattr(meta_mod.LogMeta, "segments", segments)
    t2 = asyncio.create_task(o2.open(rw("ch", 2)), name="t2")
    for _ in range(200):
        if stalled:
            break
        await asyncio.sleep(0.01)
    assert stalled
    w3 = await o3.open(rw("ch", 3))
    go_on.set()
    with pytest.raises(FencedError):
        await asyncio.wait_for(t2, 10)
    mid = await w3.append(msg("t3"))  # the higher term was not fenced
    assert mid == WoodpeckerMessageID(1, 0)
    got = await read_all(w3)
    assert [m.payload for m in got] == [b"payload t1", b"payload t3"]
    for o in (o1, o2, o3):
        await o.close()


async def test_segment_records_carry_term_and_generation(tmp_path: Path) -> None:
    settings = object_settings(tmp_path / "wal")
    opener = make_opener(settings)
    await opener.open(rw("ch", 4))
    assert opener._metastore is not None
    records = meta_mod.LogMeta(opener._metastore, LogLayout.of("ch", "woodpecker"), "ch")
    (seg,) = await records.segments()
    assert (seg.term, seg.generation) == (4, 1)
    assert seg.newer_than(meta_mod.Owner(3, 9)) and not seg.newer_than(meta_mod.Owner(4, 2))
    await opener.close()


# --- 3. a busy old writer can be fenced ----------------------------------------------------------


async def _slow_fencer(op: str, key: str) -> None:
    if op == "put_if_absent":
        await asyncio.sleep(0.03)  # the new owner's fence put is a slow round trip


async def _busy(wal: WALImpl, stop: asyncio.Event, acked: dict[bytes, MessageID]) -> None:
    async def producer(k: int) -> None:
        i = 0
        while not stop.is_set():
            payload = f"{k}-{i}".encode()
            try:
                acked[payload] = await wal.append(MutableMessage.raw(payload + b"x" * 40))
            except WALError:
                return
            i += 1

    await asyncio.gather(*(producer(k) for k in range(16)))


@pytest.mark.parametrize("segment_max_blocks", [1000, 1], ids=["fence-race", "roll-race"])
async def test_a_busy_old_writer_is_fenced_and_stops(
    tmp_path: Path, segment_max_blocks: int
) -> None:
    settings = object_settings(
        tmp_path / "wal",
        object_flush_interval_ms=0,
        object_flush_max_bytes=64,
        segment_max_blocks=segment_max_blocks,
    )
    a = make_opener(settings)
    b = make_opener(settings, lambda inner: FaultStore(inner, _slow_fencer))
    old = await a.open(rw("ch", 1))
    stop = asyncio.Event()
    acked: dict[bytes, MessageID] = {}
    producers = asyncio.create_task(_busy(old, stop, acked))
    await asyncio.sleep(0.2)
    new = await asyncio.wait_for(b.open(rw("ch", 2)), 20)  # neither WALError nor FencedError
    await asyncio.sleep(0.3)
    with pytest.raises(FencedError):
        await old.append(msg("late"))
    stop.set()
    await asyncio.wait_for(producers, 20)
    # Everything the old writer acknowledged is in the log, once, in order.
    mine = await new.append(msg("new"))
    got = await read_n(await new.read(ReadOption("all")), len(acked) + 1, timeout=30)
    payloads = [m.payload.removesuffix(b"x" * 40) for m in got]
    assert len(set(payloads)) == len(payloads)
    ids = [m.message_id for m in got]
    assert ids == sorted(ids)
    by_payload = dict(zip(payloads, ids, strict=True))
    for payload, mid in acked.items():
        assert by_payload[payload] == mid
    assert ids[-1] == mine
    await a.close()
    await b.close()


# --- 4. a damaged short block is no fence --------------------------------------------------------


async def _crashed_writer_with_a_short_block(tmp_path: Path) -> tuple[dict[str, Any], Path]:
    objects = tmp_path / "objects"
    objects.mkdir()
    settings = object_settings(tmp_path / "wal", objects.as_uri(), object_flush_interval_ms=0)
    opener = make_opener(settings)
    wal = await opener.open(rw("ch", 1))
    for i in range(4):
        await wal.append(msg(i))  # 4 acknowledged blocks
    # The writer "crashes": its task dies without completing segment 0.
    task = writer_of(wal)._task
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await opener.close()
    block = next(objects.rglob("000000000001.blk"))
    block.write_bytes(block.read_bytes()[:20])  # damaged: shorter than a fence
    return settings, block


async def test_a_short_damaged_block_is_not_taken_for_a_fence(tmp_path: Path) -> None:
    settings, _ = await _crashed_writer_with_a_short_block(tmp_path)
    opener = make_opener(settings)
    with pytest.raises(CorruptObjectError, match=r"000000000001\.blk"):
        await opener.open(rw("ch", 2))
    await opener.close()


async def test_latest_and_scanners_report_a_short_damaged_block(tmp_path: Path) -> None:
    settings, _ = await _crashed_writer_with_a_short_block(tmp_path)
    opener = make_opener(settings)
    reader = await opener.open(ro("ch", 1))
    with pytest.raises(CorruptObjectError, match=r"000000000001\.blk"):
        await reader.read(ReadOption("latest", DeliverLatest()))
    scanner = await reader.read(ReadOption("all"))
    first = await asyncio.wait_for(scanner.__anext__(), 10)
    assert first.message_id == WoodpeckerMessageID(0, 0)
    with pytest.raises(CorruptObjectError, match=r"000000000001\.blk"):
        await asyncio.wait_for(scanner.__anext__(), 10)
    await scanner.close()
    await opener.close()


# --- 5. the scanner's floor after a jump; back-pressure --------------------------------------


async def test_a_reader_jumping_to_the_truncation_point_delivers_nothing_below_it(
    tmp_path: Path,
) -> None:
    settings = object_settings(tmp_path / "wal", object_flush_interval_ms=0, segment_max_blocks=8)
    writer_opener = make_opener(settings)
    wal = await writer_opener.open(rw("ch", 1))
    ids = [await wal.append(msg(i)) for i in range(12)]  # segment 0: 0-7, segment 1: 8-11
    point = ids[10]  # (1, 2)
    truncated = asyncio.Event()

    async def truncate_first(op: str, key: str) -> None:
        if op == "get" and key == f"{SEG0}000000000004.blk" and not truncated.is_set():
            truncated.set()
            await wal.truncate(point)  # blocks of segment 0 vanish under the reader

    reader_opener = make_opener(settings, lambda inner: FaultStore(inner, truncate_first))
    reader = await reader_opener.open(ro("ch", 1))
    scanner = await reader.read(ReadOption("all", read_ahead_buffer_size=1))
    got = [await asyncio.wait_for(scanner.__anext__(), 10) for _ in range(4)]
    assert [m.message_id for m in got] == ids[:4]
    rest = [await asyncio.wait_for(scanner.__anext__(), 10) for _ in range(2)]
    assert truncated.is_set()
    assert [m.message_id for m in rest] == ids[10:12]
    await scanner.close()
    await reader_opener.close()
    await writer_opener.close()


async def test_appends_wait_when_the_queue_is_full(tmp_path: Path) -> None:
    release = asyncio.Event()

    async def hold(op: str, key: str) -> None:
        if op == "put_if_absent" and key.endswith(".blk"):
            await release.wait()

    settings = object_settings(
        tmp_path / "wal",
        object_flush_interval_ms=0,
        object_flush_max_bytes=100,
        object_max_parallel_uploads=1,
    )
    opener = make_opener(settings, lambda inner: FaultStore(inner, hold))
    wal = await opener.open(rw("ch", 1))
    writer = writer_of(wal)
    tasks = [asyncio.create_task(wal.append(msg(i, 60))) for i in range(40)]
    await asyncio.sleep(0.3)
    assert writer._pending_bytes <= writer._queue_limit == 400
    assert not any(t.done() for t in tasks)
    release.set()
    ids = await asyncio.wait_for(asyncio.gather(*tasks), 20)
    assert sorted(ids) == [WoodpeckerMessageID(0, i) for i in range(40)]
    await opener.close()
