"""A sealed segment's Flush waits for what was assigned to it (Milvus's ack and txn semaphores):
inserts still in flight and open transactions with a body in it come first, in the log and in
timetick order."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_wal_append_path import Wrapped
from test_wal_integration_segments import (
    backend_log,
    capacity_chain,
    create_collection,
    insert,
    segment_of,
)
from walstream.message import ImmutableMessage, MessageType
from walstream.metastore import SQLiteMetastore
from walstream.proto import messages_pb2 as pb
from walstream.tso import TimestampOracle
from walstream.wal import StreamingWAL, WALSettings, open_wal
from walstream.walimpls import PChannelInfo
from walstream.walimpls.registry import build_opener

WAIT = 5.0
QUIET = 10_000_000


@pytest.fixture(autouse=True)
def _no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WALSTREAM_CONFIG", str(tmp_path / "walstream.toml"))


@pytest.fixture
async def tso(tmp_path: Path) -> AsyncIterator[TimestampOracle]:
    async with SQLiteMetastore(tmp_path / "meta.sqlite3") as ms, TimestampOracle(ms) as oracle:
        yield oracle


async def open_gated(tso: TimestampOracle, max_rows: int) -> tuple[StreamingWAL, Wrapped]:
    opener = build_opener("memory", {"namespace": f"flush-order-{uuid.uuid4().hex}"})
    impl = Wrapped(await opener.open(PChannelInfo("p1", 1)))
    wal = await open_wal(
        impl,
        tso=tso,
        settings=WALSettings(timetick_interval_ms=QUIET),
        seal_chain=capacity_chain(max_rows),
        seal_interval_s=3600,
    )
    await wal.append(create_collection())
    return wal, impl


async def flushed(wal: StreamingWAL, segment_id: int) -> None:
    """Wait (bounded by the caller) until ``segment_id`` has no Flush left to append."""
    assert wal.segments is not None
    for _ in range(int(WAIT / 0.01)):
        if segment_id not in wal.segments.unflushed:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"segment {segment_id} was never flushed")


def flushes(log: list[ImmutableMessage], segment_id: int) -> list[int]:
    """Log positions of the Flush messages of ``segment_id``."""
    out = []
    for i, m in enumerate(log):
        if m.message_type is MessageType.FLUSH:
            header = m.header()
            assert isinstance(header, pb.FlushMessageHeader)
            if header.segment_id == segment_id:
                out.append(i)
    return out


async def test_flush_waits_for_an_open_transaction_with_a_body_in_the_segment(
    tso: TimestampOracle,
) -> None:
    wal, impl = await open_gated(tso, max_rows=2)
    try:
        async with asyncio.timeout(WAIT):
            txn = await wal.begin_txn("v1")
            body = await txn.append(insert(rows=1))
            log = await backend_log(impl)
            seg = next(segment_of(m) for m in log if m.timetick == body.timetick)
            # Two more rows do not fit the 2-row segment that holds the body: sealed.
            await wal.append(insert(rows=2))
            assert wal.segments is not None
            await wal.segments.wait_flushed()
            await asyncio.sleep(0.05)
            assert seg in wal.segments.unflushed, "sealed, its Flush held for the txn"
            assert flushes(await backend_log(impl), seg) == []
            commit = await txn.commit()
            await flushed(wal, seg)
            await wal.segments.wait_flushed()
            log = await backend_log(impl)
        [at] = flushes(log, seg)
        commit_at = next(i for i, m in enumerate(log) if m.timetick == commit.timetick)
        assert commit_at < at, "the Flush comes after the commit in the log"
        assert commit.timetick < log[at].timetick, "and in timetick order"
    finally:
        await wal.close()


async def test_a_rolled_back_or_aborted_transaction_releases_the_flush(
    tso: TimestampOracle,
) -> None:
    wal, impl = await open_gated(tso, max_rows=2)
    try:
        async with asyncio.timeout(WAIT):
            txn = await wal.begin_txn("v1")
            body = await txn.append(insert(rows=1))
            seg = next(
                segment_of(m) for m in await backend_log(impl) if m.timetick == body.timetick
            )
            await wal.append(insert(rows=2))
            assert wal.segments is not None
            await asyncio.sleep(0.05)
            assert seg in wal.segments.unflushed
            await txn.rollback()
            await flushed(wal, seg)
            await wal.segments.wait_flushed()
            assert len(flushes(await backend_log(impl), seg)) == 1
    finally:
        await wal.close()


async def test_flush_waits_for_an_insert_still_in_flight_into_the_segment(
    tso: TimestampOracle,
) -> None:
    wal, impl = await open_gated(tso, max_rows=3)
    try:
        async with asyncio.timeout(WAIT):
            first = await wal.append(insert(rows=1))
            seg = next(
                segment_of(m) for m in await backend_log(impl) if m.timetick == first.timetick
            )
            # The next insert into the segment is held at the backend...
            gate = impl.gates[MessageType.INSERT] = asyncio.Event()
            seen = impl.seen[MessageType.INSERT] = asyncio.Event()
            held = asyncio.ensure_future(wal.append(insert(rows=1)))
            await seen.wait()
            # ...while a third cannot fit (1 + 1 + 2 > 3): the segment is sealed now.
            gate_opener = asyncio.get_running_loop().call_later(0.2, gate.set)
            await wal.append(insert(rows=2))
            assert wal.segments is not None
            log = await backend_log(impl)
            if not held.done():
                assert flushes(log, seg) == [], "no Flush while an insert into it is in flight"
            held_result = await held
            gate_opener.cancel()
            await flushed(wal, seg)
            await wal.segments.wait_flushed()
            log = await backend_log(impl)
        [at] = flushes(log, seg)
        held_at = next(i for i, m in enumerate(log) if m.timetick == held_result.timetick)
        assert segment_of(log[held_at]) == seg
        assert held_at < at, "the Flush comes after the insert that was in flight"
        assert held_result.timetick < log[at].timetick
    finally:
        await wal.close()
