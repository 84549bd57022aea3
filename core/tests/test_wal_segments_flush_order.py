"""A sealed segment's Flush waits for what was assigned to it (Milvus's ack and txn semaphores):
inserts still in flight and open transactions with a body in it come first, in the log and in
timetick order."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from wal_helpers import (  # the WAL tests' shared helpers (core/tests/wal_helpers.py)
    Wrapped,
    backend_log,
    capacity_chain,
    create_collection,
    segment_insert,
    segment_of,
)
from walstream.message import ImmutableMessage, MessageType
from walstream.proto import messages_pb2 as pb
from walstream.tso import TimestampOracle
from walstream.wal import StreamingWAL, TxnHandle, WALSettings, open_wal
from walstream.walimpls import PChannelInfo, WALImpl
from walstream.walimpls.registry import build_opener

WAIT = 5.0
QUIET = 10_000_000

pytestmark = pytest.mark.usefixtures("no_config")  # conftest.py: no user config file


async def open_gated(tso: TimestampOracle, max_rows: int) -> tuple[StreamingWAL, Wrapped]:
    opener = build_opener("memory", {"namespace": f"flush-order-{uuid.uuid4().hex}"})
    impl = Wrapped(await opener.open(PChannelInfo("p1", 1)))
    wal = await open_wal(
        impl,
        tso=tso,
        settings=WALSettings(timetick_interval_ms=QUIET),
        seal_chain=capacity_chain(max_rows, max_bytes=10**9),
        seal_interval_s=3600,
    )
    await wal.append(create_collection())
    return wal, impl


async def flushed(wal: StreamingWAL, segment_id: int) -> None:
    """Wait (bounded by the caller) until ``segment_id`` has no Flush left to append, then
    until every Flush in flight is appended."""
    assert wal.segments is not None
    for _ in range(int(WAIT / 0.01)):
        if segment_id not in wal.segments.unflushed:
            await wal.segments.wait_flushed()
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"segment {segment_id} was never flushed")


async def segment_at(impl: WALImpl, timetick: int) -> int:
    """The segment of the stored Insert at ``timetick``."""
    return next(segment_of(m) for m in await backend_log(impl) if m.timetick == timetick)


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


async def txn_body_in_a_sealed_segment(wal: StreamingWAL, impl: Wrapped) -> tuple[TxnHandle, int]:
    """An open transaction with a 1-row body in a 2-row segment, then the segment sealed."""
    txn = await wal.begin_txn("v1")
    body = await txn.append(segment_insert(rows=1))
    seg = await segment_at(impl, body.timetick)
    # Two more rows do not fit the 2-row segment that holds the body: sealed.
    await wal.append(segment_insert(rows=2))
    return txn, seg


async def test_flush_waits_for_an_open_transaction_with_a_body_in_the_segment(
    tso: TimestampOracle,
) -> None:
    wal, impl = await open_gated(tso, max_rows=2)
    try:
        async with asyncio.timeout(WAIT):
            txn, seg = await txn_body_in_a_sealed_segment(wal, impl)
            assert wal.segments is not None
            await wal.segments.wait_flushed()
            await asyncio.sleep(0.05)
            assert seg in wal.segments.unflushed, "sealed, its Flush held for the txn"
            assert flushes(await backend_log(impl), seg) == []
            commit = await txn.commit()
            await flushed(wal, seg)
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
            txn, seg = await txn_body_in_a_sealed_segment(wal, impl)
            assert wal.segments is not None
            await asyncio.sleep(0.05)
            assert seg in wal.segments.unflushed
            await txn.rollback()
            await flushed(wal, seg)
            assert len(flushes(await backend_log(impl), seg)) == 1
    finally:
        await wal.close()


async def test_flush_waits_for_an_insert_still_in_flight_into_the_segment(
    tso: TimestampOracle,
) -> None:
    wal, impl = await open_gated(tso, max_rows=3)
    try:
        async with asyncio.timeout(WAIT):
            first = await wal.append(segment_insert(rows=1))
            seg = await segment_at(impl, first.timetick)
            # The next insert into the segment is held at the backend...
            gate = impl.gates[MessageType.INSERT] = asyncio.Event()
            seen = impl.seen[MessageType.INSERT] = asyncio.Event()
            held = asyncio.ensure_future(wal.append(segment_insert(rows=1)))
            await seen.wait()
            # ...while a third cannot fit (1 + 1 + 2 > 3): the segment is sealed now.
            gate_opener = asyncio.get_running_loop().call_later(0.2, gate.set)
            await wal.append(segment_insert(rows=2))
            assert wal.segments is not None
            log = await backend_log(impl)
            if not held.done():
                assert flushes(log, seg) == [], "no Flush while an insert into it is in flight"
            held_result = await held
            gate_opener.cancel()
            await flushed(wal, seg)
            log = await backend_log(impl)
        [at] = flushes(log, seg)
        held_at = next(i for i, m in enumerate(log) if m.timetick == held_result.timetick)
        assert segment_of(log[held_at]) == seg
        assert held_at < at, "the Flush comes after the insert that was in flight"
        assert held_result.timetick < log[at].timetick
    finally:
        await wal.close()
