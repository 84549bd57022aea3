"""The RW streaming WAL's append path: timeticks, time-tick sync, locks, vchannels, retries."""

from __future__ import annotations

import asyncio
import random

import pytest
from wal_helpers import (  # the WAL tests' shared helpers (core/tests/wal_helpers.py)
    Wrapped,
    backend_log,
    create,
    drop,
    insert,
    wab_contents,
)
from walstream.errors import FencedError, ReadOnlyWALError, WALClosedError, WALError
from walstream.message import MessageType, new_message
from walstream.proto import messages_pb2 as pb
from walstream.tso import LOGICAL_BITS, TimestampOracle
from walstream.wal import (
    SelfControlledMessageError,
    StreamingWAL,
    TransactionAbortedError,
    VChannelDroppedError,
    VChannelExistsError,
    VChannelNotFoundError,
    WALSettings,
    load_wal_settings,
    open_wal,
)
from walstream.walimpls import (
    AccessMode,
    PChannelInfo,
)
from walstream.walimpls.registry import build_opener

WAIT = 5.0
QUIET = 10_000_000  # a sync interval that never fires during a test: syncs run on demand


async def open_impl(namespace: str, term: int = 1, mode: AccessMode = AccessMode.RW) -> Wrapped:
    opener = build_opener("memory", {"namespace": namespace})
    return Wrapped(await opener.open(PChannelInfo("p1", term, mode)))


async def open_rw(
    tso: TimestampOracle, namespace: str, term: int = 1, **overrides: object
) -> tuple[StreamingWAL, Wrapped]:
    impl = await open_impl(namespace, term)
    settings = WALSettings(**{"timetick_interval_ms": QUIET, **overrides})  # type: ignore[arg-type]
    return await open_wal(impl, tso=tso, settings=settings), impl


async def test_concurrent_appends_strictly_increasing_and_wab_in_timetick_order(
    tso: TimestampOracle, namespace: str
) -> None:
    wal, impl = await open_rw(tso, namespace)
    try:
        await wal.append(create())
        impl.jitter = 0.01  # acks arrive in any order
        results = await asyncio.wait_for(
            asyncio.gather(*(wal.append(insert(payload=bytes([i]))) for i in range(40))), WAIT
        )
        ticks = [r.timetick for r in results]
        assert len(set(ticks)) == 40
        # Allocation is serialised, and ids follow the completion order, not the timetick one.
        ids = [r.message_id for r in sorted(results, key=lambda r: r.timetick)]
        await asyncio.wait_for(wal.sync(), WAIT)
        held = wab_contents(wal)
        tts = [m.timetick for m in held]
        assert tts == sorted(tts) and len(set(tts)) == len(tts)
        inserts = [m for m in held if m.message_type is MessageType.INSERT]
        assert [m.message_id for m in inserts] == ids
        assert held[-1].message_type is MessageType.TIME_TICK
        assert held[-1].is_persisted  # real messages were written: the tick is persisted
        assert wal.last_timetick == held[-1].timetick > max(ticks)
    finally:
        await wal.close()


async def test_idle_wal_persists_nothing_new(tso: TimestampOracle, namespace: str) -> None:
    wal, impl = await open_rw(tso, namespace)
    try:
        await wal.append(create())
        await wal.sync()
        stored = len(await backend_log(impl))
        before = wal.last_timetick
        for _ in range(3):
            await asyncio.wait_for(wal.sync(), WAIT)
        assert wal.last_timetick > before  # readers advance in memory...
        assert len(await backend_log(impl)) == stored  # ...but nothing is written
        assert wal.wab is not None and not wal.wab.last_timetick_message.is_persisted
        await asyncio.wait_for(wal.sync(persisted=True), WAIT)
        log = await backend_log(impl)
        assert len(log) == stored + 1 and log[-1].message_type is MessageType.TIME_TICK
    finally:
        await wal.close()


async def test_periodic_sync_runs(tso: TimestampOracle, namespace: str) -> None:
    wal, _ = await open_rw(tso, namespace, timetick_interval_ms=10)
    try:
        assert wal.wab is not None
        start = wal.last_timetick
        cursor = wal.wab.read_from_exclusive_timetick(start)
        tick = await asyncio.wait_for(cursor.next(), WAIT)  # no sync() asked: the timer did it
        assert tick.message_type is MessageType.TIME_TICK and tick.timetick > start
    finally:
        await wal.close()


async def test_last_confirmed_guarantee_on_the_backend_log(
    tso: TimestampOracle, namespace: str
) -> None:
    wal, impl = await open_rw(tso, namespace, timetick_interval_ms=5)
    try:
        await wal.append(create("v1"))
        await wal.append(create("v2", 2))
        impl.jitter = 0.005

        async def txn_worker(v: str) -> None:
            txn = await wal.begin_txn(v)
            await asyncio.gather(txn.append(insert(v)), txn.append(insert(v)))
            await (txn.commit() if random.random() < 0.5 else txn.rollback())

        work = [wal.append(insert(random.choice(["v1", "v2"]))) for _ in range(60)]
        work += [txn_worker(random.choice(["v1", "v2"])) for _ in range(6)]
        await asyncio.wait_for(asyncio.gather(*work), WAIT)
        await wal.sync(persisted=True)
        log = await backend_log(impl)
        position = {m.message_id: i for i, m in enumerate(log)}
        for m in log:
            lc = m.last_confirmed_message_id
            assert lc is not None
            start = position[lc]
            later = [i for i, o in enumerate(log) if o.timetick > m.timetick]
            assert all(i >= start for i in later), (m, lc)
    finally:
        await wal.close()


async def test_exclusive_message_serialises_with_dml_and_drop_follows_inserts(
    tso: TimestampOracle, namespace: str
) -> None:
    wal, impl = await open_rw(tso, namespace)
    try:
        await wal.append(create())
        gate = impl.gates[MessageType.INSERT] = asyncio.Event()
        ins = asyncio.create_task(wal.append(insert()))
        await asyncio.wait_for(
            impl.seen.setdefault(MessageType.INSERT, asyncio.Event()).wait(), WAIT
        )
        dropping = asyncio.create_task(wal.append(drop()))
        await asyncio.sleep(0.05)
        assert MessageType.DROP_COLLECTION not in impl.entered  # waits for the write lock
        late = asyncio.create_task(wal.append(insert()))  # queued behind the drop
        gate.set()
        ins_result, drop_result = await asyncio.wait_for(asyncio.gather(ins, dropping), WAIT)
        assert ins_result.timetick < drop_result.timetick
        assert ins_result.message_id < drop_result.message_id
        with pytest.raises(VChannelDroppedError, match="'v1'"):
            await asyncio.wait_for(late, WAIT)
    finally:
        await wal.close()


async def test_exclusive_message_aborts_open_txns_on_its_vchannel(
    tso: TimestampOracle, namespace: str
) -> None:
    wal, _ = await open_rw(tso, namespace)
    try:
        await wal.append(create("v1"))
        await wal.append(create("v2", 2))
        on_v1 = await wal.begin_txn("v1")
        on_v2 = await wal.begin_txn("v2")
        await on_v1.append(insert("v1"))
        await wal.append(
            new_message(
                MessageType.CREATE_PARTITION,
                vchannel="v1",
                header=pb.CreatePartitionMessageHeader(collection_id=1, partition_id=7),
            )
        )
        with pytest.raises(TransactionAbortedError, match="exclusive"):
            await on_v1.commit()
        await on_v2.append(insert("v2"))
        await on_v2.commit()  # another vchannel: untouched
    finally:
        await wal.close()


async def test_vchannel_lifecycle_and_refusals(tso: TimestampOracle, namespace: str) -> None:
    wal, _ = await open_rw(tso, namespace)
    try:
        with pytest.raises(VChannelNotFoundError, match="'nope'"):
            await wal.append(insert("nope"))
        await wal.append(create())
        assert wal.vchannels == {"v1"}
        with pytest.raises(VChannelExistsError, match="'v1'"):
            await wal.append(create())
        await wal.append(insert())
        await wal.append(drop())
        with pytest.raises(VChannelDroppedError, match=r"'v1'.*dropped"):
            await wal.append(insert())
        with pytest.raises(VChannelDroppedError):
            await wal.begin_txn("v1")
        await wal.append(create("v2", 2))
    finally:
        await wal.close()
    # A new term recovers the vchannels from the log.
    wal2, _ = await open_rw(tso, namespace, term=2)
    try:
        assert wal2.vchannels == {"v2"}
        await wal2.append(insert("v2"))
        with pytest.raises(VChannelDroppedError):
            await wal2.append(insert("v1"))
    finally:
        await wal2.close()


async def test_barrier_timetick(tso: TimestampOracle, namespace: str) -> None:
    wal, _ = await open_rw(tso, namespace)
    try:
        await wal.append(create())
        barrier = wal.last_timetick + (500 << LOGICAL_BITS)
        result = await wal.append(insert().with_barrier_timetick(barrier))
        assert result.timetick >= barrier
        after = await wal.append(insert())
        assert after.timetick > result.timetick
    finally:
        await wal.close()


async def test_transient_backend_errors_are_retried(tso: TimestampOracle, namespace: str) -> None:
    wal, impl = await open_rw(tso, namespace)
    try:
        await wal.append(create())
        impl.fail_next = [WALError("flaky 1"), OSError("flaky 2")]
        calls = impl.calls
        result = await asyncio.wait_for(wal.append(insert()), WAIT)
        assert impl.calls == calls + 3
        await wal.sync()
        assert any(m.message_id == result.message_id for m in wab_contents(wal))
    finally:
        await wal.close()


async def test_fenced_is_final_forever(tso: TimestampOracle, namespace: str) -> None:
    wal, impl = await open_rw(tso, namespace)
    try:
        await wal.append(create())
        impl.fail_next = [FencedError("a newer term took p1")]
        calls = impl.calls
        with pytest.raises(FencedError):
            await wal.append(insert())
        assert impl.calls == calls + 1  # not retried
        for _ in range(2):
            with pytest.raises(FencedError):
                await wal.append(insert())
        assert impl.calls == calls + 1  # refused without touching the backend
        with pytest.raises(FencedError):
            await asyncio.wait_for(wal.sync(persisted=True), WAIT)
    finally:
        await wal.close()


async def test_a_newer_term_fences_the_old_writer(tso: TimestampOracle, namespace: str) -> None:
    old, _ = await open_rw(tso, namespace, term=1)
    new, _ = await open_rw(tso, namespace, term=2)
    try:
        with pytest.raises(FencedError):
            await old.append(create("v9", 9))
        await new.append(create("v9", 9))
    finally:
        await old.close()
        await new.close()


async def test_client_append_of_self_controlled_type_refused(
    tso: TimestampOracle, namespace: str
) -> None:
    wal, _ = await open_rw(tso, namespace)
    try:
        await wal.append(create())
        for mtype in (MessageType.TIME_TICK, MessageType.CREATE_SEGMENT, MessageType.FLUSH):
            with pytest.raises(SelfControlledMessageError, match=mtype.name):
                await wal.append(new_message(mtype, vchannel="v1"))
        flush = new_message(
            MessageType.FLUSH, vchannel="v1", header=pb.FlushMessageHeader(segment_id=3)
        )
        result = await wal.append_internal(flush)  # the WAL's own components may
        assert result.timetick > 0
    finally:
        await wal.close()


async def test_read_only_wal_refuses_appends(tso: TimestampOracle, namespace: str) -> None:
    impl = await open_impl(namespace, 0, AccessMode.RO)
    wal = await open_wal(impl, tso=tso, settings=WALSettings())
    try:
        assert wal.read_only and wal.wab is None
        with pytest.raises(ReadOnlyWALError, match="read-only"):
            await wal.append(create())
        with pytest.raises(ReadOnlyWALError):
            await wal.sync()
    finally:
        await wal.close()


async def test_close_is_idempotent_persists_and_refuses(
    tso: TimestampOracle, namespace: str
) -> None:
    wal, _ = await open_rw(tso, namespace)
    await wal.append(create())
    txn = await wal.begin_txn("v1")
    await wal.append(insert())
    await asyncio.wait_for(asyncio.gather(wal.close(), wal.close()), WAIT)
    await wal.close()
    assert wal.txn_manager is not None and len(wal.txn_manager) == 0
    with pytest.raises(WALClosedError):
        await wal.append(insert())
    with pytest.raises(WALClosedError):
        await txn.commit()
    reader = await open_impl(namespace, 0, AccessMode.RO)
    log = await backend_log(reader)
    await reader.close()
    assert log[-1].message_type is MessageType.TIME_TICK  # the final persisted sync
    assert log[-2].message_type is MessageType.INSERT


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WALSTREAM_WAL_TIMETICK_INTERVAL_MS", "75")
    monkeypatch.setenv("WALSTREAM_WAL_TXN_MAX_BYTES", "1024")
    settings = load_wal_settings()
    assert settings.timetick_interval_ms == 75 and settings.txn_max_bytes == 1024
    assert settings.txn_default_keepalive_ms == 10_000
    assert settings.wab_capacity_bytes == 64 * 1024 * 1024 and settings.wab_keepalive_s == 30
