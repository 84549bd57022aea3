"""Helpers shared by the streaming-WAL tests: backend wrappers, message builders, log readers.

The fixtures they go with (``tso``, ``namespace``, ``no_config``) are in ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import random

from walstream.message import ImmutableMessage, MessageID, MessageType, MutableMessage, new_message
from walstream.policy import CapacityPolicy, CapacitySettings, SealPolicyChain
from walstream.proto import messages_pb2 as pb
from walstream.wal import StreamingWAL
from walstream.walimpls import DeliverAll, PChannelInfo, ReadOption, Scanner, WALImpl

# --- backend wrappers -------------------------------------------------------------------------


class PassThroughWAL(WALImpl):
    """A WALImpl that hands every call to ``inner``; subclasses override what they intercept."""

    def __init__(self, inner: WALImpl) -> None:
        self.inner = inner

    @property
    def wal_name(self) -> str:
        return self.inner.wal_name

    @property
    def channel(self) -> PChannelInfo:
        return self.inner.channel

    async def append(self, message: MutableMessage) -> MessageID:
        return await self.inner.append(message)

    async def read(self, option: ReadOption) -> Scanner:
        return await self.inner.read(option)

    async def truncate(self, message_id: MessageID) -> None:
        await self.inner.truncate(message_id)

    async def close(self) -> None:
        await self.inner.close()


class Wrapped(PassThroughWAL):
    """A WAL with injectable failures, gates per type and jittered latency.

    ``fail_next``: errors raised by the next appends, in order; ``gates``: an append of
    that type waits for its event; ``seen``/``entered``: the types that reached the
    backend; ``jitter``: a random latency up to that many seconds, so acks arrive in any
    order; ``calls``: how many appends reached it.
    """

    def __init__(self, inner: WALImpl, jitter: float = 0.0) -> None:
        super().__init__(inner)
        self.fail_next: list[BaseException] = []
        self.gates: dict[MessageType, asyncio.Event] = {}
        self.entered: list[MessageType] = []
        self.seen: dict[MessageType, asyncio.Event] = {}
        self.jitter = jitter
        self.calls = 0

    async def append(self, message: MutableMessage) -> MessageID:
        self.calls += 1
        self.entered.append(message.message_type)
        self.seen.setdefault(message.message_type, asyncio.Event()).set()
        if self.fail_next:
            raise self.fail_next.pop(0)
        gate = self.gates.get(message.message_type)
        if gate is not None:
            await gate.wait()
        if self.jitter:
            await asyncio.sleep(random.random() * self.jitter)
        return await self.inner.append(message)


# --- messages ---------------------------------------------------------------------------------


def create(vchannel: str = "v1", collection: int = 1) -> MutableMessage:
    return new_message(
        MessageType.CREATE_COLLECTION,
        vchannel=vchannel,
        header=pb.CreateCollectionMessageHeader(collection_id=collection),
    )


def drop(vchannel: str = "v1") -> MutableMessage:
    return new_message(MessageType.DROP_COLLECTION, vchannel=vchannel)


def insert(vchannel: str = "v1", payload: bytes = b"row") -> MutableMessage:
    return new_message(
        MessageType.INSERT,
        vchannel=vchannel,
        header=pb.InsertMessageHeader(collection_id=1),
        payload=payload,
    )


def create_collection(
    vchannel: str = "v1", cid: int = 1, pids: tuple[int, ...] = (10,)
) -> MutableMessage:
    """A CreateCollection with partitions (for segment assignment)."""
    header = pb.CreateCollectionMessageHeader(collection_id=cid, partition_ids=list(pids))
    return new_message(MessageType.CREATE_COLLECTION, vchannel=vchannel, header=header)


def segment_insert(
    vchannel: str = "v1",
    rows: int = 1,
    cid: int = 1,
    pid: int = 10,
    payload: bytes | None = None,
) -> MutableMessage:
    """An Insert of ``rows`` rows into partition ``pid`` (payload ``b"r" * rows`` by default)."""
    header = pb.InsertMessageHeader(
        collection_id=cid, partitions=[pb.PartitionSegmentAssignment(partition_id=pid, rows=rows)]
    )
    body = b"r" * rows if payload is None else payload
    return new_message(MessageType.INSERT, vchannel=vchannel, header=header, payload=body)


def segment_of(message: MutableMessage | ImmutableMessage) -> int:
    """The segment an Insert was assigned to."""
    header = message.header()
    assert isinstance(header, pb.InsertMessageHeader)
    return header.partitions[0].segment_assignment.segment_id


def capacity_chain(max_rows: int = 10**9, max_bytes: int = 10**12) -> SealPolicyChain:
    """A seal chain of one capacity policy: a segment seals at ``max_rows`` rows."""
    return SealPolicyChain(
        [
            CapacityPolicy(
                CapacitySettings(
                    max_rows=max_rows,
                    max_bytes=max_bytes,
                    seal_proportion=1,
                    seal_proportion_jitter=0,
                )
            )
        ],
        memory_probe=lambda: None,
    )


# --- reading back -----------------------------------------------------------------------------


async def backend_log(impl: WALImpl) -> list[ImmutableMessage]:
    """Everything stored so far (appends are done: stop at the first idle gap)."""
    scanner = await impl.read(ReadOption(name="check", deliver_policy=DeliverAll()))
    out: list[ImmutableMessage] = []
    try:
        while True:
            try:
                out.append(await asyncio.wait_for(anext(scanner), 0.05))
            except TimeoutError:
                return out
    finally:
        await scanner.close()


def wab_contents(wal: StreamingWAL) -> list[ImmutableMessage]:
    """What the write-ahead buffer holds, in its order."""
    assert wal.wab is not None
    cursor = wal.wab.read_from_exclusive_timetick(wal.wab.floor_timetick)
    out = []
    while (msg := cursor.try_next()) is not None:
        out.append(msg)
    return out
