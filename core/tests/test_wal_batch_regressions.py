"""Regressions of the batched append path found in review (fixed in b1c0cfa).

1. An idle WAL whose write-ahead buffer evicted past its newest persisted TimeTick
   persists a tick there, so a catch-up scanner can still switch to the buffer.
2. A redo attempt failing as a whole fails only the redone messages, not those stored
   by the first attempt.
3. A batch's other messages are answered while one of them waits for a new segment.
4. A seal policy raising for some inserts of a batch fails only those and leaks no
   segment reservation.
5. A batched append accepted before ``close()`` is stored, not refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest
from pydantic_settings import BaseSettings
from wal_helpers import (  # the WAL tests' shared helpers (core/tests/wal_helpers.py)
    Wrapped,
    backend_log,
    capacity_chain,
    create_collection,
    insert,
)
from walstream.errors import FencedError, WALClosedError
from walstream.message import MessageID, MessageType, MutableMessage, new_message
from walstream.policy import (
    CapacityPolicy,
    CapacitySettings,
    InsertStats,
    SealPolicyChain,
    SegmentStats,
)
from walstream.policy.spi import SealDecision, SegmentPolicy
from walstream.proto import messages_pb2 as pb
from walstream.tso import TimestampOracle
from walstream.wal import ScanMode, StreamingWAL, WALSettings, open_wal
from walstream.wal.chain import AppendResult
from walstream.wal.options import WALReadOption
from walstream.walimpls import AccessMode, DeliverAll, PChannelInfo, WALImpl
from walstream.walimpls.registry import build_opener

WAIT = 3.0
QUIET = 10_000_000  # a sync interval that never fires during a test: syncs run on demand

pytestmark = pytest.mark.usefixtures("no_config")  # conftest.py: no user config file


async def open_impl(namespace: str, mode: AccessMode = AccessMode.RW) -> WALImpl:
    return await build_opener("memory", {"namespace": namespace}).open(PChannelInfo("p1", 1, mode))


def partition_insert(payload: bytes, parts: Sequence[tuple[int, int]]) -> MutableMessage:
    """An Insert of collection 1 with ``(partition, rows)`` parts (none: no segment needed)."""
    header = pb.InsertMessageHeader(
        collection_id=1,
        partitions=[pb.PartitionSegmentAssignment(partition_id=p, rows=r) for p, r in parts],
    )
    return new_message(MessageType.INSERT, vchannel="v1", header=header, payload=payload)


async def open_segment_wal(
    tso: TimestampOracle,
    impl: WALImpl,
    seal_chain: SealPolicyChain | None = None,
    pids: tuple[int, ...] = (10,),
    **overrides: Any,
) -> StreamingWAL:
    wal = await open_wal(
        impl,
        tso=tso,
        settings=WALSettings(**{"timetick_interval_ms": QUIET, **overrides}),
        seal_chain=seal_chain or capacity_chain(),
        seal_interval_s=3600,
    )
    await wal.append(create_collection(pids=pids))
    return wal


# --- 1. an idle WAL evicted past its newest persisted tick ------------------------------------


async def test_catch_up_scanner_switches_after_eviction_past_the_persisted_tick(
    tso: TimestampOracle, namespace: str
) -> None:
    """The buffer's floor moves above the newest persisted tick while a slow scanner reads
    the backend: the sync must persist a tick at or above that floor, or the scanner stays
    in catch-up forever (the backend's log ends below the buffer) and time never advances."""
    keepalive = 0.05
    impl = await open_impl(namespace)
    wal = await open_wal(
        impl,
        tso=tso,
        settings=WALSettings(
            timetick_interval_ms=10, wab_keepalive_s=keepalive, segment_assignment=False
        ),
        vchannels=["v1"],
    )
    try:
        async with asyncio.timeout(WAIT):
            for i in range(10):
                await wal.append(insert(payload=f"m{i}".encode()))
            await wal.sync(persisted=True)  # a persisted tick covers them; then it is idle
            # A slow consumer: it holds one message and is not read for a few keepalives,
            # while not-persisted ticks push the buffer's floor past the persisted one.
            scanner = await wal.read(
                WALReadOption(name="slow", deliver_policy=DeliverAll(), buffer_messages=1)
            )
            await asyncio.sleep(4 * keepalive)
            target = wal.last_timetick  # time moved on past the tick persisted above
        try:
            async with asyncio.timeout(1.5):
                async for message in scanner:
                    if message.timetick >= target and scanner.mode is ScanMode.TAILING:
                        break
        except TimeoutError:
            pytest.fail(
                f"the catch-up scanner never saw time reach {target} (mode {scanner.mode.value})"
            )
        finally:
            await scanner.close()
    finally:
        await wal.close()


# --- 2. a redo attempt failing as a whole ------------------------------------------------------


class Storing(Wrapped):
    """``Wrapped`` that sets ``stored_all`` once ``expect`` Inserts are in the backend."""

    def __init__(self, inner: WALImpl, expect: int) -> None:
        super().__init__(inner)
        self.expect = expect
        self.stored_all = asyncio.Event()

    async def append(self, message: MutableMessage) -> MessageID:
        message_id = await super().append(message)
        if message.message_type is MessageType.INSERT:
            self.expect -= 1
            if self.expect <= 0:
                self.stored_all.set()
        return message_id


async def test_redo_failing_as_a_whole_spares_the_messages_already_stored(
    tso: TimestampOracle, namespace: str
) -> None:
    """One batch: nine Inserts stored on the first attempt, one redone (it needs a new
    segment). The backend is fenced before the redo, whose attempt then fails as a whole:
    only the redone Insert's caller gets the FencedError."""
    impl = Storing(await open_impl(namespace), expect=9)
    wal = await open_segment_wal(tso, impl)
    gate = impl.gates[MessageType.CREATE_SEGMENT] = asyncio.Event()
    try:
        async with asyncio.timeout(WAIT):
            payloads = [f"ok{i}".encode() for i in range(9)]
            tasks = [asyncio.ensure_future(wal.append(partition_insert(p, []))) for p in payloads]
            tasks.append(
                asyncio.ensure_future(wal.append(partition_insert(b"needs-segment", [(10, 1)])))
            )
            await impl.stored_all.wait()  # the nine are in the log
            await impl.seen.setdefault(MessageType.CREATE_SEGMENT, asyncio.Event()).wait()
            # Meanwhile another append finds the pchannel taken by a newer term.
            impl.fail_next.append(FencedError("a newer term took p1"))
            with pytest.raises(FencedError):
                await wal.append(partition_insert(b"other", []))
            gate.set()  # the CreateSegment lands; the redo attempt meets the fenced backend
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            stored = {m.payload for m in await backend_log(impl.inner)}
        assert set(payloads) <= stored and b"needs-segment" not in stored
        for payload, outcome in zip(payloads, outcomes, strict=False):
            assert isinstance(outcome, AppendResult), (payload, outcome)
        assert isinstance(outcomes[9], FencedError), outcomes[9]
    finally:
        gate.set()
        await asyncio.wait_for(wal.close(), WAIT)


# --- 3. head-of-line blocking by a redo --------------------------------------------------------


async def test_batch_mates_are_answered_while_one_insert_waits_for_its_segment(
    tso: TimestampOracle, namespace: str
) -> None:
    impl = Wrapped(await open_impl(namespace))
    wal = await open_segment_wal(tso, impl)
    gate = impl.gates[MessageType.CREATE_SEGMENT] = asyncio.Event()
    try:
        async with asyncio.timeout(WAIT):
            # Made in one event-loop iteration: one batch.
            slow = asyncio.ensure_future(wal.append(partition_insert(b"needs-segment", [(10, 1)])))
            fast = [
                asyncio.ensure_future(wal.append(partition_insert(f"ok{i}".encode(), [])))
                for i in range(9)
            ]
            try:
                async with asyncio.timeout(1.0):
                    results = await asyncio.gather(*fast)
            except TimeoutError:
                pytest.fail("the batch's stored inserts wait for another insert's CreateSegment")
            # Answered with the CreateSegment still held in the backend.
            assert not gate.is_set()
            assert impl.seen[MessageType.CREATE_SEGMENT].is_set()
            assert not slow.done()
            assert all(isinstance(r, AppendResult) for r in results)
            gate.set()
            assert isinstance(await slow, AppendResult)
    finally:
        gate.set()
        await asyncio.wait_for(wal.close(), WAIT)


# --- 4. a policy error in batch assignment -----------------------------------------------------


class _NoSettings(BaseSettings):
    pass


class Flaky(SegmentPolicy):
    """A third-party policy that breaks on inserts of two rows or more."""

    name: ClassVar[str] = "flaky"
    settings_class: ClassVar[type[BaseSettings]] = _NoSettings

    def check_insert(self, segment: SegmentStats, insert: InsertStats) -> SealDecision | None:
        if insert.rows >= 2:
            raise RuntimeError("flaky policy failed")
        return None


async def test_policy_error_fails_only_its_inserts_and_leaks_no_reservation(
    tso: TimestampOracle, namespace: str
) -> None:
    chain = SealPolicyChain(
        [
            CapacityPolicy(
                CapacitySettings(
                    max_rows=10**9, max_bytes=10**12, seal_proportion=1, seal_proportion_jitter=0
                )
            ),
            Flaky(_NoSettings()),
        ],
        memory_probe=lambda: None,
    )
    wal = await open_segment_wal(tso, Wrapped(await open_impl(namespace)), chain, pids=(10, 11))
    try:
        async with asyncio.timeout(WAIT):
            await wal.append(partition_insert(b"seed10", [(10, 1)]))  # segments exist in both
            await wal.append(partition_insert(b"seed11", [(11, 1)]))
            outcomes = await asyncio.gather(
                wal.append(partition_insert(b"two-partitions", [(10, 1), (11, 1)])),
                wal.append(partition_insert(b"B", [(10, 2)])),
                wal.append(partition_insert(b"C", [(10, 2)])),
                return_exceptions=True,
            )
        assert wal.segments is not None
        manager = wal.segments.manager
        segments = [seg for pid in (10, 11) for seg in manager.partition("v1", 1, pid).growing]
        assert len(segments) == 2
        # Every reservation of the batch was given back: the segments can settle (and flush).
        assert [(seg.pending_inserts, seg.pending_rows) for seg in segments] == [(0, 0)] * 2
        assert all(seg.settled for seg in segments)
        # Only the inserts the policy broke on fail, with its error.
        assert isinstance(outcomes[0], AppendResult), outcomes[0]
        for outcome in outcomes[1:]:
            assert isinstance(outcome, RuntimeError), outcome
            assert str(outcome) == "flaky policy failed"
    finally:
        await asyncio.wait_for(wal.close(), WAIT)


# --- 5. close() and an accepted append ---------------------------------------------------------


@pytest.mark.parametrize("batch_max", [1, 1024])
async def test_append_accepted_before_close_is_stored(
    tso: TimestampOracle, namespace: str, batch_max: int
) -> None:
    impl = await open_impl(namespace)
    wal = await open_wal(
        impl,
        tso=tso,
        settings=WALSettings(
            timetick_interval_ms=QUIET, segment_assignment=False, append_batch_max=batch_max
        ),
        vchannels=["v1"],
    )
    async with asyncio.timeout(WAIT):
        task = asyncio.ensure_future(wal.append(insert(payload=b"accepted")))
        await asyncio.sleep(0)  # append() ran: accepted and in flight, its batch not started
        assert not task.done()
        await wal.close()
        try:
            result = await task
        except WALClosedError as exc:
            pytest.fail(f"an append accepted before close() was refused: {exc}")
        reader = await open_impl(namespace, AccessMode.RO)
        try:
            log = await backend_log(reader)
        finally:
            await reader.close()
    stored = [m for m in log if m.message_type is MessageType.INSERT]
    assert [(m.payload, m.message_id) for m in stored] == [(b"accepted", result.message_id)]
