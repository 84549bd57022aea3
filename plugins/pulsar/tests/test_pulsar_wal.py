"""Pulsar specifics on the real broker: topic layout, strict term check, truncation cursor."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pulsar  # type: ignore[import-untyped]
import pytest
from pulsar_helpers import make_opener, read_through
from walstream.errors import FencedError, MessageIDMismatchError
from walstream.message import MutableMessage
from walstream.walimpls import AccessMode, DeliverStartAfter, PChannelInfo, ReadOption
from walstream_pulsar import PulsarMessageID, PulsarWAL


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 120))


def test_topic_layout_and_properties(pulsar_settings: dict[str, Any], pulsar_url: str) -> None:
    """One non-partitioned topic per pchannel; payload, properties and key as documented."""
    name = f"layout_{uuid.uuid4().hex[:8]}"

    async def go() -> tuple[str, PulsarMessageID]:
        async with make_opener(pulsar_settings) as opener:
            wal = await opener.open(PChannelInfo(name, 3))
            assert isinstance(wal, PulsarWAL)
            mid = await wal.append(MutableMessage.raw(b"body", {"k": "v"}))
            assert isinstance(mid, PulsarMessageID)
            await wal.close()
            return wal.topic, mid

    topic, mid = _run(go())
    prefix = pulsar_settings["topic_prefix"]
    assert topic == f"persistent://public/default/{prefix}{name}"
    client = pulsar.Client(pulsar_url)
    try:
        assert client.get_topic_partitions(topic) == [topic]
        reader = client.create_reader(topic, mid.to_pulsar(), start_message_id_inclusive=True)
        msg = reader.read_next(10_000)
        assert msg.data() == b"body" and msg.properties() == {"k": "v"}
        assert msg.partition_key() == "D:3"
        assert PulsarMessageID.from_pulsar(msg.message_id()) == mid
        reader.close()
    finally:
        client.close()


def test_lower_term_is_refused_and_does_not_disturb_the_writer(
    pulsar_settings: dict[str, Any],
) -> None:
    """A stale RW open fails with FencedError before it creates a producer, so the live
    higher-term writer keeps appending."""
    name = f"stale_{uuid.uuid4().hex[:8]}"

    async def go() -> None:
        async with make_opener(pulsar_settings) as opener:
            live = await opener.open(PChannelInfo(name, 5))
            await live.append(MutableMessage.raw(b"a"))
            with pytest.raises(FencedError) as info:
                await opener.open(PChannelInfo(name, 4))
            assert "term 5" in str(info.value)
            last = await live.append(MutableMessage.raw(b"b"))
            async with await live.read(ReadOption("all")) as s:
                got = await read_through(s, last)
            assert [m.payload for m in got] == [b"a", b"b"]
            # An RO open at a lower term is fine: it never writes.
            ro = await opener.open(PChannelInfo(name, 1, AccessMode.RO))
            await ro.close()
            # The same term takes over (a restarted owner) and fences the old instance.
            again = await opener.open(PChannelInfo(name, 5))
            with pytest.raises(FencedError):
                await live.append(MutableMessage.raw(b"c"))
            await again.append(MutableMessage.raw(b"d"))
            await live.close()
            await again.close()

    _run(go())


def test_truncate_moves_the_subscription_cursor(
    pulsar_settings: dict[str, Any], pulsar_url: str
) -> None:
    """After truncate(id) the durable truncation subscription's next message is ``id``."""
    name = f"cursor_{uuid.uuid4().hex[:8]}"

    async def go() -> tuple[str, list[PulsarMessageID]]:
        async with make_opener(pulsar_settings) as opener:
            wal = await opener.open(PChannelInfo(name, 1))
            assert isinstance(wal, PulsarWAL)
            ids = [await wal.append(MutableMessage.raw(f"m{i}".encode())) for i in range(6)]
            await wal.truncate(ids[3])
            with pytest.raises(MessageIDMismatchError):
                await wal.truncate(object())  # type: ignore[arg-type]
            await wal.close()
            return wal.topic, ids  # type: ignore[return-value]

    topic, ids = _run(go())
    client = pulsar.Client(pulsar_url)
    try:
        consumer = client.subscribe(
            topic, "walstream-truncation", consumer_type=pulsar.ConsumerType.Shared
        )
        msg = consumer.receive(10_000)
        assert msg.data() == b"m3"
        assert PulsarMessageID.from_pulsar(msg.message_id()) == ids[3]
        consumer.close()
    finally:
        client.close()


def test_start_after_the_last_message_waits_at_the_tail(pulsar_settings: dict[str, Any]) -> None:
    """StartAfter(last) delivers nothing old and the next append promptly."""

    async def go() -> None:
        async with make_opener(pulsar_settings) as opener:
            wal = await opener.open(PChannelInfo(f"tail_{uuid.uuid4().hex[:8]}", 1))
            last = await wal.append(MutableMessage.raw(b"old"))
            async with await wal.read(ReadOption("after", DeliverStartAfter(last))) as s:
                waiting = asyncio.create_task(s.__anext__())
                await asyncio.sleep(0.3)
                assert not waiting.done()
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                await wal.append(MutableMessage.raw(b"new"))
                got = await asyncio.wait_for(waiting, 10)
                assert got.payload == b"new"
                assert loop.time() - t0 < 1.0
            await wal.close()

    _run(go())
