"""Scanners: one ``read_committed`` consumer each, positioned with ``assign``, on a thread.

The thread creates the consumer, assigns partition 0 at the start offset fixed by
``read()`` and calls ``consume`` with a short timeout in a loop, so it notices
``close()`` quickly; the broker answers a fetch as soon as new committed data exists
(``fetch_wait_max_ms`` bounds the wait), which is how tail reads wake. Decoded
messages are handed to the event loop in batches with ``call_soon_threadsafe``; at
most ``read_ahead`` of them wait there, beyond that the thread pauses.

The scanner owns no asyncio task. ``close()`` stops the thread, wakes a pending
``__anext__`` (which then ends the iteration) and waits, bounded, for the consumer
to be closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from walstream.errors import MessageDecodeError, WALError, WalstreamError
from walstream.message import ImmutableMessage
from walstream.walimpls import Scanner

from walstream_kafka.errors import describe, hint, is_transient
from walstream_kafka.polling import poll_batch
from walstream_kafka.records import CLAIM, parse_key, to_message

log = logging.getLogger(__name__)

DEFAULT_READ_AHEAD = 1024
_POLL_S = 0.05
_CLOSE_WAIT_S = 10.0


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class KafkaScanner(Scanner):
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
        super().__init__(name)
        self._config = config
        self._topic = topic
        self._start = start_offset
        self._read_ahead = read_ahead if read_ahead > 0 else DEFAULT_READ_AHEAD
        self._on_close = on_close
        self._loop = asyncio.get_running_loop()
        self._items: deque[ImmutableMessage] = deque()
        self._failure: BaseException | None = None
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None
        # Shared with the thread.
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self._buffered = 0
        self._stop = threading.Event()
        self._stopped: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._run, name=f"walstream-kafka-scanner[{topic}:{name}]", daemon=True
        )
        self._thread.start()

    # --- the asyncio side ----------------------------------------------------------

    async def __anext__(self) -> ImmutableMessage:
        while True:
            if self._items:
                msg = self._items.popleft()
                with self._lock:
                    self._buffered -= 1
                    if self._buffered <= self._read_ahead // 2:
                        self._space.notify()
                return msg
            if self._failure is not None and self._error is None:
                self._error = self._failure
                raise self._failure
            if self._closed or self._error is not None:
                raise StopAsyncIteration
            waiter = self._loop.create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None

    async def close(self) -> None:
        """Stop the consumer thread; a pending ``__anext__`` ends the iteration."""
        if not self._closed:
            self._closed = True
            self._items.clear()
            self._stop.set()
            with self._lock:
                self._space.notify_all()
            if self._waiter is not None:
                _wake(self._waiter)
            if self._on_close is not None:
                self._on_close(self)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._stopped), _CLOSE_WAIT_S)

    def _deliver(self, batch: list[ImmutableMessage]) -> None:
        if self._closed:
            return
        self._items.extend(batch)
        if self._waiter is not None:
            _wake(self._waiter)

    def _fail(self, exc: BaseException) -> None:
        self._failure = exc
        if self._waiter is not None:
            _wake(self._waiter)

    # --- the thread --------------------------------------------------------------------

    def _post(self, callback: Callable[..., None], *args: object) -> bool:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
            return True
        except RuntimeError:  # the event loop is closed: nobody reads any more
            self._stop.set()
            return False

    def _run(self) -> None:
        consumer: Consumer | None = None
        try:
            consumer = Consumer(self._config)
            consumer.assign([TopicPartition(self._topic, 0, self._start)])
            while not self._stop.is_set():
                with self._lock:
                    while self._buffered >= self._read_ahead and not self._stop.is_set():
                        self._space.wait(_POLL_S)
                if self._stop.is_set():
                    break
                batch = self._poll(consumer)
                if batch:
                    with self._lock:
                        self._buffered += len(batch)
                    self._post(self._deliver, batch)
        except WalstreamError as exc:
            self._post(self._fail, exc)
        except Exception as exc:
            log.exception("kafka scanner %r on %r failed", self.name, self._topic)
            self._post(
                self._fail,
                WALError(f"kafka scanner {self.name!r} on topic {self._topic!r} failed: {exc!r}"),
            )
        finally:
            if consumer is not None:
                with contextlib.suppress(Exception):
                    consumer.close()
            self._post(_wake, self._stopped)

    def _poll(self, consumer: Consumer) -> list[ImmutableMessage]:
        out: list[ImmutableMessage] = []
        for msg in poll_batch(consumer, min(self._read_ahead, 500), _POLL_S):
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
        raise WALError(
            f"kafka scanner {self.name!r} on topic {self._topic!r} failed: {describe(err)}: "
            f"{hint(err)}"
        ) from KafkaException(err)

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
