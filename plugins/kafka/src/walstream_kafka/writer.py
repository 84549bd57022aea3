"""The writer: group commit of appends into Kafka transactions, on a thread of its own.

librdkafka's producer API blocks, so one thread per RW WAL owns the transactional
producer. ``append`` puts a ``Pending`` on a queue and awaits its asyncio future; the
thread loops:

1. wait for the first pending append, ``begin_transaction``;
2. ``produce`` it and every further append that arrives within ``commit_interval_ms``
   (up to ``commit_max_messages`` / ``commit_max_bytes``); records flow to the broker
   while the transaction is open (``linger_ms`` batching);
3. ``commit_transaction``: all records are acknowledged by every in-sync replica
   (``acks=all``, idempotent) and the transaction is committed; only then are the
   futures resolved, in one ``call_soon_threadsafe`` per batch.

Many appends are thus in flight at once and each transaction costs one commit round
trip. Errors, by class (see ``errors``):

- fenced: a newer term's ``init_transactions`` took the transactional id. The batch and
  every later append fail with ``FencedError``; the coordinator aborted the
  transaction, so none of these records is ever visible to ``read_committed`` readers.
  A commit that races the takeover may fail with another error first; the abort that
  follows then reports the fence, and the batch is fenced all the same.
- abortable (a record failed, e.g. delivery timed out while a broker was down): the
  transaction is aborted (its records become invisible) and the batch is produced
  again in a new transaction, at most ``_MAX_ATTEMPTS`` times.
- retriable commit (e.g. the coordinator moved or timed out): the commit is retried;
  librdkafka resumes it, so nothing is written twice.
- fatal: the batch and every later append fail with a ``KafkaWALError``.

An append that is not acknowledged within ``append_timeout_s`` fails on the asyncio
side (``KafkaUnavailableError``); if its record was never produced it never will be.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from walstream.errors import MessageTooLargeError, WALClosedError, WALError

from walstream_kafka.errors import (
    KafkaWALError,
    describe,
    final_error,
    hint,
    is_fenced,
    is_transient,
    kafka_error,
)
from walstream_kafka.message_id import KafkaMessageID
from walstream_kafka.records import DATA, Headers, record_key
from walstream_kafka.settings import KafkaSettings

log = logging.getLogger(__name__)

_MAX_ATTEMPTS = 5
_POLL_EVERY = 256
_IDLE_WAIT_S = 0.2
_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})


@dataclass(slots=True, eq=False)
class Pending:
    """One append waiting for its transaction to commit."""

    value: bytes
    headers: Headers
    size: int
    future: asyncio.Future[KafkaMessageID]
    loop: asyncio.AbstractEventLoop
    offset: int = -1
    error: KafkaError | None = None
    produced: bool = False
    attempts: int = 0

    def abandoned(self) -> bool:
        """The caller stopped waiting (timeout or cancellation) before it was produced."""
        return self.future.done()


def _settle(
    items: list[tuple[asyncio.Future[KafkaMessageID], KafkaMessageID | BaseException]],
) -> None:
    for fut, outcome in items:
        if fut.done():
            continue
        if isinstance(outcome, BaseException):
            fut.set_exception(outcome)
        else:
            fut.set_result(outcome)


class TxnWriter:
    """Owns a transactional producer that already ran ``init_transactions`` and its claim."""

    def __init__(
        self,
        producer: Producer,
        topic: str,
        term: int,
        settings: KafkaSettings,
        where: str,
    ) -> None:
        self._producer: Producer | None = producer
        self._topic = topic
        self._key = record_key(DATA, term)
        self._where = where
        self._interval_s = settings.commit_interval_ms / 1000.0
        self._max_messages = settings.commit_max_messages
        self._max_bytes = settings.commit_max_bytes
        self._commit_slice_s = max(1.0, settings.request_timeout_s)
        self._close_grace_s = settings.append_timeout_s
        self._record_limit = settings.record_limit_bytes
        self._queue: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()
        self._carry: deque[Pending] = deque()
        self._stopping = False
        self._stop_deadline = float("inf")
        self._failure: WALError | None = None
        self._done = threading.Event()
        self._on_done: list[Callable[[], None]] = []
        self._thread = threading.Thread(
            target=self._run, name=f"walstream-kafka-writer[{topic}]", daemon=True
        )

    # --- the asyncio side --------------------------------------------------------------

    @property
    def failure(self) -> WALError | None:
        """Why this writer can no longer append (fenced or failed), if so."""
        return self._failure

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def submit(self, pending: Pending) -> None:
        """Queue an append; raises at once if the writer is fenced, failed or closed."""
        if self._failure is not None:
            raise self._failure
        if self._stopping:
            raise WALClosedError(f"{self._where} is closed")
        self._queue.put(pending)

    async def close(self) -> None:
        """Commit what is queued (bounded by ``append_timeout_s``), then stop the producer."""
        if not self._stopping:
            self._stopping = True
            self._stop_deadline = time.monotonic() + self._close_grace_s
            self._queue.put(None)
        if self._done.is_set() or not self._thread.is_alive():
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(_finish, done)

        self._on_done.append(wake)
        if self._done.is_set():
            _finish(done)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(done), self._close_grace_s + 10.0)

    # --- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                batch = self._transaction()
                if batch is None:
                    break
        except BaseException as exc:  # a bug here must not leave appends waiting forever
            log.exception("%s: the writer thread failed", self._where)
            self._fail_for_good(KafkaWALError(f"{self._where}: the writer failed: {exc!r}"))
        finally:
            self._shutdown()

    def _next(self, wait_s: float | None) -> Pending | None:
        """The next live pending append (carried over first); None if none comes in time."""
        while True:
            item: Pending | None
            if self._carry:
                item = self._carry.popleft()
            else:
                try:
                    item = (
                        self._queue.get_nowait()
                        if wait_s is None or wait_s <= 0
                        else self._queue.get(timeout=wait_s)
                    )
                except queue.Empty:
                    return None
                if item is None:  # the close() sentinel: drain what is queued, then stop
                    self._stopping = True
                    wait_s = None
                    continue
            if item.abandoned():
                continue
            return item

    def _transaction(self) -> list[Pending] | None:
        """Run one transaction; None when the writer should stop."""
        first = None
        while first is None:
            first = self._next(None if self._stopping else _IDLE_WAIT_S)
            if first is None and self._stopping:
                return None
        producer = self._producer
        assert producer is not None
        batch: list[Pending] = []
        try:
            producer.begin_transaction()
            size = 0
            item: Pending | None = first
            deadline = time.monotonic() + self._interval_s
            while item is not None:
                if self._produce(producer, item):
                    batch.append(item)
                    size += item.size
                if len(batch) >= self._max_messages or size >= self._max_bytes:
                    break
                if len(batch) % _POLL_EVERY == 0:
                    producer.poll(0)
                item = self._next(None)
                if item is None:
                    left = deadline - time.monotonic()
                    if left > 0 and not self._stopping:
                        item = self._next(left)
            self._commit(producer, batch)
        except KafkaException as exc:
            self._transaction_failed(producer, batch, exc)
            return batch
        self._settle_committed(batch)
        return batch

    def _produce(self, producer: Producer, item: Pending) -> bool:
        """Hand one record to librdkafka; False if it was refused on its own."""
        item.offset, item.error = -1, None
        item.attempts += 1
        while True:
            try:
                producer.produce(
                    self._topic,
                    value=item.value,
                    key=self._key,
                    partition=0,
                    headers=item.headers,
                    on_delivery=partial(_delivered, item),
                )
                item.produced = True
                return True
            except BufferError:
                producer.poll(0.05)  # librdkafka's queue is full: let deliveries drain
            except KafkaException as exc:
                err = kafka_error(exc)
                if err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                    self._settle_one(
                        item,
                        MessageTooLargeError(item.size, self._record_limit, self._where),
                    )
                    return False
                raise

    def _commit(self, producer: Producer, batch: list[Pending]) -> None:
        """Commit, retrying what librdkafka says may be retried (it resumes the commit)."""
        while True:
            try:
                producer.commit_transaction(self._commit_slice_s)
                return
            except KafkaException as exc:
                err = kafka_error(exc)
                if (
                    err is None
                    or err.fatal()
                    or err.txn_requires_abort()
                    or not (err.retriable() or err.code() == KafkaError._TIMED_OUT)
                ):
                    raise
                if self._stopping and time.monotonic() > self._stop_deadline:
                    raise
                log.warning(
                    "%s: commit not confirmed yet (%s); retrying", self._where, describe(err)
                )

    def _transaction_failed(
        self, producer: Producer, batch: list[Pending], exc: KafkaException
    ) -> None:
        err = kafka_error(exc)
        if err is not None and is_fenced(err):
            self._fail_for_good(final_error(f"append to {self._where}", exc), batch)
            return
        if err is None or err.fatal():
            self._fail_for_good(
                KafkaWALError(
                    f"{self._where}: the producer failed fatally: "
                    f"{describe(err) if err else repr(exc)}; close and reopen the WAL",
                    err.code() if err else None,
                ),
                batch,
            )
            return
        log.warning(
            "%s: aborting a transaction of %d records: %s", self._where, len(batch), describe(err)
        )
        abort_error = self._abort(producer)
        if abort_error is not None:
            # A commit racing a newer writer's takeover fails with whatever the coordinator
            # says (Kafka 4 answers UNKNOWN or INVALID_TXN_STATE, see KAFKA-20785) and only the
            # abort then reports the fence. The takeover rolled the transaction back, so the
            # batch is refused as fenced: the caller must not see a non-final error for it.
            failure = (
                final_error(f"append to {self._where}", abort_error)
                if is_fenced(abort_error)
                else KafkaWALError(
                    f"{self._where}: could not abort a failed transaction: {describe(err)}"
                )
            )
            self._fail_for_good(failure, batch)
            return
        # Aborted: nothing of the batch is visible. Records that failed on their own for a
        # final reason fail; the others go again, first, in their order.
        again: list[Pending] = []
        for item in batch:
            derr = item.error
            if derr is not None and derr.code() not in _PURGED and not is_transient(derr):
                self._settle_one(
                    item,
                    KafkaWALError(
                        f"append to {self._where} failed: {describe(derr)}: {hint(derr)}",
                        derr.code(),
                    ),
                )
            elif item.attempts >= _MAX_ATTEMPTS:
                self._settle_one(
                    item,
                    KafkaWALError(
                        f"append to {self._where} failed {item.attempts} times, last: "
                        f"{describe(derr or err)}"
                    ),
                )
            elif not item.abandoned():
                again.append(item)
        self._carry.extendleft(reversed(again))

    def _abort(self, producer: Producer) -> KafkaException | None:
        """Abort the open transaction; the error that stopped it, or None once aborted."""
        while True:
            try:
                producer.abort_transaction(self._commit_slice_s)
                return None
            except KafkaException as exc:
                err = kafka_error(exc)
                if is_fenced(err) or err is None or err.fatal() or not is_transient(err):
                    return exc
                if self._stopping and time.monotonic() > self._stop_deadline:
                    return exc

    # --- outcomes --------------------------------------------------------------------------

    def _settle_committed(self, batch: list[Pending]) -> None:
        outcomes: dict[
            asyncio.AbstractEventLoop,
            list[tuple[asyncio.Future[KafkaMessageID], KafkaMessageID | BaseException]],
        ] = {}
        for item in batch:
            result: KafkaMessageID | BaseException
            if item.offset >= 0 and item.error is None:
                result = KafkaMessageID(item.offset)
            else:  # committed without a delivery report: cannot happen, never ack blindly
                result = KafkaWALError(f"{self._where}: committed without a delivery report")
            outcomes.setdefault(item.loop, []).append((item.future, result))
        for loop, items in outcomes.items():
            _post(loop, items)

    def _settle_one(self, item: Pending, exc: BaseException) -> None:
        _post(item.loop, [(item.future, exc)])

    def _fail_for_good(self, failure: WALError, batch: list[Pending] | None = None) -> None:
        if self._failure is None:
            self._failure = failure
        for item in batch or ():
            self._settle_one(item, failure)
        self._drain(failure)

    def _drain(self, failure: BaseException) -> None:
        while self._carry:
            self._settle_one(self._carry.popleft(), failure)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self._settle_one(item, failure)

    def _shutdown(self) -> None:
        self._stopping = True
        self._drain(self._failure or WALClosedError(f"{self._where} was closed"))
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.flush(1.0)
        del producer  # librdkafka destroys the client when the last reference goes
        self._done.set()
        for callback in self._on_done:
            callback()


def _delivered(item: Pending, err: KafkaError | None, msg: Message) -> None:
    if err is not None:
        item.error = err
    else:
        offset = msg.offset()
        item.offset = -1 if offset is None else offset


def _post(
    loop: asyncio.AbstractEventLoop,
    items: list[tuple[asyncio.Future[KafkaMessageID], KafkaMessageID | BaseException]],
) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
        loop.call_soon_threadsafe(_settle, items)


def _finish(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
