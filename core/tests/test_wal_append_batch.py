"""Batched appends: concurrent plain appends go through the chain together, one outcome each.

Every test checks what a client or a reader can see (results, errors, the backend
log, the write-ahead buffer); batching itself is observed through the backend's
``append_many`` calls or an extra interceptor's ``do_append_batch``.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
from wal_helpers import (  # the WAL tests' shared helpers (core/tests/wal_helpers.py)
    Wrapped,
    backend_log,
    capacity_chain,
    create,
    drop,
    insert,
    segment_insert,
    segment_of,
    wab_contents,
)
from walstream.errors import FencedError, MessageError, MessageTooLargeError, WALError
from walstream.message import ImmutableMessage, MessageID, MessageType, MutableMessage, new_message
from walstream.proto import messages_pb2 as pb
from walstream.tso import TimestampOracle
from walstream.wal import (
    StreamingWAL,
    VChannelDroppedError,
    VChannelNotFoundError,
    WALSettings,
    open_wal,
)
from walstream.wal.chain import AppendFunc, AppendResult, BatchAppendFunc, Interceptor, Outcome
from walstream.wal.options import WALReadOption
from walstream.walimpls import AccessMode, DeliverAll, PChannelInfo, ReadOption, WALImpl
from walstream.walimpls.registry import build_opener

WAIT = 10.0
QUIET = 10_000_000  # a sync interval that never fires during a test: syncs run on demand

pytestmark = pytest.mark.usefixtures("no_config")  # conftest.py: no user config file


class Counting(Wrapped):
    """``Wrapped`` that records the size of every ``append_many`` call (default: gather of append)."""

    def __init__(self, inner: WALImpl) -> None:
        super().__init__(inner)
        self.batches: list[int] = []

    async def append_many(
        self, messages: Sequence[MutableMessage]
    ) -> list[MessageID | BaseException]:
        self.batches.append(len(messages))
        return await super().append_many(messages)


async def open_batch_wal(
    tso: TimestampOracle,
    namespace: str,
    *,
    term: int = 1,
    max_message_bytes: int | None = None,
    max_rows: int = 10**9,
    interceptors_extra: Sequence[Interceptor] = (),
    **overrides: Any,
) -> tuple[StreamingWAL, Counting]:
    settings: dict[str, Any] = {"namespace": namespace}
    if max_message_bytes is not None:
        settings["max_message_bytes"] = max_message_bytes
    opener = build_opener("memory", settings)
    impl = Counting(await opener.open(PChannelInfo("p1", term, AccessMode.RW)))
    wal = await open_wal(
        impl,
        tso=tso,
        settings=WALSettings(**{"timetick_interval_ms": QUIET, **overrides}),
        interceptors_extra=interceptors_extra,
        seal_chain=capacity_chain(max_rows),
        seal_interval_s=3600,
    )
    return wal, impl


def by_payload(log: list[ImmutableMessage], mtype: MessageType) -> Counter[bytes]:
    return Counter(m.payload for m in log if m.message_type is mtype)


def assert_read_order(got: Sequence[ImmutableMessage]) -> None:
    """Timetick order: data strictly increasing, ticks strictly increasing, and a tick
    never below the data before it (it may sit at its newest message's timetick)."""
    ticks = [m.timetick for m in got]
    assert ticks == sorted(ticks), "not in timetick order"
    data = [m.timetick for m in got if m.message_type is not MessageType.TIME_TICK]
    assert len(set(data)) == len(data), "two messages share a timetick"
    tt = [m.timetick for m in got if m.message_type is MessageType.TIME_TICK]
    assert len(set(tt)) == len(tt), "two TimeTicks share a timetick"


def assert_stored_as_acknowledged(
    log: list[ImmutableMessage], payloads: Sequence[bytes], results: Sequence[AppendResult]
) -> None:
    """The Insert of each payload is stored with the id and timetick its append returned."""
    stored = {m.payload: m for m in log if m.message_type is MessageType.INSERT}
    for payload, result in zip(payloads, results, strict=True):
        assert stored[payload].message_id == result.message_id
        assert stored[payload].timetick == result.timetick


def assert_last_confirmed_guarantee(
    log: list[ImmutableMessage], results: Sequence[AppendResult]
) -> None:
    """A reader starting at a result's last-confirmed id sees every message with a larger timetick."""
    position = {m.message_id: i for i, m in enumerate(log)}
    for result in results:
        start = position[result.last_confirmed_message_id]
        missed = [m for m in log[:start] if m.timetick > result.timetick]
        assert not missed, (result, missed[:3])


# --- 1. many concurrent appends -------------------------------------------------------------


@pytest.mark.parametrize("batch_max", [1024, 64])
async def test_concurrent_appends_go_through_batches_with_distinct_timeticks(
    tso: TimestampOracle, namespace: str, batch_max: int
) -> None:
    wal, impl = await open_batch_wal(tso, namespace, append_batch_max=batch_max)
    n = 500
    try:
        async with asyncio.timeout(WAIT):
            await wal.append(create())
            impl.batches.clear()
            impl.jitter = 0.002  # backend acks come back in any order
            payloads = [f"m{i}".encode() for i in range(n)]
            results = await asyncio.gather(*(wal.append(insert(payload=p)) for p in payloads))
            # Batched: few append_many calls, none larger than the setting, all messages in them.
            assert sum(impl.batches) == n
            assert max(impl.batches) > 1
            assert max(impl.batches) <= batch_max
            assert len(impl.batches) <= 2 * (n // batch_max + 1)
            ticks = [r.timetick for r in results]
            assert len(set(ticks)) == n
            assert len({r.message_id for r in results}) == n
            await wal.sync(persisted=True)
            log = await backend_log(impl)
        assert by_payload(log, MessageType.INSERT) == Counter(payloads)  # each exactly once
        assert_stored_as_acknowledged(log, payloads, results)
        held = wab_contents(wal)
        assert_read_order(held)
        assert Counter(m.payload for m in held if m.message_type is MessageType.INSERT) == Counter(
            payloads
        )
        assert_last_confirmed_guarantee(log, results)
    finally:
        await wal.close()


@pytest.mark.parametrize("batch_max", [1024, 1])
async def test_one_message_object_appended_twice_at_once_is_refused(
    tso: TimestampOracle, namespace: str, batch_max: int
) -> None:
    """The chain stamps the object itself: a second concurrent append of it is a clear error,
    the first one is stored once; appending it again after the first returned is allowed."""
    wal, impl = await open_batch_wal(tso, namespace, append_batch_max=batch_max)
    try:
        async with asyncio.timeout(WAIT):
            await wal.append(create())
            message = insert(payload=b"twice")
            first, second = await asyncio.gather(
                wal.append(message), wal.append(message), return_exceptions=True
            )
            assert isinstance(first, AppendResult)
            assert isinstance(second, MessageError)
            assert "already being appended" in str(second)
            again = await wal.append(message)
            assert again.timetick > first.timetick
            log = await backend_log(impl)
        stored = [m for m in log if m.payload == b"twice"]
        assert [(m.message_id, m.timetick) for m in stored] == [
            (first.message_id, first.timetick),
            (again.message_id, again.timetick),
        ]
    finally:
        await wal.close()


async def test_readers_see_a_batch_in_timetick_order(tso: TimestampOracle, namespace: str) -> None:
    wal, impl = await open_batch_wal(tso, namespace)
    try:
        async with asyncio.timeout(WAIT):
            await wal.append(create())
            impl.jitter = 0.002
            tailing = asyncio.ensure_future(read_through_wal(wal, set(), count=200))
            await asyncio.sleep(0.01)  # the tail reader is open before the appends
            results = await asyncio.gather(
                *(wal.append(insert(payload=f"r{i}".encode())) for i in range(200))
            )
            await wal.sync(persisted=True)
            seen = await tailing
            caught_up = await read_through_wal(wal, {r.message_id for r in results})
        for got in (seen, caught_up):
            assert_read_order(got)
            inserts = [m for m in got if m.message_type is MessageType.INSERT]
            assert [m.message_id for m in inserts] == [
                r.message_id for r in sorted(results, key=lambda r: r.timetick)
            ]
    finally:
        await wal.close()


# --- 2. mixed outcomes -------------------------------------------------------------------------


@pytest.mark.parametrize("batch_max", [1024, 1])
async def test_one_batch_with_alive_unknown_and_dropped_vchannels(
    tso: TimestampOracle, namespace: str, batch_max: int
) -> None:
    wal, impl = await open_batch_wal(tso, namespace, append_batch_max=batch_max)
    try:
        async with asyncio.timeout(WAIT):
            await wal.append(create("v1", 1))
            await wal.append(create("v2", 2))
            await wal.append(drop("v2"))
            impl.batches.clear()
            targets = [("v1", "nope", "v2")[i % 3] for i in range(60)]
            outcomes = await asyncio.gather(
                *(
                    wal.append(insert(v, payload=f"{v}-{i}".encode()))
                    for i, v in enumerate(targets)
                ),
                return_exceptions=True,
            )
            log = await backend_log(impl)
        for vchannel, outcome in zip(targets, outcomes, strict=True):
            if vchannel == "v1":
                assert isinstance(outcome, AppendResult), outcome
            elif vchannel == "nope":
                assert isinstance(outcome, VChannelNotFoundError), outcome
                assert "'nope'" in str(outcome)
            else:
                assert isinstance(outcome, VChannelDroppedError), outcome
                assert "'v2'" in str(outcome)
        good = [f"v1-{i}".encode() for i, v in enumerate(targets) if v == "v1"]
        assert by_payload(log, MessageType.INSERT) == Counter(good)
        if batch_max > 1:
            assert sum(impl.batches) == len(good) and max(impl.batches) > 1
        else:
            assert impl.batches == []  # every append went through the chain on its own
        ticks = [o.timetick for o in outcomes if isinstance(o, AppendResult)]
        assert len(set(ticks)) == len(good)
    finally:
        await wal.close()


async def test_oversize_message_in_a_batch_fails_alone_memory(
    tso: TimestampOracle, namespace: str
) -> None:
    limit = 4096
    wal, impl = await open_batch_wal(tso, namespace, max_message_bytes=limit)
    try:
        await check_oversize_fails_alone(wal, impl, limit)
        assert max(impl.batches) > 1
    finally:
        await wal.close()


async def test_oversize_message_in_a_batch_fails_alone_woodpecker(
    tso: TimestampOracle, tmp_path: Path
) -> None:
    pytest.importorskip("walstream_woodpecker")
    limit = 4096
    async with build_opener(
        "woodpecker", {"root": str(tmp_path / "wp"), "max_message_bytes": limit}
    ) as opener:
        impl = await opener.open(PChannelInfo("p1", 1, AccessMode.RW))
        assert type(impl).append_many is not WALImpl.append_many  # its own batched append
        wal = await open_wal(
            impl,
            tso=tso,
            settings=WALSettings(timetick_interval_ms=QUIET),
            seal_chain=capacity_chain(),
            seal_interval_s=3600,
        )
        try:
            await check_oversize_fails_alone(wal, impl, limit)
        finally:
            await wal.close()


async def check_oversize_fails_alone(wal: StreamingWAL, impl: WALImpl, limit: int) -> None:
    async with asyncio.timeout(WAIT):
        await wal.append(create())
        payloads = [f"ok-{i}".encode() for i in range(40)]
        payloads[20] = b"x" * (limit + 1)
        outcomes = await asyncio.gather(
            *(wal.append(insert(payload=p)) for p in payloads), return_exceptions=True
        )
        for i, outcome in enumerate(outcomes):
            if i == 20:
                assert isinstance(outcome, MessageTooLargeError), outcome
            else:
                assert isinstance(outcome, AppendResult), (i, outcome)
        last = max(o.message_id for o in outcomes if isinstance(o, AppendResult))
        after = await wal.append(insert(payload=b"after"))
        assert after.message_id > last
        log = await read_log_through(impl, after.message_id)
    expected = Counter(p for i, p in enumerate(payloads) if i != 20)
    expected[b"after"] = 1
    assert by_payload(log, MessageType.INSERT) == expected


async def read_through_wal(
    wal: StreamingWAL, ids: set[MessageID], count: int = 0
) -> list[ImmutableMessage]:
    """What a WAL scanner from the start delivers until it delivered every id of ``ids``
    and ``count`` Inserts (bounded by the caller's timeout)."""
    out: list[ImmutableMessage] = []
    missing = set(ids)
    inserts = 0
    scanner = await wal.read(WALReadOption(name="check"))
    try:
        async for message in scanner:
            out.append(message)
            missing.discard(message.message_id)
            inserts += message.message_type is MessageType.INSERT
            if not missing and inserts >= count:
                return out
    finally:
        await scanner.close()
    raise AssertionError(f"the scanner ended with {len(missing)} messages undelivered")


async def read_log_through(impl: WALImpl, last: MessageID) -> list[ImmutableMessage]:
    """The backend log up to and including ``last`` (bounded by the caller's timeout)."""
    out: list[ImmutableMessage] = []
    scanner = await impl.read(ReadOption(name="through", deliver_policy=DeliverAll()))
    try:
        async for message in scanner:
            out.append(message)
            if message.message_id >= last:
                return out
    finally:
        await scanner.close()
    raise AssertionError(f"the log ended before {last!r}")


# --- 3. backend failures ----------------------------------------------------------------------


async def test_transient_backend_failures_in_a_batch_are_retried(
    tso: TimestampOracle, namespace: str
) -> None:
    wal, impl = await open_batch_wal(tso, namespace)
    try:
        async with asyncio.timeout(WAIT):
            await wal.append(create())
            impl.batches.clear()
            impl.fail_next = [WALError("flaky 1"), OSError("flaky 2"), WALError("flaky 3")]
            calls = impl.calls
            payloads = [f"t{i}".encode() for i in range(50)]
            results = await asyncio.gather(*(wal.append(insert(payload=p)) for p in payloads))
            assert impl.calls == calls + 50 + 3  # three failed attempts, each retried once
            assert max(impl.batches) > 1
            await wal.sync(persisted=True)
            log = await backend_log(impl)
        assert by_payload(log, MessageType.INSERT) == Counter(payloads)  # no loss, no duplicate
        stored = {m.payload: m.message_id for m in log}
        assert [stored[p] for p in payloads] == [r.message_id for r in results]
        assert len({r.timetick for r in results}) == 50
        assert_last_confirmed_guarantee(log, results)
        assert_read_order(wab_contents(wal))
    finally:
        await wal.close()


async def test_fenced_error_in_a_batch_is_final(tso: TimestampOracle, namespace: str) -> None:
    wal, impl = await open_batch_wal(tso, namespace)
    try:
        async with asyncio.timeout(WAIT):
            await wal.append(create())
            impl.batches.clear()
            impl.fail_next = [FencedError("a newer term took p1")]
            outcomes = await asyncio.gather(
                *(wal.append(insert(payload=f"f{i}".encode())) for i in range(20)),
                return_exceptions=True,
            )
            assert impl.batches and max(impl.batches) > 1
            fenced = [o for o in outcomes if isinstance(o, FencedError)]
            assert len(fenced) >= 1
            assert all(isinstance(o, AppendResult | FencedError) for o in outcomes), outcomes
            calls = impl.calls
            for _ in range(3):
                with pytest.raises(FencedError):
                    await wal.append(insert(payload=b"late"))
            late = await asyncio.gather(
                *(wal.append(insert(payload=b"late")) for _ in range(10)), return_exceptions=True
            )
            assert all(isinstance(o, FencedError) for o in late), late
            assert impl.calls == calls  # refused without touching the backend
            with pytest.raises(FencedError):
                await wal.sync(persisted=True)
            log = await backend_log(impl)
        stored = by_payload(log, MessageType.INSERT)
        assert b"late" not in stored
        acked = Counter(
            f"f{i}".encode() for i, o in enumerate(outcomes) if not isinstance(o, BaseException)
        )
        assert stored == acked  # the fenced appends are not in the log
    finally:
        await asyncio.wait_for(wal.close(), WAIT)


async def test_a_newer_term_fences_a_whole_batch(tso: TimestampOracle, namespace: str) -> None:
    old, impl = await open_batch_wal(tso, namespace, term=1)
    try:
        async with asyncio.timeout(WAIT):
            await old.append(create())
            new, _ = await open_batch_wal(tso, namespace, term=2)
            try:
                impl.batches.clear()
                outcomes = await asyncio.gather(
                    *(old.append(insert(payload=f"old{i}".encode())) for i in range(30)),
                    return_exceptions=True,
                )
                assert all(isinstance(o, FencedError) for o in outcomes), outcomes
                assert impl.batches == [30]
                with pytest.raises(FencedError):
                    await old.append(insert(payload=b"old-late"))
                await new.append(insert(payload=b"new"))
                log = await backend_log(impl)
            finally:
                await new.close()
        assert by_payload(log, MessageType.INSERT) == Counter([b"new"])
    finally:
        await asyncio.wait_for(old.close(), WAIT)


# --- 4. segment assignment -----------------------------------------------------------------------


@pytest.mark.parametrize("batch_max", [1024, 1])
async def test_batched_inserts_fill_segments_without_overfilling(
    tso: TimestampOracle, namespace: str, batch_max: int
) -> None:
    limit = 5
    # Each redo round fills one new 5-row segment per partition: 150 inserts racing for one
    # partition need ~30 rounds, batched or not; allow them.
    wal, impl = await open_batch_wal(
        tso, namespace, max_rows=limit, append_batch_max=batch_max, redo_max_attempts=200
    )
    rng = random.Random(3)
    try:
        async with asyncio.timeout(WAIT):
            await wal.append(
                new_message(
                    MessageType.CREATE_COLLECTION,
                    vchannel="v1",
                    header=pb.CreateCollectionMessageHeader(
                        collection_id=1, partition_ids=[10, 11]
                    ),
                )
            )
            impl.batches.clear()
            impl.jitter = 0.001
            pids = [rng.choice((10, 11)) for _ in range(300)]
            work = []
            for wave in range(6):  # several waves: batches meet segments that are partly full
                work += [
                    asyncio.ensure_future(
                        wal.append(segment_insert(pid=pid, payload=f"s{wave}-{i}".encode()))
                    )
                    for i, pid in enumerate(pids[wave * 50 : (wave + 1) * 50])
                ]
                await asyncio.sleep(0.002)
            results = await asyncio.gather(*work)
            # Then one at a time: only committed rows fill the segments now.
            for i in range(2 * limit + 2):
                results.append(
                    await wal.append(segment_insert(pid=10, payload=f"seq-{i}".encode()))
                )
            assert wal.segments is not None
            await wal.segments.wait_flushed()
            assert wal.segments.unflushed == []
            if batch_max > 1:
                assert max(impl.batches) > 1
            await wal.sync(persisted=True)
            log = await backend_log(impl)
            delivered = await read_through_wal(wal, {m.message_id for m in log})
        total = 300 + 2 * limit + 2
        assert len({r.timetick for r in results}) == total
        rows = check_segment_log(log, limit)
        assert sum(rows.values()) == total
        # Readers get timetick order: what a scanner delivers passes the same checks.
        check_segment_log(delivered, limit)
        # Every sealed segment is full and was flushed; the growing ones (one per partition) not.
        created = {h.segment_id for h in headers(log, pb.CreateSegmentMessageHeader)}
        flushed = {h.segment_id for h in headers(log, pb.FlushMessageHeader)}
        growing = created - flushed
        assert len(growing) <= 2
        assert {s.segment_id for s in wal.segments.manager.growing()} == growing
        for seg in flushed:
            assert rows[seg] == limit, (seg, rows[seg])
    finally:
        await wal.close()


def headers(log: list[ImmutableMessage], cls: type[Any]) -> list[Any]:
    return [
        h
        for m in log
        if m.message_type is not MessageType.TIME_TICK
        for h in [m.header()]
        if isinstance(h, cls)
    ]


def check_segment_log(log: list[ImmutableMessage], limit: int) -> Counter[int]:
    """In timetick order: each Insert goes to a created, unflushed segment of its partition."""
    ordered = sorted(log, key=lambda m: m.timetick)
    created: dict[int, int] = {}  # segment -> partition
    flushed: set[int] = set()
    rows: Counter[int] = Counter()
    for m in ordered:
        if m.message_type is MessageType.CREATE_SEGMENT:
            header = m.header()
            assert isinstance(header, pb.CreateSegmentMessageHeader)
            assert header.segment_id not in created
            created[header.segment_id] = header.partition_id
        elif m.message_type is MessageType.FLUSH:
            header = m.header()
            assert isinstance(header, pb.FlushMessageHeader)
            assert header.segment_id in created and header.segment_id not in flushed
            flushed.add(header.segment_id)
        elif m.message_type is MessageType.INSERT:
            header = m.header()
            assert isinstance(header, pb.InsertMessageHeader)
            seg = segment_of(m)
            assert seg in created, f"insert into segment {seg} before its CreateSegment"
            assert seg not in flushed, f"insert into segment {seg} after its Flush"
            assert created[seg] == header.partitions[0].partition_id
            rows[seg] += 1
            assert rows[seg] <= limit, f"segment {seg} overfilled"
    return rows


# --- 5. third-party interceptors ----------------------------------------------------------------


class BatchSpy(Interceptor):
    """Records the batches that reach it (a third-party step overriding ``do_append_batch``)."""

    name: ClassVar[str] = "batch_spy"

    def __init__(self) -> None:
        self.sizes: list[int] = []

    async def do_append(self, message: MutableMessage, next_: AppendFunc) -> AppendResult:
        return await next_(message)

    async def do_append_batch(
        self, messages: list[MutableMessage], next_: BatchAppendFunc
    ) -> list[Outcome]:
        if any(m.message_type is MessageType.INSERT for m in messages):
            self.sizes.append(len(messages))
        return await next_(messages)


class Tagging(Interceptor):
    """A third-party step implementing only ``do_append``: tags each Insert, refuses ``bad``."""

    name: ClassVar[str] = "tagging"

    def __init__(self) -> None:
        self.seen: Counter[bytes] = Counter()

    async def do_append(self, message: MutableMessage, next_: AppendFunc) -> AppendResult:
        if message.message_type is MessageType.INSERT:
            self.seen[message.payload] += 1
            if message.payload == b"bad":
                raise ValueError("tagging refuses 'bad'")
            # The timetick step ran first: the tag is the message's own timetick.
            message._set("tag", f"tt-{message.timetick}")
        return await next_(message)


async def test_third_party_interceptor_sees_every_message_of_a_batch_once(
    tso: TimestampOracle, namespace: str
) -> None:
    spy, tagging = BatchSpy(), Tagging()
    wal, impl = await open_batch_wal(tso, namespace, interceptors_extra=[spy, tagging])
    try:
        async with asyncio.timeout(WAIT):
            await wal.append(create())
            payloads = [f"p{i}".encode() for i in range(100)]
            payloads[50] = b"bad"
            outcomes = await asyncio.gather(
                *(wal.append(insert(payload=p)) for p in payloads), return_exceptions=True
            )
            await wal.sync(persisted=True)
            log = await backend_log(impl)
        assert max(spy.sizes) > 1 and sum(spy.sizes) == 100  # the extra steps got batches
        assert tagging.seen == Counter(payloads)  # each message once
        assert isinstance(outcomes[50], ValueError), outcomes[50]
        good = [p for p in payloads if p != b"bad"]
        assert by_payload(log, MessageType.INSERT) == Counter(good)
        for m in log:
            if m.message_type is MessageType.INSERT:
                assert m.properties.get("tag") == f"tt-{m.timetick}", m
        results = [o for o in outcomes if isinstance(o, AppendResult)]
        assert len(results) == 99 and len({r.timetick for r in results}) == 99
    finally:
        await wal.close()


# --- 6. cancellation --------------------------------------------------------------------------


async def test_cancelled_appends_do_not_break_their_batch(
    tso: TimestampOracle, namespace: str
) -> None:
    wal, impl = await open_batch_wal(tso, namespace)
    try:
        async with asyncio.timeout(WAIT):
            await wal.append(create())
            gate = impl.gates[MessageType.INSERT] = asyncio.Event()
            tasks = [
                asyncio.ensure_future(wal.append(insert(payload=f"c{i}".encode())))
                for i in range(40)
            ]
            await asyncio.sleep(0)  # queued, the batch not started yet
            queued_cancelled = tasks[:3]
            for task in queued_cancelled:
                task.cancel()
            await impl.seen.setdefault(MessageType.INSERT, asyncio.Event()).wait()
            in_flight_cancelled = tasks[10:15]  # now inside the backend, behind the gate
            for task in in_flight_cancelled:
                task.cancel()
            gate.set()
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            cancelled = set(queued_cancelled) | set(in_flight_cancelled)
            for task, outcome in zip(tasks, outcomes, strict=True):
                if task in cancelled:
                    assert isinstance(outcome, asyncio.CancelledError), outcome
                else:
                    assert isinstance(outcome, AppendResult), outcome
            # The WAL keeps working: appends, batches, syncs.
            after = await asyncio.gather(
                *(wal.append(insert(payload=f"after{i}".encode())) for i in range(20))
            )
            await wal.sync(persisted=True)
            log = await backend_log(impl)
        stored = by_payload(log, MessageType.INSERT)
        for i, (task, outcome) in enumerate(zip(tasks, outcomes, strict=True)):
            # Acknowledged ones once; a cancelled one at most once (it may have been stored).
            expected = {1} if task not in cancelled else {0, 1}
            assert stored[f"c{i}".encode()] in expected, (i, outcome)
        assert all(stored[f"after{i}".encode()] == 1 for i in range(20))
        assert min(r.timetick for r in after) > max(
            o.timetick for o in outcomes if isinstance(o, AppendResult)
        )
        assert_read_order(wab_contents(wal))
        await asyncio.wait_for(wal.close(), WAIT)
    finally:
        await asyncio.wait_for(wal.close(), WAIT)


class Tracking(Counting):
    """``Counting`` that knows how many backend appends are running right now."""

    def __init__(self, inner: WALImpl) -> None:
        super().__init__(inner)
        self.running = 0

    async def append(self, message: MutableMessage) -> MessageID:
        self.running += 1
        try:
            return await super().append(message)
        finally:
            self.running -= 1


@pytest.mark.parametrize("batch_max", [1, 1024])
async def test_close_waits_for_appends_whose_callers_were_cancelled(
    tso: TimestampOracle, namespace: str, batch_max: int
) -> None:
    """As for one message (see the timetick step), a cancelled caller does not end the append:
    close() waits for it (at most close_timeout_s) before the final sync and backend close."""
    impl = Tracking(
        await build_opener("memory", {"namespace": namespace}).open(PChannelInfo("p1", 1))
    )
    wal = await open_wal(
        impl,
        tso=tso,
        settings=WALSettings(
            timetick_interval_ms=QUIET, append_batch_max=batch_max, close_timeout_s=5
        ),
        seal_chain=capacity_chain(),
        seal_interval_s=3600,
    )
    try:
        async with asyncio.timeout(WAIT):
            await wal.append(create())
            gate = impl.gates[MessageType.INSERT] = asyncio.Event()
            tasks = [
                asyncio.ensure_future(wal.append(insert(payload=f"x{i}".encode())))
                for i in range(10)
            ]
            await impl.seen.setdefault(MessageType.INSERT, asyncio.Event()).wait()
            for task in tasks:
                task.cancel()
            asyncio.get_running_loop().call_later(0.3, gate.set)  # the backend is just slow
            await asyncio.sleep(0)
            await wal.close()
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            assert all(isinstance(o, asyncio.CancelledError) for o in outcomes), outcomes
            running_after_close = impl.running
            await asyncio.sleep(0.4)
            reader = await build_opener("memory", {"namespace": namespace}).open(
                PChannelInfo("p1", 0, AccessMode.RO)
            )
            log = await backend_log(reader)
            await reader.close()
        assert running_after_close == 0, f"{running_after_close} backend appends outlived close()"
        # They were in the backend: stored, each once, before the final persisted TimeTick.
        assert by_payload(log, MessageType.INSERT) == Counter(f"x{i}".encode() for i in range(10))
        assert log[-1].message_type is MessageType.TIME_TICK
    finally:
        await asyncio.wait_for(wal.close(), WAIT)


# --- 7. append_batch_max = 1 --------------------------------------------------------------------


async def test_batch_max_one_appends_each_message_on_its_own(
    tso: TimestampOracle, namespace: str
) -> None:
    wal, impl = await open_batch_wal(tso, namespace, append_batch_max=1)
    try:
        async with asyncio.timeout(WAIT):
            await wal.append(create())
            impl.jitter = 0.002
            payloads = [f"o{i}".encode() for i in range(100)]
            results = await asyncio.gather(*(wal.append(insert(payload=p)) for p in payloads))
            await wal.sync(persisted=True)
            log = await backend_log(impl)
        assert impl.batches == []  # no append_many: the per-message chain
        assert len({r.timetick for r in results}) == 100
        assert by_payload(log, MessageType.INSERT) == Counter(payloads)
        assert_stored_as_acknowledged(log, payloads, results)
        assert_last_confirmed_guarantee(log, results)
        assert_read_order(wab_contents(wal))
    finally:
        await wal.close()


# --- 8. exclusive messages between batches -------------------------------------------------------


@pytest.mark.parametrize("batch_max", [1024, 1])
async def test_drop_between_batched_inserts(
    tso: TimestampOracle, namespace: str, batch_max: int
) -> None:
    wal, impl = await open_batch_wal(tso, namespace, append_batch_max=batch_max)
    try:
        async with asyncio.timeout(WAIT):
            await wal.append(create())
            impl.jitter = 0.002
            inserts: list[tuple[bytes, asyncio.Future[AppendResult]]] = []
            dropping: asyncio.Future[AppendResult] | None = None
            for wave in range(10):
                for i in range(20):
                    payload = f"d{wave}-{i}".encode()
                    inserts.append(
                        (payload, asyncio.ensure_future(wal.append(insert(payload=payload))))
                    )
                if wave == 4:
                    dropping = asyncio.ensure_future(wal.append(drop()))
                await asyncio.sleep(0.001)
            assert dropping is not None
            dropped = await dropping
            late = await asyncio.gather(
                *(wal.append(insert(payload=b"late")) for _ in range(10)), return_exceptions=True
            )
            outcomes = await asyncio.gather(*(f for _, f in inserts), return_exceptions=True)
            log = await backend_log(impl)
        assert all(isinstance(o, VChannelDroppedError) for o in late), late
        accepted = [
            (p, o)
            for (p, _), o in zip(inserts, outcomes, strict=True)
            if isinstance(o, AppendResult)
        ]
        refused = [o for o in outcomes if not isinstance(o, AppendResult)]
        assert accepted and all(isinstance(o, VChannelDroppedError) for o in refused), refused
        # Waves issued a sleep before the drop are in; everything issued after it is refused.
        accepted_payloads = {p for p, _ in accepted}
        assert {f"d0-{i}".encode() for i in range(20)} <= accepted_payloads
        assert not {p for p in accepted_payloads if int(p[1:].split(b"-")[0]) >= 5}
        position = {m.message_id: i for i, m in enumerate(log)}
        drop_at = position[dropped.message_id]
        for payload, result in accepted:
            assert result.timetick < dropped.timetick, payload
            assert position[result.message_id] < drop_at, payload
        assert not [m for m in log[drop_at:] if m.message_type is MessageType.INSERT]
        assert by_payload(log, MessageType.INSERT) == Counter(p for p, _ in accepted)
    finally:
        await wal.close()
