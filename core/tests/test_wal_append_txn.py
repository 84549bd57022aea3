"""Transactions through the RW streaming WAL: lifecycle, expiry, commit waits, misuse."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from wal_helpers import (  # the WAL tests' shared helpers (core/tests/wal_helpers.py)
    Wrapped,
    create,
    insert,
)
from walstream.message import MessageType, new_message
from walstream.proto import messages_pb2 as pb
from walstream.tso import TimestampOracle
from walstream.wal import (
    InvalidTransactionRequestError,
    InvalidTransactionStateError,
    StreamingWAL,
    TransactionExpiredError,
    TransactionTooLargeError,
    TxnState,
    WALSettings,
    open_wal,
)
from walstream.walimpls import PChannelInfo
from walstream.walimpls.registry import build_opener

WAIT = 5.0


async def open_rw(tso: TimestampOracle, **overrides: object) -> tuple[StreamingWAL, Wrapped]:
    opener = build_opener("memory", {"namespace": f"txn-{uuid.uuid4().hex}"})
    impl = Wrapped(await opener.open(PChannelInfo("p1", 1)))
    settings = WALSettings(**{"timetick_interval_ms": 10_000_000, **overrides})  # type: ignore[arg-type]
    wal = await open_wal(impl, tso=tso, settings=settings)
    await wal.append(create())
    return wal, impl


async def test_commit_once_and_misuse_after(tso: TimestampOracle) -> None:
    wal, _ = await open_rw(tso)
    try:
        txn = await wal.begin_txn("v1")
        assert txn.keepalive_ms == 10_000  # keepalive 0: the default
        bodies = [await txn.append(insert(payload=bytes([i]))) for i in range(3)]
        assert all(b.txn_context is not None and b.txn_context.txn_id == txn.txn_id for b in bodies)
        commit = await txn.commit()
        assert commit.timetick > max(b.timetick for b in bodies)
        assert wal.txn_manager is not None
        assert wal.txn_manager.get(txn.txn_id).state is TxnState.COMMITTED
        with pytest.raises(InvalidTransactionStateError, match="committed"):
            await txn.commit()
        with pytest.raises(InvalidTransactionStateError):
            await txn.rollback()
        with pytest.raises(InvalidTransactionStateError):
            await txn.append(insert())
        # The WAL enforces it too, for a client that bypasses the handle.
        ctx = pb.TxnContext(txn_id=txn.txn_id, keepalive_milliseconds=txn.keepalive_ms)
        with pytest.raises(InvalidTransactionStateError):
            await wal.append(insert().with_txn_context(ctx))
    finally:
        await wal.close()


async def test_rollback_then_commit_refused(tso: TimestampOracle) -> None:
    wal, _ = await open_rw(tso)
    try:
        txn = await wal.begin_txn("v1")
        await txn.append(insert())
        await txn.rollback()
        with pytest.raises(InvalidTransactionStateError, match="rolled back"):
            await txn.commit()
    finally:
        await wal.close()


async def test_expiry_through_the_sync_cleanup(tso: TimestampOracle) -> None:
    wal, _ = await open_rw(tso)
    try:
        txn = await wal.begin_txn("v1", keepalive_ms=1)
        await asyncio.sleep(0.01)  # the lease (1 ms of TSO time) is over
        await asyncio.wait_for(wal.sync(), WAIT)
        assert wal.txn_manager is not None
        assert wal.txn_manager.get(txn.txn_id).state is TxnState.EXPIRED
        with pytest.raises(TransactionExpiredError, match="expired"):
            await txn.append(insert())
        with pytest.raises(TransactionExpiredError):
            await txn.commit()
    finally:
        await wal.close()


async def test_commit_waits_for_bodies_in_flight(tso: TimestampOracle) -> None:
    wal, impl = await open_rw(tso)
    try:
        txn = await wal.begin_txn("v1")
        gate = impl.gates[MessageType.INSERT] = asyncio.Event()
        body = asyncio.create_task(txn.append(insert()))
        await asyncio.wait_for(
            impl.seen.setdefault(MessageType.INSERT, asyncio.Event()).wait(), WAIT
        )
        commit = asyncio.create_task(txn.commit())
        await asyncio.sleep(0.05)
        assert MessageType.COMMIT_TXN not in impl.entered and not commit.done()
        gate.set()
        body_result, commit_result = await asyncio.wait_for(asyncio.gather(body, commit), WAIT)
        assert body_result.message_id < commit_result.message_id
        assert body_result.timetick < commit_result.timetick
    finally:
        await wal.close()


async def test_oversize_txn_refused(tso: TimestampOracle) -> None:
    wal, _ = await open_rw(tso, txn_max_bytes=300)
    try:
        txn = await wal.begin_txn("v1")
        await txn.append(insert(payload=b"x" * 100))
        with pytest.raises(TransactionTooLargeError, match="txn_max_bytes=300"):
            await txn.append(insert(payload=b"x" * 200))
        await txn.commit()  # still usable with what it holds
    finally:
        await wal.close()


async def test_bad_body_and_bad_keepalive_refused(tso: TimestampOracle) -> None:
    wal, _ = await open_rw(tso)
    try:
        txn = await wal.begin_txn("v1")
        with pytest.raises(InvalidTransactionRequestError, match="Insert/Delete"):
            await txn.append(
                new_message(
                    MessageType.CREATE_PARTITION,
                    vchannel="v1",
                    header=pb.CreatePartitionMessageHeader(collection_id=1, partition_id=2),
                )
            )
        with pytest.raises(InvalidTransactionRequestError, match="keepalive"):
            await wal.begin_txn("v1", keepalive_ms=-5)
        with pytest.raises(InvalidTransactionRequestError, match="txn context"):
            await wal.append(new_message(MessageType.COMMIT_TXN, vchannel="v1"))
    finally:
        await wal.close()


async def test_wab_gets_txn_messages_after_sync(tso: TimestampOracle) -> None:
    wal, _ = await open_rw(tso)
    try:
        txn = await wal.begin_txn("v1")
        await txn.append(insert())
        await txn.commit()
        await wal.sync()
        assert wal.wab is not None
        cursor = wal.wab.read_from_exclusive_timetick(txn.txn_id - 1)
        types = []
        while (msg := cursor.try_next()) is not None:
            types.append(msg.message_type)
        # Each release covers its messages with a tick of its own (held, persisted or not).
        assert [t for t in types if t is not MessageType.TIME_TICK] == [
            MessageType.BEGIN_TXN,
            MessageType.INSERT,
            MessageType.COMMIT_TXN,
        ]
        assert types[-1] is MessageType.TIME_TICK
    finally:
        await wal.close()


async def test_read_delivers_a_committed_txn_through_the_scanner(tso: TimestampOracle) -> None:
    from walstream.wal.options import WALReadOption

    wal, _ = await open_rw(tso)
    try:
        txn = await wal.begin_txn("v1")
        await txn.append(insert())
        await txn.commit()
        await wal.append(insert(payload=b"plain"))
        scanner = await wal.read(WALReadOption(vchannel="v1"))
        try:
            seen: list[MessageType] = []
            async with asyncio.timeout(WAIT):
                async for msg in scanner:
                    if msg.message_type is not MessageType.TIME_TICK:
                        seen.append(msg.message_type)
                    if len(seen) == 3:
                        break
            assert seen == [MessageType.CREATE_COLLECTION, MessageType.TXN, MessageType.INSERT]
        finally:
            await scanner.close()
    finally:
        await wal.close()
