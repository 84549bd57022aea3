"""librdkafka configuration dicts built from ``KafkaSettings``.

Overrides are applied first and the properties the guarantees rest on last, so no
override can weaken them (the settings class also refuses such overrides up front).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from walstream_kafka.settings import KafkaSettings

LIBRDKAFKA_LOG = logging.getLogger("walstream_kafka.librdkafka")
"""librdkafka's own log lines land here instead of on stderr."""


def common_config(settings: KafkaSettings) -> dict[str, Any]:
    """Connection and security properties shared by producers, consumers and admin clients."""
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "security.protocol": settings.security_protocol,
        "socket.timeout.ms": max(1000, int(settings.request_timeout_s * 1000)),
        "logger": LIBRDKAFKA_LOG,
        "client.id": "walstream-kafka",
        # Reconnect quickly after a broker restart.
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 1000,
    }
    if settings.sasl_mechanism is not None:
        conf["sasl.mechanism"] = settings.sasl_mechanism
    if settings.sasl_username is not None:
        conf["sasl.username"] = settings.sasl_username
    if settings.sasl_password is not None:
        conf["sasl.password"] = settings.sasl_password.get_secret_value()
    if settings.ssl_ca_location is not None:
        conf["ssl.ca.location"] = str(settings.ssl_ca_location)
    if settings.ssl_certificate_location is not None:
        conf["ssl.certificate.location"] = str(settings.ssl_certificate_location)
    if settings.ssl_key_location is not None:
        conf["ssl.key.location"] = str(settings.ssl_key_location)
    if settings.ssl_key_password is not None:
        conf["ssl.key.password"] = settings.ssl_key_password.get_secret_value()
    return conf


def producer_config(settings: KafkaSettings, transactional_id: str | None) -> dict[str, Any]:
    """A producer acknowledged only by all in-sync replicas, idempotent, optionally transactional.

    ``message.timeout.ms`` and ``transaction.timeout.ms`` follow ``append_timeout_s``:
    librdkafka keeps retrying a record that long (through a broker restart), and the
    coordinator aborts a transaction left open by a dead writer after it.
    """
    timeout_ms = int(settings.append_timeout_s * 1000)
    conf = common_config(settings)
    conf.update(
        {
            "linger.ms": settings.linger_ms,
            "compression.type": "none",
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "batch.size": min(settings.record_limit_bytes, 16 * 1024 * 1024),
        }
    )
    conf.update(settings.producer_overrides)
    conf.update(
        {
            "acks": "all",
            "enable.idempotence": True,
            "message.max.bytes": settings.record_limit_bytes,
            "message.timeout.ms": timeout_ms,
            "request.timeout.ms": max(1000, int(settings.request_timeout_s * 1000)),
        }
    )
    if transactional_id is not None:
        conf["transactional.id"] = transactional_id
        # librdkafka requires message.timeout.ms <= transaction.timeout.ms.
        conf["transaction.timeout.ms"] = timeout_ms + 1000
    return conf


def consumer_config(settings: KafkaSettings, *, eof: bool = False) -> dict[str, Any]:
    """A consumer positioned with ``assign``: no group membership, no commits, committed
    records only."""
    conf = common_config(settings)
    conf.update(
        {
            "fetch.wait.max.ms": settings.fetch_wait_max_ms,
            "fetch.error.backoff.ms": 100,
            "auto.offset.reset": "earliest",
            "fetch.max.bytes": max(52_428_800, settings.record_limit_bytes * 2),
            "max.partition.fetch.bytes": max(1_048_576, settings.record_limit_bytes),
            "receive.message.max.bytes": max(100_000_000, settings.record_limit_bytes * 3),
        }
    )
    conf.update(settings.consumer_overrides)
    conf.update(
        {
            # librdkafka insists on a group id; it is never joined nor committed to.
            "group.id": f"walstream-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": eof,
        }
    )
    if eof:  # an end-of-log check: do not let the broker hold the last empty fetch long
        conf["fetch.wait.max.ms"] = 10
    return conf


def admin_config(settings: KafkaSettings) -> dict[str, Any]:
    """An admin client for topic creation, description, offsets and record deletion."""
    return common_config(settings)
