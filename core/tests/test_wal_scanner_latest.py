"""A DeliverLatest scanner whose backend fails before its first message misses nothing.

Its backend reader starts at the log's end. If that reader fails transiently before it
read anything, there is no "last message read" to resume after; reopening at the end
again would skip what was appended meanwhile. An RW WAL gives the scanner the
last-confirmed id and confirmed watermark at its start, and it resumes from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from wal_helpers import PassThroughWAL, Wrapped, insert
from walstream.message import ImmutableMessage, MessageID, MessageType
from walstream.tso import TimestampOracle
from walstream.wal import StreamingWAL, WALSettings, open_wal
from walstream.wal.options import WALReadOption
from walstream.walimpls import (
    AccessMode,
    DeliverLatest,
    DeliverStartFrom,
    PChannelInfo,
    ReadOption,
    Scanner,
    WALImpl,
)
from walstream.walimpls.registry import build_opener

WAIT = 10.0

W = TypeVar("W", bound=WALImpl)


class _FailsFirstRead(Scanner):
    """A reader whose first ``anext`` waits for ``gate``, then fails transiently."""

    def __init__(self, inner: Scanner, gate: asyncio.Event) -> None:
        super().__init__(inner.name)
        self.inner = inner
        self.gate = gate
        self.failed = False

    async def __anext__(self) -> ImmutableMessage:
        if not self.failed:
            await self.gate.wait()
            self.failed = True
            raise ConnectionError("connection reset by peer")
        return await anext(self.inner)

    async def close(self) -> None:
        await self.inner.close()


class _FirstReaderFails(PassThroughWAL):
    """The first reader opened fails at its first ``anext`` once ``gate`` is set."""

    def __init__(self, inner: WALImpl) -> None:
        super().__init__(inner)
        self.gate = asyncio.Event()
        self.reads: list[ReadOption] = []
        self.opened = asyncio.Event()

    async def read(self, option: ReadOption) -> Scanner:
        self.reads.append(option)
        reader = await self.inner.read(option)
        self.opened.set()
        if len(self.reads) == 1:
            return _FailsFirstRead(reader, self.gate)
        return reader


async def _open(
    tso: TimestampOracle, namespace: str, wrap: Callable[[WALImpl], W]
) -> tuple[StreamingWAL, W]:
    """An RW StreamingWAL over the memory backend wrapped by ``wrap``, with vchannel v1."""
    opener = build_opener("memory", {"namespace": namespace})
    impl = wrap(await opener.open(PChannelInfo("p1", 1, AccessMode.RW)))
    wal = await open_wal(
        impl, tso=tso, settings=WALSettings(timetick_interval_ms=10_000), vchannels=["v1"]
    )
    return wal, impl


async def _appended_during_outage(
    wal: StreamingWAL, gate: asyncio.Event
) -> tuple[list[MessageID], list[ImmutableMessage]]:
    """Open a Latest scanner, append 5 inserts, end the outage (``gate``); return the ids
    appended and everything the scanner delivered up to the fifth insert."""
    scanner = await wal.read(WALReadOption(name="latest", deliver_policy=DeliverLatest()))
    async with scanner:
        during = [(await wal.append(insert())).message_id for _ in range(5)]
        gate.set()
        got: list[ImmutableMessage] = []
        async with asyncio.timeout(WAIT):
            while len([m for m in got if m.message_type is MessageType.INSERT]) < 5:
                got.append(await anext(scanner))
        assert scanner.stats().read_retries == 1
    return during, got


async def test_latest_scanner_failing_before_its_first_message_misses_nothing(
    tso: TimestampOracle, namespace: str
) -> None:
    wal, impl = await _open(tso, namespace, _FirstReaderFails)
    try:
        before = await wal.append(insert())
        # Appended while the scanner's first backend read is about to fail.
        during, got = await _appended_during_outage(wal, impl.gate)
        inserts = [m for m in got if m.message_type is MessageType.INSERT]
        assert [m.message_id for m in inserts] == during
        assert before.message_id not in {m.message_id for m in got}
        timeticks = [m.timetick for m in got]
        assert timeticks == sorted(set(timeticks))
        # It went back to where "latest" was when it started, not to the new end.
        assert isinstance(impl.reads[1].deliver_policy, DeliverStartFrom)
    finally:
        await wal.close()


async def test_the_resumed_latest_scanner_skips_what_came_before_its_start(
    tso: TimestampOracle, namespace: str
) -> None:
    """The fallback position is older than the scanner's start: what is at or below the
    start's timetick is dropped, so Latest still means "appended after read()"."""
    wal, impl = await _open(tso, namespace, _FirstReaderFails)
    impl.gate.set()  # the first read fails at once
    try:
        earlier = [await wal.append(insert()) for _ in range(3)]
        scanner = await wal.read(WALReadOption(name="latest", deliver_policy=DeliverLatest()))
        async with scanner:
            after = await wal.append(insert())
            async with asyncio.timeout(WAIT):
                msg = await anext(scanner)
                while msg.message_type is not MessageType.INSERT:
                    msg = await anext(scanner)
            assert msg.message_id == after.message_id
            assert msg.message_id not in {r.message_id for r in earlier}
            assert scanner.stats().read_retries == 1
    finally:
        await wal.close()


class _FirstOpenFails(PassThroughWAL):
    """Opening the first reader waits for ``gate``, then fails transiently."""

    def __init__(self, inner: WALImpl) -> None:
        super().__init__(inner)
        self.gate = asyncio.Event()
        self.reads: list[ReadOption] = []

    async def read(self, option: ReadOption) -> Scanner:
        self.reads.append(option)
        if len(self.reads) == 1:
            await self.gate.wait()
            raise ConnectionError("connection refused")
        return await self.inner.read(option)


async def test_latest_scanner_whose_reader_fails_to_open_misses_nothing(
    tso: TimestampOracle, namespace: str
) -> None:
    wal, impl = await _open(tso, namespace, _FirstOpenFails)
    try:
        during, got = await _appended_during_outage(wal, impl.gate)
        inserts = [m.message_id for m in got if m.message_type is MessageType.INSERT]
        assert inserts == during
        # The retry opened from the start's last-confirmed id, not at the new end.
        assert isinstance(impl.reads[1].deliver_policy, DeliverStartFrom)
    finally:
        await wal.close()


async def _latest_sees_in_flight_insert(tso: TimestampOracle, namespace: str, fail: bool) -> bool:
    """Whether an insert in flight when a Latest scanner starts (its timetick allocated,
    stored after the reader opened at the end) is delivered, with or without a failure."""
    wal, impl = await _open(tso, namespace, lambda raw: _FirstReaderFails(Wrapped(raw)))
    inner = impl.inner
    assert isinstance(inner, Wrapped)
    if not fail:
        impl.reads.append(ReadOption(name="already failed"))  # no reader fails
    try:
        held = asyncio.Event()
        inner.gates[MessageType.INSERT] = held
        in_flight = asyncio.create_task(wal.append(insert(payload=b"in flight")))
        async with asyncio.timeout(WAIT):
            await inner.seen.setdefault(MessageType.INSERT, asyncio.Event()).wait()
        scanner = await wal.read(WALReadOption(name="latest", deliver_policy=DeliverLatest()))
        async with scanner:
            async with asyncio.timeout(WAIT):
                await impl.opened.wait()  # the Latest reader is open at the end
            held.set()
            stored = await in_flight
            impl.gate.set()
            later = await wal.append(insert(payload=b"later"))
            await wal.sync(persisted=True)  # a catch-up reader needs a stored TimeTick
            seen: list[ImmutableMessage] = []
            async with asyncio.timeout(WAIT):
                while not seen or seen[-1].message_id != later.message_id:
                    msg = await anext(scanner)
                    if msg.message_type is MessageType.INSERT:
                        seen.append(msg)
            return stored.message_id in {m.message_id for m in seen}
    finally:
        await wal.close()


async def test_an_in_flight_insert_is_delivered_with_or_without_a_failure(
    tso: TimestampOracle, namespace: str
) -> None:
    """The resumed scanner drops only what was confirmed before it started: an insert still
    in flight then is delivered whether or not the first backend read failed."""
    assert await _latest_sees_in_flight_insert(tso, namespace, fail=False)
    assert await _latest_sees_in_flight_insert(tso, namespace + "-fail", fail=True)
