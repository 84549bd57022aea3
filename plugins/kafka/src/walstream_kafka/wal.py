"""One pchannel opened read-write (with a transactional writer) or read-only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from confluent_kafka import IsolationLevel, KafkaError, KafkaException, TopicPartition
from walstream.errors import (
    MessageIDMismatchError,
    MessageTooLargeError,
    ReadOnlyWALError,
    WALClosedError,
)
from walstream.message import MessageID, MutableMessage
from walstream.walimpls import (
    DeliverAll,
    DeliverLatest,
    DeliverStartAfter,
    DeliverStartFrom,
    PChannelInfo,
    ReadOption,
    Scanner,
    WALImpl,
)

from walstream_kafka import retry
from walstream_kafka.config import consumer_config
from walstream_kafka.deadlines import AppendDeadlines
from walstream_kafka.errors import KafkaUnavailableError, KafkaWALError, final_error, kafka_error
from walstream_kafka.kadmin import Admin, OffsetSpec
from walstream_kafka.message_id import KafkaMessageID
from walstream_kafka.records import record_size, to_headers
from walstream_kafka.scanner import KafkaScanner
from walstream_kafka.settings import KafkaSettings
from walstream_kafka.writer import Pending, TxnWriter


class KafkaWAL(WALImpl):
    """A pchannel's topic; RO instances have no writer and refuse append/truncate."""

    def __init__(
        self,
        pchannel: PChannelInfo,
        topic: str,
        settings: KafkaSettings,
        admin: Admin,
        writer: TxnWriter | None,
        on_close: Callable[[KafkaWAL], None] | None = None,
    ) -> None:
        self._pchannel = pchannel
        self._topic = topic
        self._settings = settings
        self._admin = admin
        self._writer = writer
        self._on_close = on_close
        self._where = f"kafka pchannel {pchannel.name!r} (topic {topic!r})"
        self._scanners: set[KafkaScanner] = set()
        self._closed = False
        self._closing: asyncio.Future[None] | None = None
        self._max_bytes = settings.max_message_bytes
        self._record_limit = settings.record_limit_bytes
        self._deadlines = AppendDeadlines(settings.append_timeout_s, self._timed_out)
        if writer is not None:
            writer.start()

    @property
    def wal_name(self) -> str:
        """``"kafka"``."""
        return KafkaMessageID.wal_name

    @property
    def channel(self) -> PChannelInfo:
        """The pchannel, term and access mode this WAL was opened with."""
        return self._pchannel

    @property
    def topic(self) -> str:
        """The Kafka topic holding this pchannel."""
        return self._topic

    def _writer_or_refuse(self, what: str) -> TxnWriter:
        if self._writer is None:
            raise ReadOnlyWALError(
                f"cannot {what} on {self._where}: it was opened read-only (term "
                f"{self._pchannel.term}); open it with AccessMode.RW to write"
            )
        if self._closed:
            raise WALClosedError(f"{self._where} is closed")
        return self._writer

    def _check_open(self) -> None:
        if self._closed:
            raise WALClosedError(f"{self._where} is closed")

    async def append(self, message: MutableMessage) -> MessageID:
        """Append ``message``; returns its id once its transaction is committed."""
        writer = self._writer_or_refuse("append")
        size = message.size
        if size > self._max_bytes:
            raise MessageTooLargeError(size, self._max_bytes, self._where)
        headers = to_headers(message)
        record = record_size(size, len(headers))
        if record > self._record_limit:
            raise MessageTooLargeError(record, self._record_limit, self._where)
        loop = asyncio.get_running_loop()
        pending = Pending(message.payload, headers, record, loop.create_future(), loop)
        writer.submit(pending)
        self._deadlines.watch(pending)
        return await pending.future

    def _timed_out(self, pending: Pending) -> BaseException:
        state = (
            "its record was handed to Kafka, so it may still become visible"
            if pending.produced
            else "it was never written"
        )
        return KafkaUnavailableError(
            f"append to {self._where} was not acknowledged within append_timeout_s="
            f"{self._settings.append_timeout_s}s ({state}); check that the brokers are "
            f"running and reachable"
        )

    async def read(self, option: ReadOption) -> Scanner:
        """Open a scanner at the offset the deliver policy names."""
        self._check_open()
        policy = option.deliver_policy
        if isinstance(policy, DeliverAll):
            start = await self._list_offset(OffsetSpec.earliest(), "start")  # type: ignore[no-untyped-call]
        elif isinstance(policy, DeliverLatest):
            start = await self._list_offset(OffsetSpec.latest(), "end")  # type: ignore[no-untyped-call]
        elif isinstance(policy, DeliverStartFrom):
            start = _as_kafka_id(policy.message_id, "StartFrom").offset
        elif isinstance(policy, DeliverStartAfter):
            start = _as_kafka_id(policy.message_id, "StartAfter").offset + 1
        else:  # pragma: no cover - the union is closed
            raise TypeError(f"unknown deliver policy {policy!r}")
        scanner = KafkaScanner(
            option.name,
            consumer_config(self._settings),
            self._topic,
            start,
            read_ahead=option.read_ahead_buffer_size,
            on_close=self._scanners.discard,
        )
        self._scanners.add(scanner)
        return scanner

    async def _list_offset(self, spec: OffsetSpec, what: str) -> int:
        """The log start offset, or the last stable offset (where the next committed record
        will be), resolved now, so a scanner starts exactly there.

        (Assigning librdkafka's logical BEGINNING/END offsets instead makes the consumer
        resolve them itself, after an offset-query timer of half a second.)
        """
        deadline = time.monotonic() + self._settings.open_timeout_s

        async def ask() -> int:
            tp = TopicPartition(self._topic, 0)
            futures = self._admin.client.list_offsets(
                {tp: spec},
                isolation_level=IsolationLevel.READ_COMMITTED,
                request_timeout=self._settings.request_timeout_s,
            )
            info = await asyncio.wrap_future(next(iter(futures.values())))
            return int(info.offset)

        try:
            return await retry.acall(ask, deadline, self._admin.renew)
        except KafkaException as exc:
            raise final_error(f"finding the {what} of {self._where}", exc) from exc

    async def truncate(self, message_id: MessageID) -> None:
        """Delete every record strictly before ``message_id`` (Kafka DeleteRecords)."""
        writer = self._writer_or_refuse("truncate")
        if writer.failure is not None:
            raise writer.failure
        offset = _as_kafka_id(message_id, "truncate").offset
        deadline = time.monotonic() + self._settings.open_timeout_s

        async def delete() -> None:
            tp = TopicPartition(self._topic, 0, offset)
            futures = self._admin.client.delete_records(
                [tp],
                request_timeout=self._settings.request_timeout_s,
                operation_timeout=self._settings.request_timeout_s,
            )
            await asyncio.wrap_future(next(iter(futures.values())))

        try:
            await retry.acall(delete, deadline, self._admin.renew)
        except KafkaException as exc:
            err = kafka_error(exc)
            if err is not None and err.code() == KafkaError.OFFSET_OUT_OF_RANGE:
                raise KafkaWALError(
                    f"cannot truncate {self._where} at offset {offset}: it is beyond the end of "
                    f"the log (truncate only at ids this pchannel returned)",
                    err.code(),
                ) from exc
            raise final_error(f"truncating {self._where}", exc) from exc

    async def close(self) -> None:
        """Commit pending appends, stop the writer, close scanners; idempotent."""
        if self._closing is not None:
            await asyncio.shield(self._closing)
            return
        self._closed = True
        self._closing = asyncio.get_running_loop().create_future()
        try:
            await asyncio.gather(*(s.close() for s in list(self._scanners)))
            if self._writer is not None:
                await self._writer.close()
        finally:
            self._deadlines.cancel()
            self._closing.set_result(None)
            if self._on_close is not None:
                self._on_close(self)


def _as_kafka_id(message_id: MessageID, what: str) -> KafkaMessageID:
    if not isinstance(message_id, KafkaMessageID):
        raise MessageIDMismatchError(
            f"{what} needs a kafka message id, got {getattr(message_id, 'wal_name', None)!r} "
            f"id {message_id!r}"
        )
    return message_id
