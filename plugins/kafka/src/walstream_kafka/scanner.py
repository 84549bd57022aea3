"""Scanners: one ``read_committed`` consumer each, positioned with ``assign``, on a thread.

The thread (see ``walstream.walimpls.threaded.ThreadedScanner``) creates the consumer,
assigns partition 0 at the start offset fixed by ``read()`` and polls with a short
timeout in a loop, so it notices ``close()`` quickly; the broker answers a fetch as soon
as new committed data exists (``fetch_wait_max_ms`` bounds the wait), which is how tail
reads wake. At most ``read_ahead`` decoded messages wait for the reader, beyond that
the thread pauses.

The scanner owns no asyncio task. ``close()`` stops the thread, wakes a pending
``__anext__`` (which then ends the iteration) and waits, bounded, for the consumer
to be closed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from walstream.errors import MessageDecodeError, WALError
from walstream.message import ImmutableMessage
from walstream.walimpls.threaded import DEFAULT_READ_AHEAD, ThreadedScanner

from walstream_kafka.errors import describe, hint, is_transient
from walstream_kafka.polling import poll_batch
from walstream_kafka.records import CLAIM, parse_key, to_message

__all__ = ["DEFAULT_READ_AHEAD", "KafkaScanner"]

log = logging.getLogger(__name__)

_MAX_BATCH = 500


class KafkaScanner(ThreadedScanner):
    """Async iterator over a pchannel's committed records from a fixed offset."""

    def __init__(
        self,
        name: str,
        config: dict[str, object],
        topic: str,
        start_offset: int,
        *,
        read_ahead: int = 0,
        on_close: Callable[[KafkaScanner], None] | None = None,
    ) -> None:
        """Start a consumer with ``config`` on a thread, reading ``topic`` from ``start_offset``."""
        self._config = config
        self._start = start_offset
        self._consumer: Consumer | None = None
        super().__init__(
            name, backend="kafka", topic=topic, read_ahead=read_ahead, on_close=on_close
        )

    # --- the hooks, on the thread -------------------------------------------------------

    def _open_source(self) -> None:
        consumer = Consumer(self._config)
        self._consumer = consumer
        consumer.assign([TopicPartition(self._topic, 0, self._start)])

    def _close_source(self) -> None:
        if self._consumer is not None:
            self._consumer.close()

    def _read_batch(self) -> list[ImmutableMessage]:
        assert self._consumer is not None
        out: list[ImmutableMessage] = []
        limit = min(self.read_ahead, _MAX_BATCH)
        for msg in poll_batch(self._consumer, limit, self.poll_interval_s):
            err = msg.error()
            if err is not None:
                self._on_error(err)
                continue
            decoded = self._decode(msg)
            if decoded is not None:
                out.append(decoded)
        return out

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._PARTITION_EOF:
            return
        if is_transient(err) or err.code() == KafkaError._AUTO_OFFSET_RESET:
            # librdkafka reconnects and resumes by itself (broker restart, leader move);
            # a position before the log start (truncated while we were behind) restarts
            # at the log start, as ``auto.offset.reset=earliest`` says.
            log.warning("kafka scanner %r on %r: %s", self.name, self._topic, describe(err))
            return
        raise WALError(f"{self._where} failed: {describe(err)}: {hint(err)}") from KafkaException(
            err
        )

    def _decode(self, msg: Message) -> ImmutableMessage | None:
        offset = msg.offset()
        assert offset is not None
        parsed = parse_key(msg.key())
        if parsed is not None and parsed[0] == CLAIM:
            return None  # a writer's claim of the pchannel, not a message
        try:
            return to_message(offset, msg.value(), msg.headers())
        except MessageDecodeError as exc:
            raise WALError(
                f"record at offset {offset} of topic {self._topic!r} is not a walstream "
                f"message: {exc}"
            ) from exc
