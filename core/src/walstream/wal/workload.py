"""Concurrent mixed workloads on a :class:`StreamingWAL`, with a model of what readers must see.

A conformance kit for any backend: ``run_workload`` appends a plan of ops
(inserts, deletes, DDL, manual flushes, committed, rolled-back and expiring
transactions) concurrently and records what was acknowledged; ``read_through``
reads a scanner until the last data timetick; ``check_stream`` checks one
reader's stream against the model. Tests drive it with hypothesis.

Messages are keyed by (type, timetick): a timetick is unique on a pchannel. A
committed transaction is one ``("TXN", commit timetick)`` key, checked with its
body count; its begin, bodies and commit never show on their own.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from walstream.message import ImmutableMessage, MessageType, MutableMessage, new_message
from walstream.proto import messages_pb2 as pb
from walstream.wal.ack import TimestampAllocator
from walstream.wal.chain import AppendResult
from walstream.wal.errors import (
    TransactionAbortedError,
    TransactionExpiredError,
    VChannelDroppedError,
    VChannelNotFoundError,
)
from walstream.wal.options import DeliverFilter, WALReadOption
from walstream.wal.scan.scanner import WALScanner
from walstream.wal.settings import WALSettings
from walstream.wal.streaming_wal import StreamingWAL, open_wal
from walstream.wal.txn_message import ImmutableTxnMessage
from walstream.walimpls import AccessMode, DeliverStartFrom, Opener, PChannelInfo

__all__ = [
    "EXPECTED_REFUSALS",
    "Key",
    "Op",
    "OpKind",
    "Outcome",
    "check_stream",
    "check_workload",
    "client_keys",
    "create_collection_message",
    "insert_message",
    "read_through",
    "run_workload",
]

OpKind = Literal[
    "insert", "delete", "create", "drop", "flush", "txn_commit", "txn_rollback", "txn_expire"
]
Key = tuple[str, int]

PARTITION = 10
EXPECTED_REFUSALS: tuple[type[BaseException], ...] = (
    VChannelDroppedError,
    VChannelNotFoundError,
    TransactionAbortedError,
    TransactionExpiredError,
)
"""What a workload's ops may legitimately meet (a racing drop, flush or expiry)."""

_SYSTEM = frozenset(
    {MessageType.TIME_TICK, MessageType.CREATE_SEGMENT, MessageType.FLUSH}
)  # WAL-generated: not in the client model


@dataclass(frozen=True, slots=True)
class Op:
    """One client action: ``vchannel`` indexes the initial vchannels; ``size`` rows or bodies."""

    kind: OpKind
    vchannel: int = 0
    size: int = 1
    delay: int = 0  # event-loop turns to wait before starting


@dataclass(slots=True)
class Outcome:
    """What the WAL acknowledged, and how the ops ended."""

    expected: dict[Key, int] = field(default_factory=dict)
    """Key -> body count (0 for a plain message) of every acknowledged client message."""
    acked: list[AppendResult] = field(default_factory=list)
    """Results of the acknowledged plain (non-txn) appends, in completion order."""
    refused: list[BaseException] = field(default_factory=list)
    expired_committed: int = 0
    """Expiring txns whose late commit still succeeded (must stay 0)."""


def vchannel_name(pchannel: str, index: int) -> str:
    """The name of the ``index``-th vchannel of a workload."""
    return f"{pchannel}_v{index}"


def create_collection_message(vchannel: str, collection_id: int) -> MutableMessage:
    """A CreateCollection with one partition (``PARTITION``)."""
    header = pb.CreateCollectionMessageHeader(
        collection_id=collection_id, partition_ids=[PARTITION]
    )
    return new_message(MessageType.CREATE_COLLECTION, vchannel=vchannel, header=header)


def insert_message(vchannel: str, collection_id: int, rows: int) -> MutableMessage:
    """An Insert of ``rows`` rows into ``PARTITION``."""
    header = pb.InsertMessageHeader(
        collection_id=collection_id,
        partitions=[pb.PartitionSegmentAssignment(partition_id=PARTITION, rows=rows)],
    )
    return new_message(MessageType.INSERT, vchannel=vchannel, header=header, payload=b"r" * rows)


def _delete(vchannel: str, collection_id: int) -> MutableMessage:
    header = pb.DeleteMessageHeader(collection_id=collection_id)
    return new_message(MessageType.DELETE, vchannel=vchannel, header=header, payload=b"d")


async def run_workload(
    wal: StreamingWAL,
    ops: Sequence[Op],
    *,
    vchannels: int,
    expire_keepalive_ms: int = 30,
) -> Outcome:
    """Create ``vchannels`` collections, then run ``ops`` all at once; returns the model.

    Vchannel ``i`` holds collection ``i + 1``. An op meeting one of
    ``EXPECTED_REFUSALS`` is recorded in ``refused``; any other error propagates.
    """
    pchannel = wal.channel.name
    out = Outcome()

    def record(mtype: MessageType, result: AppendResult, bodies: int = 0) -> None:
        out.expected[(mtype.name, result.timetick)] = bodies

    for i in range(vchannels):
        message = create_collection_message(vchannel_name(pchannel, i), i + 1)
        result = await wal.append(message)
        record(MessageType.CREATE_COLLECTION, result)
        out.acked.append(result)

    async def plain(message: MutableMessage) -> None:
        result = await wal.append(message)
        record(message.message_type, result)
        out.acked.append(result)

    async def txn(vchannel: str, cid: int, op: Op) -> None:
        keepalive = expire_keepalive_ms if op.kind == "txn_expire" else 0
        handle = await wal.begin_txn(vchannel, keepalive)
        bodies = 0
        for n in range(op.size):
            body = insert_message(vchannel, cid, 1) if n % 2 == 0 else _delete(vchannel, cid)
            await handle.append(body)
            bodies += 1
        if op.kind == "txn_rollback":
            await handle.rollback()
            return
        if op.kind == "txn_expire":
            # Past the keepalive: the next time-tick sync expires the session.
            await asyncio.sleep(expire_keepalive_ms * 4 / 1000)
            try:
                result = await handle.commit()
            except (TransactionExpiredError, TransactionAbortedError) as exc:
                out.refused.append(exc)
                return
            out.expired_committed += 1
        else:
            result = await handle.commit()
        out.expected[(MessageType.TXN.name, result.timetick)] = bodies

    async def run(index: int, op: Op) -> None:
        for _ in range(op.delay):
            await asyncio.sleep(0)
        vchannel = vchannel_name(pchannel, op.vchannel % vchannels)
        cid = op.vchannel % vchannels + 1
        try:
            if op.kind == "insert":
                await plain(insert_message(vchannel, cid, op.size))
            elif op.kind == "delete":
                await plain(_delete(vchannel, cid))
            elif op.kind == "create":
                await plain(create_collection_message(f"{pchannel}_x{index}", 1000 + index))
            elif op.kind == "drop":
                header = pb.DropCollectionMessageHeader(collection_id=cid)
                await plain(
                    new_message(MessageType.DROP_COLLECTION, vchannel=vchannel, header=header)
                )
            elif op.kind == "flush":
                header_f = pb.ManualFlushMessageHeader(collection_id=cid)
                await plain(
                    new_message(MessageType.MANUAL_FLUSH, vchannel=vchannel, header=header_f)
                )
            else:
                await txn(vchannel, cid, op)
        except EXPECTED_REFUSALS as exc:
            out.refused.append(exc)

    await asyncio.gather(*(run(i, op) for i, op in enumerate(ops)))
    if wal.segments is not None:
        await wal.segments.wait_flushed()
    await wal.sync(persisted=True)
    return out


async def read_through(scanner: WALScanner, timetick: int) -> list[ImmutableMessage]:
    """Read until a TimeTick at or above ``timetick`` (every message up to it is delivered)."""
    got: list[ImmutableMessage] = []
    async for message in scanner:
        got.append(message)
        if message.message_type is MessageType.TIME_TICK and message.timetick >= timetick:
            return got
    raise AssertionError(f"scanner {scanner.name} ended before timetick {timetick}")


def client_keys(stream: Iterable[ImmutableMessage]) -> dict[Key, int]:
    """The client messages of a stream as keys -> body count (WAL-generated types left out)."""
    keys: dict[Key, int] = {}
    for m in stream:
        if m.message_type in _SYSTEM:
            continue
        bodies = len(m.body) if isinstance(m, ImmutableTxnMessage) else 0
        key = (m.message_type.name, m.timetick)
        assert key not in keys, f"delivered twice: {key}"
        keys[key] = bodies
    return keys


def check_stream(stream: Sequence[ImmutableMessage], expected: dict[Key, int]) -> None:
    """Strictly increasing timeticks, and exactly the ``expected`` client messages."""
    ticks = [m.timetick for m in stream]
    assert all(a < b for a, b in itertools.pairwise(ticks)), ticks
    for m in stream:
        assert m.message_type not in (
            MessageType.BEGIN_TXN,
            MessageType.COMMIT_TXN,
            MessageType.ROLLBACK_TXN,
        ), f"a txn control message delivered on its own: {m!r}"
        assert m.txn_context is None or isinstance(m, ImmutableTxnMessage), (
            f"a txn body delivered on its own: {m!r}"
        )
    got = client_keys(stream)
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    assert not missing and not extra, f"missing {missing}, unexpected {extra}"
    assert got == expected


async def check_workload(
    opener: Opener,
    tso: TimestampAllocator,
    ops: Sequence[Op],
    anchor: int,
    *,
    vchannels: int = 3,
    settings: WALSettings | None = None,
) -> None:
    """Run ``ops`` on a fresh pchannel of ``opener`` and check every reader against the model.

    Readers: All on the RW WAL (opened before the workload, so it tails), All on
    an RO WAL of the same pchannel, and StartFrom(last-confirmed of the
    ``anchor``-th acknowledged message) with timetick > its timetick on both. Every
    stream is strictly increasing and holds exactly the committed messages; the
    RW and RO streams are equal up to the last client message (WAL-generated
    messages included, TimeTicks not).
    """
    name = f"p{uuid.uuid4().hex[:8]}"
    settings = settings or WALSettings(timetick_interval_ms=20, wab_capacity_bytes=64 * 1024)
    wal = await open_wal(await opener.open(PChannelInfo(name, 1)), tso=tso, settings=settings)
    try:
        ro = await open_wal(
            await opener.open(PChannelInfo(name, 1, AccessMode.RO)), tso=tso, settings=settings
        )
    except BaseException:
        await wal.close()
        raise
    try:
        early = await wal.read(WALReadOption(name="rw-all", buffer_messages=8))
        try:
            outcome = await run_workload(wal, ops, vchannels=vchannels)
            assert outcome.expired_committed == 0, "an expired transaction committed"
            last = max(tt for _, tt in outcome.expected)
            rw_stream = await read_through(early, last)
        finally:
            await early.close()
        check_stream(rw_stream, outcome.expected)
        async with await ro.read(WALReadOption(name="ro-all")) as ro_scanner:
            ro_stream = await read_through(ro_scanner, last)
        check_stream(ro_stream, outcome.expected)
        # Up to the last client message only: past it, which WAL-generated messages a
        # reader shows depends on the tick it stops at (RW readers see in-memory ticks,
        # RO readers only persisted ones).
        rw_keys = _all_keys(rw_stream, last)
        assert _all_keys(ro_stream, last) == rw_keys

        chosen = outcome.acked[anchor % len(outcome.acked)]
        option = WALReadOption(
            name="resume",
            deliver_policy=DeliverStartFrom(chosen.last_confirmed_message_id),
            deliver_filter=DeliverFilter(timetick_gt=chosen.timetick),
            buffer_messages=4,
        )
        later = {k: v for k, v in outcome.expected.items() if k[1] > chosen.timetick}
        for reader_wal in (wal, ro):
            async with await reader_wal.read(option) as resumed:
                stream = await read_through(resumed, last)
            check_stream(stream, later)
            assert _all_keys(stream, last) == [k for k in rw_keys if k[1] > chosen.timetick]
    finally:
        await ro.close()
        await wal.close()


def _all_keys(stream: Iterable[ImmutableMessage], last: int) -> list[Key]:
    """Every message but TimeTicks up to timetick ``last``, in order (WAL-generated ones too)."""
    return [
        (m.message_type.name, m.timetick)
        for m in stream
        if m.message_type is not MessageType.TIME_TICK and m.timetick <= last
    ]
