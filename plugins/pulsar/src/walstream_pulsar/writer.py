"""The writer: pipelined appends through one exclusive-with-fencing producer.

``append`` calls ``send_async`` on the event loop (it only queues the message in the
client; the client's I/O thread batches and sends it) and awaits an asyncio future
that the send callback, run on a pulsar-client thread, resolves through
``loop.call_soon_threadsafe`` (one wake-up per group of callbacks, not per message). Up
to ``max_pending_messages`` appends are in flight at once (an ``asyncio.Semaphore``, so
the client's own queue never overflows and
``send_async`` never blocks); each costs no round trip of its own.

Outcomes, by class (``errors``):

- ``Ok``: the broker persisted the message (journal synced by the bookie); its id is
  returned. An ``Ok`` without a position is a resend after a reconnect that the broker
  deduplicated (it had stored the message before the drop): ``dedup`` finds its id.
- ``ProducerFenced``: an opener at another term created an exclusive-with-fencing
  producer; this and every later append fail with ``FencedError``. The broker refuses
  everything this producer sends after that, so none of these appends is visible.
- anything else (``Timeout`` after ``append_timeout_s``, ...): that append fails with
  a ``PulsarWALError`` naming what to fix; the writer carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Mapping
from functools import partial

import pulsar  # type: ignore[import-untyped]
from walstream.errors import FencedError, WALClosedError, WALError

from walstream_pulsar.dedup import DuplicateLocator
from walstream_pulsar.errors import (
    PulsarUnavailableError,
    PulsarWALError,
    error_name,
    final_error,
    is_fenced,
)
from walstream_pulsar.message_id import PulsarMessageID
from walstream_pulsar.records import DATA, record_key

log = logging.getLogger(__name__)


class PulsarWriter:
    """Owns a producer that already fenced the earlier writers and sent its claim."""

    def __init__(
        self,
        producer: pulsar.Producer,
        term: int,
        where: str,
        max_pending: int,
        append_timeout_s: float,
        duplicates: DuplicateLocator | None = None,
    ) -> None:
        """``duplicates`` finds the ids of resends the broker deduplicated (without it,
        such an append fails with a ``PulsarWALError`` saying it is stored)."""
        self._producer = producer
        self._duplicates = duplicates
        self._key = record_key(DATA, term)
        self._where = where
        self._max_pending = max_pending
        self._append_timeout_s = append_timeout_s
        self._slots: asyncio.Semaphore | None = None
        self._failure: WALError | None = None
        self._closed = False
        self._outcomes: deque[
            tuple[asyncio.Future[PulsarMessageID], bytes, dict[str, str], pulsar.Result, object]
        ] = deque()
        self._wake_scheduled = False

    @property
    def failure(self) -> WALError | None:
        """Why this writer can no longer append (fenced), if so."""
        return self._failure

    @property
    def producer(self) -> pulsar.Producer:
        """The producer."""
        return self._producer

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise WALClosedError(f"{self._where} is closed")

    async def append(self, payload: bytes, properties: Mapping[str, str]) -> PulsarMessageID:
        """Send one message; its id once the broker persisted it."""
        self._check()
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max_pending)
        async with self._slots:
            self._check()
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[PulsarMessageID] = loop.create_future()
            props = dict(properties)
            sent = partial(self._sent, loop, fut, payload, props)
            try:
                self._producer.send_async(payload, sent, properties=props, partition_key=self._key)
            except pulsar.PulsarException as exc:
                raise self._error(exc) from exc
            return await fut

    def _sent(
        self,
        loop: asyncio.AbstractEventLoop,
        fut: asyncio.Future[PulsarMessageID],
        payload: bytes,
        properties: dict[str, str],
        result: pulsar.Result,
        mid: object,
    ) -> None:
        """The send callback, on a pulsar-client thread: queue the outcome and wake the
        loop once for all outcomes queued until it drains them (a batch's callbacks arrive
        together, so one wake-up settles the whole batch)."""
        self._outcomes.append((fut, payload, properties, result, mid))
        if not self._wake_scheduled:
            self._wake_scheduled = True
            try:
                loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # the loop closed: nobody waits any more
                self._wake_scheduled = False

    def _drain(self) -> None:
        self._wake_scheduled = False  # before draining: a later outcome schedules again
        outcomes = self._outcomes
        while outcomes:
            self._settle(*outcomes.popleft())

    def _settle(
        self,
        fut: asyncio.Future[PulsarMessageID],
        payload: bytes,
        properties: dict[str, str],
        result: pulsar.Result,
        mid: object,
    ) -> None:
        # Positions are tracked even for callers that stopped waiting: a later resend's
        # id is found from the position before it.
        if result == pulsar.Result.Ok:
            try:
                stored = PulsarMessageID.from_receipt(mid)
            except ValueError as exc:  # no position: a resend the broker deduplicated
                if self._duplicates is not None:
                    self._duplicates.duplicate(fut, payload, properties)
                elif not fut.done():
                    fut.set_exception(
                        PulsarWALError(
                            f"append to {self._where} was acknowledged without a message id "
                            f"({mid}); the message is stored but its id is unknown: {exc}"
                        )
                    )
                return
            if self._duplicates is not None:
                self._duplicates.stored(stored)
            if not fut.done():
                fut.set_result(stored)
            return
        if not fut.done():
            fut.set_exception(self._error(result))

    def _error(self, err: BaseException | pulsar.Result) -> WALError:
        if is_fenced(err):
            if self._failure is None:
                self._failure = FencedError(
                    f"append to {self._where}: a writer of another term took the pchannel "
                    f"(ProducerFenced); this WAL may never append again: close it"
                )
            return self._failure
        if error_name(err) == "Timeout":
            return PulsarUnavailableError(
                f"append to {self._where} was not acknowledged within append_timeout_s="
                f"{self._append_timeout_s}s (it may still have been stored); check that the "
                f"brokers are running and reachable",
                "Timeout",
            )
        if error_name(err) == "AlreadyClosed":
            return WALClosedError(f"{self._where} is closed")
        return final_error(f"append to {self._where}", err)

    async def close(self) -> None:
        """Wait for the appends in flight (bounded by ``append_timeout_s``), then close."""
        if self._closed:
            return
        self._closed = True
        producer = self._producer

        def shut() -> None:
            if self._failure is None:
                try:
                    producer.flush()
                except pulsar.PulsarException as exc:
                    log.info("%s: flush at close: %r", self._where, exc)
            try:
                producer.close()
            except pulsar.PulsarException as exc:
                log.info("%s: producer close: %r", self._where, exc)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.to_thread(shut), self._append_timeout_s + 10.0)
        if self._duplicates is not None:
            self._drain()  # receipts posted by the flush: resends among them are located now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._duplicates.close(), self._append_timeout_s + 10.0)
