"""One pchannel opened read-write (with an exclusive-with-fencing writer) or read-only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pulsar  # type: ignore[import-untyped]
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

from walstream_pulsar import retry
from walstream_pulsar.client import reader_kwargs
from walstream_pulsar.errors import final_error
from walstream_pulsar.message_id import PulsarMessageID
from walstream_pulsar.scanner import PulsarScanner
from walstream_pulsar.settings import PulsarSettings
from walstream_pulsar.writer import PulsarWriter


class PulsarWAL(WALImpl):
    """A pchannel's topic; RO instances have no writer and refuse append/truncate."""

    def __init__(
        self,
        pchannel: PChannelInfo,
        topic: str,
        settings: PulsarSettings,
        client: pulsar.Client,
        writer: PulsarWriter | None,
        on_close: Callable[[PulsarWAL], None] | None = None,
    ) -> None:
        self._pchannel = pchannel
        self._topic = topic
        self._settings = settings
        self._client = client
        self._writer = writer
        self._on_close = on_close
        self._where = f"pulsar pchannel {pchannel.name!r} (topic {topic!r})"
        self._scanners: set[PulsarScanner] = set()
        self._closed = False
        self._closing: asyncio.Future[None] | None = None
        self._max_bytes = settings.max_message_bytes

    @property
    def wal_name(self) -> str:
        """``"pulsar"``."""
        return PulsarMessageID.wal_name

    @property
    def channel(self) -> PChannelInfo:
        """The pchannel, term and access mode this WAL was opened with."""
        return self._pchannel

    @property
    def topic(self) -> str:
        """The Pulsar topic holding this pchannel."""
        return self._topic

    def _writer_or_refuse(self, what: str) -> PulsarWriter:
        if self._writer is None:
            raise ReadOnlyWALError(
                f"cannot {what} on {self._where}: it was opened read-only (term "
                f"{self._pchannel.term}); open it with AccessMode.RW to write"
            )
        if self._closed:
            raise WALClosedError(f"{self._where} is closed")
        return self._writer

    async def append(self, message: MutableMessage) -> MessageID:
        """Append ``message``; returns its id once the broker persisted it."""
        writer = self._writer_or_refuse("append")
        size = message.size
        if size > self._max_bytes:
            raise MessageTooLargeError(size, self._max_bytes, self._where)
        return await writer.append(message.payload, message.properties)

    async def read(self, option: ReadOption) -> Scanner:
        """Open a scanner (a Reader) at the position the deliver policy names."""
        if self._closed:
            raise WALClosedError(f"{self._where} is closed")
        policy = option.deliver_policy
        inclusive = False
        start: pulsar.MessageId | object
        if isinstance(policy, DeliverAll):
            start = pulsar.MessageId.earliest
        elif isinstance(policy, DeliverLatest):
            start = pulsar.MessageId.latest
        elif isinstance(policy, DeliverStartFrom):
            start = _as_pulsar_id(policy.message_id, "StartFrom").to_pulsar()
            inclusive = True
        elif isinstance(policy, DeliverStartAfter):
            start = _as_pulsar_id(policy.message_id, "StartAfter").to_pulsar()
        else:  # pragma: no cover - the union is closed
            raise TypeError(f"unknown deliver policy {policy!r}")
        kwargs = reader_kwargs(self._settings, option.read_ahead_buffer_size)
        deadline = time.monotonic() + self._settings.open_timeout_s

        def create() -> pulsar.Reader:
            return self._client.create_reader(
                self._topic, start, start_message_id_inclusive=inclusive, **kwargs
            )

        try:
            reader = await asyncio.to_thread(retry.call, create, deadline)
        except pulsar.PulsarException as exc:
            raise final_error(f"opening scanner {option.name!r} on {self._where}", exc) from exc
        if self._closed:
            await asyncio.to_thread(reader.close)
            raise WALClosedError(f"{self._where} was closed during read()")
        scanner = PulsarScanner(
            option.name,
            reader,
            self._topic,
            read_ahead=option.read_ahead_buffer_size,
            on_close=self._scanners.discard,
        )
        self._scanners.add(scanner)
        return scanner

    async def truncate(self, message_id: MessageID) -> None:
        """Move the durable truncation subscription's cursor to ``message_id``: every
        message strictly before it is acknowledged there, so retention may reclaim it."""
        writer = self._writer_or_refuse("truncate")
        if writer.failure is not None:
            raise writer.failure
        mid = _as_pulsar_id(message_id, "truncate").to_pulsar()
        deadline = time.monotonic() + self._settings.open_timeout_s
        subscription = self._settings.truncation_subscription

        def seek() -> None:
            consumer = self._client.subscribe(
                self._topic,
                subscription,
                consumer_type=pulsar.ConsumerType.Shared,
                initial_position=pulsar.InitialPosition.Earliest,
                receiver_queue_size=1,
            )
            try:
                consumer.seek(mid)
            finally:
                consumer.close()

        try:
            await asyncio.to_thread(retry.call, seek, deadline)
        except pulsar.PulsarException as exc:
            raise final_error(f"truncating {self._where}", exc) from exc

    async def close(self) -> None:
        """Wait for appends in flight, close the producer and the scanners; idempotent."""
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
            self._closing.set_result(None)
            if self._on_close is not None:
                self._on_close(self)


def _as_pulsar_id(message_id: MessageID, what: str) -> PulsarMessageID:
    if not isinstance(message_id, PulsarMessageID):
        raise MessageIDMismatchError(
            f"{what} needs a pulsar message id, got {getattr(message_id, 'wal_name', None)!r} "
            f"id {message_id!r}"
        )
    return message_id
