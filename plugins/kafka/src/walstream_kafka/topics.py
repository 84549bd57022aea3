"""The pchannel's topic: created on the first RW open, checked on every open.

A topic this backend creates has one partition, ``cleanup.policy=delete`` (records
are only removed by truncation or retention, never compacted away by key),
``retention.ms`` from settings (default -1: kept until truncated),
``max.message.bytes`` = ``max_message_bytes`` + ``record_overhead_bytes``, and the
configured replication factor and ``min.insync.replicas``. An existing topic is used
as it is if it fits: exactly one partition, not compacted, large enough records.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicCollection

from walstream_kafka import retry
from walstream_kafka.errors import KafkaUnavailableError, KafkaWALError, final_error, kafka_error
from walstream_kafka.kadmin import Admin, ConfigResource, NewTopic, ResourceType
from walstream_kafka.settings import KafkaSettings

log = logging.getLogger(__name__)

_UNKNOWN = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC})


def topic_config(settings: KafkaSettings) -> dict[str, str]:
    """Configuration of a topic this backend creates."""
    config = {
        "cleanup.policy": "delete",
        "retention.ms": str(settings.retention_ms),
        "retention.bytes": "-1",
        "max.message.bytes": str(settings.record_limit_bytes),
        "message.timestamp.type": "CreateTime",
    }
    if settings.min_insync_replicas is not None:
        config["min.insync.replicas"] = str(settings.min_insync_replicas)
    return config


async def ensure_topic(
    admin: Admin, settings: KafkaSettings, topic: str, *, create: bool, deadline: float
) -> None:
    """Make sure ``topic`` exists (creating it if ``create``) and suits a pchannel."""
    partitions = await retry.acall(
        lambda: _partitions(admin, settings, topic), deadline, admin.renew
    )
    if partitions is None:
        if not create:
            raise KafkaWALError(
                f"topic {topic!r} does not exist: a read-only open never creates it; open the "
                f"pchannel read-write first, or check topic_prefix ({settings.topic_prefix!r})",
                KafkaError.UNKNOWN_TOPIC_OR_PART,
            )
        await retry.acall(lambda: _create(admin, settings, topic), deadline, admin.renew)
        partitions = await retry.acall(
            lambda: _partitions(admin, settings, topic, must_exist=True), deadline, admin.renew
        )
    if partitions != 1:
        raise KafkaWALError(
            f"topic {topic!r} has {partitions} partitions; a walstream pchannel needs exactly "
            f"one (its order is the partition's order). Delete the topic or use another "
            f"topic_prefix"
        )
    configs = await retry.acall(lambda: _configs(admin, settings, topic), deadline, admin.renew)
    cleanup = configs.get("cleanup.policy", "delete")
    if "compact" in cleanup:
        raise KafkaWALError(
            f"topic {topic!r} has cleanup.policy={cleanup}: compaction would drop WAL records "
            f"that share a key. Set cleanup.policy=delete on it"
        )
    limit = int(configs.get("max.message.bytes", "0") or 0)
    if limit < settings.record_limit_bytes:
        raise KafkaWALError(
            f"topic {topic!r} accepts record batches of at most {limit} bytes "
            f"(max.message.bytes), below max_message_bytes {settings.max_message_bytes} plus "
            f"record_overhead_bytes {settings.record_overhead_bytes}: raise the topic's "
            f"max.message.bytes to {settings.record_limit_bytes} or lower max_message_bytes"
        )


async def _partitions(
    admin: Admin, settings: KafkaSettings, topic: str, *, must_exist: bool = False
) -> int | None:
    futures = admin.client.describe_topics(
        TopicCollection([topic]), request_timeout=settings.request_timeout_s
    )
    try:
        description: Any = await asyncio.wrap_future(futures[topic])
    except KafkaException as exc:
        err = kafka_error(exc)
        if err is not None and err.code() in _UNKNOWN:
            if must_exist:  # just created: metadata is still spreading
                raise KafkaUnavailableError(
                    f"topic {topic!r} was created but is not visible yet"
                ) from exc
            return None
        if retry.retryable(exc):
            raise
        raise final_error(f"describing topic {topic!r}", exc) from exc
    return len(description.partitions)


async def _create(admin: Admin, settings: KafkaSettings, topic: str) -> None:
    new = NewTopic(
        topic,
        num_partitions=1,
        replication_factor=settings.replication_factor,
        config=topic_config(settings),
    )
    futures = admin.client.create_topics(
        [new],
        request_timeout=settings.request_timeout_s,
        operation_timeout=settings.request_timeout_s,
    )
    try:
        await asyncio.wrap_future(futures[topic])
    except KafkaException as exc:
        err = kafka_error(exc)
        if err is not None and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return  # another opener was quicker
        if retry.retryable(exc):
            raise
        raise final_error(f"creating topic {topic!r}", exc) from exc
    log.info("created topic %r with %s", topic, topic_config(settings))


async def _configs(admin: Admin, settings: KafkaSettings, topic: str) -> dict[str, str]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    futures = admin.client.describe_configs([resource], request_timeout=settings.request_timeout_s)
    try:
        entries: dict[str, Any] = await asyncio.wrap_future(next(iter(futures.values())))
    except KafkaException as exc:
        if retry.retryable(exc):
            raise
        raise final_error(f"reading the configuration of topic {topic!r}", exc) from exc
    return {name: entry.value for name, entry in entries.items() if entry.value is not None}
