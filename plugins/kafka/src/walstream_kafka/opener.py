"""The opener: one admin client for a cluster, and the pchannels opened on it."""

from __future__ import annotations

import asyncio
import time

from confluent_kafka import KafkaException
from walstream.errors import WALClosedError, WALError
from walstream.walimpls import AccessMode, Capabilities, Opener, PChannelInfo, WALImpl

from walstream_kafka import retry
from walstream_kafka.config import admin_config
from walstream_kafka.errors import KafkaUnavailableError, final_error
from walstream_kafka.kadmin import Admin
from walstream_kafka.naming import topic_name
from walstream_kafka.settings import KafkaSettings
from walstream_kafka.takeover import take_over
from walstream_kafka.topics import ensure_topic
from walstream_kafka.wal import KafkaWAL
from walstream_kafka.writer import TxnWriter

# Slack over open_timeout_s for the worker threads' own deadlines to fire first.
_GRACE_S = 5.0


class KafkaOpener(Opener):
    """Opens pchannels as single-partition topics of one Kafka cluster."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._admin = Admin(admin_config(settings))
        self._wals: set[KafkaWAL] = set()
        self._closed = False
        self._capabilities = Capabilities(
            max_message_bytes=settings.max_message_bytes,
            durable_across_processes=True,
            fencing=True,
            tail_read=True,
        )

    @property
    def capabilities(self) -> Capabilities:
        """Durable, fenced, tail-readable; the configured size limit."""
        return self._capabilities

    @property
    def settings(self) -> KafkaSettings:
        """The settings this opener was built with."""
        return self._settings

    async def open(self, pchannel: PChannelInfo) -> WALImpl:
        """Open ``pchannel``: RW creates the topic if needed and fences lower terms."""
        if self._closed:
            raise WALClosedError("this kafka opener is closed")
        if not isinstance(pchannel, PChannelInfo):
            raise TypeError(f"open() takes a PChannelInfo, got {type(pchannel).__name__}")
        settings = self._settings
        topic = topic_name(settings.topic_prefix, pchannel.name)
        admin = self._admin
        rw = pchannel.access_mode is AccessMode.RW
        deadline = time.monotonic() + settings.open_timeout_s
        what = f"opening kafka pchannel {pchannel.name!r} (topic {topic!r}, term {pchannel.term})"
        try:
            async with asyncio.timeout(settings.open_timeout_s + _GRACE_S):
                await ensure_topic(admin, settings, topic, create=rw, deadline=deadline)
                writer = None
                if rw:
                    producer = await asyncio.to_thread(
                        take_over, settings, topic, pchannel.name, pchannel.term, deadline
                    )
                    writer = TxnWriter(
                        producer,
                        topic,
                        pchannel.term,
                        settings,
                        f"kafka pchannel {pchannel.name!r}",
                    )
        except TimeoutError:
            raise self._unavailable(what, None) from None
        except KafkaException as exc:
            if retry.retryable(exc):
                raise self._unavailable(what, exc) from exc
            raise final_error(what, exc) from exc
        except KafkaUnavailableError as exc:
            raise self._unavailable(what, exc) from exc
        wal = KafkaWAL(pchannel, topic, settings, admin, writer, on_close=self._wals.discard)
        if self._closed:  # closed while this open was in progress
            await wal.close()
            raise WALClosedError("this kafka opener was closed during open()")
        self._wals.add(wal)
        return wal

    def _unavailable(self, what: str, exc: BaseException | None) -> WALError:
        detail = f" (last error: {exc})" if exc is not None else ""
        return KafkaUnavailableError(
            f"{what}: no answer from the Kafka cluster at {self._settings.bootstrap_servers} "
            f"within open_timeout_s={self._settings.open_timeout_s}s{detail}. Check that the "
            f"brokers are running and reachable and that bootstrap_servers and "
            f"security_protocol are right"
        )

    async def close(self) -> None:
        """Close every WAL opened here; idempotent."""
        self._closed = True
        for wal in list(self._wals):
            await wal.close()
        self._admin.close()
