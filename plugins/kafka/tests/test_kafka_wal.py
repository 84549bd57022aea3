"""Kafka-specific behaviour on the real broker: topics, terms, truncation, limits, errors."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from kafka_helpers import closed_port, kafka_test_settings, make_opener, read_through
from walstream.errors import FencedError, MessageError
from walstream.message import MutableMessage
from walstream.walimpls import AccessMode, DeliverAll, PChannelInfo, ReadOption
from walstream_kafka.errors import KafkaUnavailableError, KafkaWALError
from walstream_kafka.kadmin import ConfigResource, NewTopic, ResourceType


def pchannel() -> str:
    return f"k_{uuid.uuid4().hex[:10]}"


def admin(settings: dict[str, Any]) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings["bootstrap_servers"]})


def create_topic(settings: dict[str, Any], name: str, partitions: int, **config: str) -> str:
    topic = settings["topic_prefix"] + name
    client = admin(settings)
    futures = client.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config)]
    )
    futures[topic].result(timeout=30)
    return topic


def topic_exists(settings: dict[str, Any], topic: str) -> bool:
    return topic in admin(settings).list_topics(timeout=10).topics


async def test_rw_open_creates_a_fitting_topic(kafka_settings: dict[str, Any]) -> None:
    name = pchannel()
    async with make_opener(kafka_settings) as opener:
        wal = await opener.open(PChannelInfo(name, 1))
        await wal.close()
    topic = kafka_settings["topic_prefix"] + name
    client = admin(kafka_settings)
    metadata = client.list_topics(topic, timeout=10).topics[topic]
    assert len(metadata.partitions) == 1
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = client.describe_configs([resource])[resource].result(timeout=30)
    assert configs["retention.ms"].value == "-1"
    assert configs["cleanup.policy"].value == "delete"
    assert int(configs["max.message.bytes"].value) >= 1024 * 1024


async def test_ro_open_never_creates(kafka_settings: dict[str, Any]) -> None:
    name = pchannel()
    async with make_opener(kafka_settings) as opener:
        with pytest.raises(KafkaWALError, match="does not exist"):
            await opener.open(PChannelInfo(name, 1, AccessMode.RO))
    assert not topic_exists(kafka_settings, kafka_settings["topic_prefix"] + name)


async def test_topic_with_two_partitions_is_refused(kafka_settings: dict[str, Any]) -> None:
    name = pchannel()
    create_topic(kafka_settings, name, 2)
    async with make_opener(kafka_settings) as opener:
        for mode in (AccessMode.RW, AccessMode.RO):
            with pytest.raises(KafkaWALError, match="2 partitions"):
                await opener.open(PChannelInfo(name, 1, mode))


async def test_compacted_topic_is_refused(kafka_settings: dict[str, Any]) -> None:
    name = pchannel()
    create_topic(kafka_settings, name, 1, **{"cleanup.policy": "compact"})
    async with make_opener(kafka_settings) as opener:
        with pytest.raises(KafkaWALError, match=r"cleanup\.policy"):
            await opener.open(PChannelInfo(name, 1))


async def test_topic_with_small_records_is_refused(kafka_settings: dict[str, Any]) -> None:
    name = pchannel()
    create_topic(kafka_settings, name, 1, **{"max.message.bytes": "1000"})
    async with make_opener(kafka_settings) as opener:
        with pytest.raises(KafkaWALError, match=r"max\.message\.bytes"):
            await opener.open(PChannelInfo(name, 1))


async def test_stale_term_is_refused_without_disturbing_the_writer(
    kafka_settings: dict[str, Any],
) -> None:
    name = pchannel()
    async with make_opener(kafka_settings) as opener:
        wal = await opener.open(PChannelInfo(name, 5))
        first = await wal.append(MutableMessage.raw(b"a"))
        for stale in (1, 4):
            with pytest.raises(FencedError, match="term 5"):
                await opener.open(PChannelInfo(name, stale))
        second = await wal.append(MutableMessage.raw(b"b"))  # still the writer
        assert first < second
        # The same term may reopen (a restart of the same owner); it takes over.
        again = await opener.open(PChannelInfo(name, 5))
        with pytest.raises(FencedError):
            await wal.append(MutableMessage.raw(b"c"))
        third = await again.append(MutableMessage.raw(b"d"))
        async with await again.read(ReadOption("all")) as scanner:
            got = await read_through(scanner, third)
        assert [m.payload for m in got] == [b"a", b"b", b"d"]
        await wal.close()
        await again.close()


async def test_truncate_deletes_strictly_before(kafka_settings: dict[str, Any]) -> None:
    name = pchannel()
    async with make_opener(kafka_settings) as opener:
        wal = await opener.open(PChannelInfo(name, 1))
        ids = [await wal.append(MutableMessage.raw(f"m{i}".encode())) for i in range(10)]
        await wal.truncate(ids[4])
        async with await wal.read(ReadOption("all", DeliverAll())) as scanner:
            got = await read_through(scanner, ids[-1])
        assert [m.message_id for m in got] == ids[4:]
        topic = kafka_settings["topic_prefix"] + name
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(
            {"bootstrap.servers": kafka_settings["bootstrap_servers"], "group.id": "x"}
        )
        low, _ = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.close()
        assert low == ids[4].offset  # DeleteRecords moved the log start: retention reclaims
        from walstream_kafka import KafkaMessageID

        with pytest.raises(KafkaWALError, match="beyond the end"):
            await wal.truncate(KafkaMessageID(ids[-1].offset + 1000))
        await wal.close()


async def test_property_names_with_nul_are_refused(kafka_settings: dict[str, Any]) -> None:
    async with make_opener(kafka_settings) as opener:
        wal = await opener.open(PChannelInfo(pchannel(), 1))
        with pytest.raises(MessageError, match="NUL"):
            await wal.append(MutableMessage.raw(b"x", {"a\x00b": "v"}))
        await wal.append(MutableMessage.raw(b"x", {"ab": "v\x00"}))  # values may hold NUL
        await wal.close()


async def test_many_appends_are_pipelined(kafka_settings: dict[str, Any]) -> None:
    """2000 concurrent appends take a handful of transactions, not 2000 round trips."""
    async with make_opener(kafka_settings) as opener:
        wal = await opener.open(PChannelInfo(pchannel(), 1))
        started = time.monotonic()
        ids = await asyncio.gather(
            *(wal.append(MutableMessage.raw(b"p" * 100, {"i": str(i)})) for i in range(2000))
        )
        elapsed = time.monotonic() - started
        assert len(set(ids)) == 2000
        assert elapsed < 10, f"2000 pipelined appends took {elapsed:.1f}s"
        await wal.close()


async def test_open_with_the_broker_down_fails_clearly_in_time() -> None:
    """No broker at all (a closed port): a clear error within open_timeout_s."""
    settings = kafka_test_settings(
        f"127.0.0.1:{closed_port()}", open_timeout_s=3.0, request_timeout_s=1.0
    )
    async with make_opener(settings) as opener:
        for mode in (AccessMode.RW, AccessMode.RO):
            started = time.monotonic()
            with pytest.raises(KafkaUnavailableError) as info:
                await opener.open(PChannelInfo(pchannel(), 1, mode))
            elapsed = time.monotonic() - started
            assert elapsed < 3.0 + 3.0, f"open took {elapsed:.1f}s with open_timeout_s=3"
            text = str(info.value)
            assert "open_timeout_s=3.0" in text and settings["bootstrap_servers"] in text
