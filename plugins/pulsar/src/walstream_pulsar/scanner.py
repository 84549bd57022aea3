"""Scanners: one pulsar Reader each, read on a thread of its own.

``read()`` creates the Reader (so its start position is fixed when ``read()``
returns); the scanner's thread calls ``read_next`` with a short timeout in a loop, so
it notices ``close()`` quickly. ``read_next`` returns as soon as a message arrives (the
broker pushes messages to the reader's queue), which is how tail reads wake without
polling delays. Decoded messages are handed to the event loop in batches with
``call_soon_threadsafe``; at most ``read_ahead`` of them wait there, beyond that the
thread pauses.

The scanner owns no asyncio task. ``close()`` stops the thread, wakes a pending
``__anext__`` (which then ends the iteration) and waits, bounded, for the reader to be
closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable

import pulsar  # type: ignore[import-untyped]
from walstream.errors import MessageDecodeError, WALError, WalstreamError
from walstream.message import ImmutableMessage
from walstream.walimpls import Scanner

from walstream_pulsar.errors import error_name, hint, is_transient
from walstream_pulsar.message_id import PulsarMessageID
from walstream_pulsar.records import CLAIM, parse_key, to_message

log = logging.getLogger(__name__)

DEFAULT_READ_AHEAD = 1024
_WAIT_MS = 50
_BATCH = 256
_CLOSE_WAIT_S = 10.0


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class PulsarScanner(Scanner):
    """Async iterator over a pchannel's messages from the Reader's start position."""

    def __init__(
        self,
        name: str,
        reader: pulsar.Reader,
        topic: str,
        *,
        read_ahead: int = 0,
        on_close: Callable[[PulsarScanner], None] | None = None,
    ) -> None:
        super().__init__(name)
        self._reader = reader
        self._topic = topic
        self._read_ahead = read_ahead if read_ahead > 0 else DEFAULT_READ_AHEAD
        self._on_close = on_close
        self._loop = asyncio.get_running_loop()
        self._items: deque[ImmutableMessage] = deque()
        self._failure: BaseException | None = None
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self._buffered = 0
        self._stop = threading.Event()
        self._stopped: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._run, name=f"walstream-pulsar-scanner[{topic}:{name}]", daemon=True
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
        """Stop the reader thread; a pending ``__anext__`` ends the iteration."""
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
        reader = self._reader
        try:
            while not self._stop.is_set():
                with self._lock:
                    while self._buffered >= self._read_ahead and not self._stop.is_set():
                        self._space.wait(_WAIT_MS / 1000)
                if self._stop.is_set():
                    break
                batch = self._poll(reader)
                if batch:
                    with self._lock:
                        self._buffered += len(batch)
                    self._post(self._deliver, batch)
        except WalstreamError as exc:
            self._post(self._fail, exc)
        except Exception as exc:
            log.exception("pulsar scanner %r on %r failed", self.name, self._topic)
            self._post(
                self._fail,
                WALError(f"pulsar scanner {self.name!r} on topic {self._topic!r} failed: {exc!r}"),
            )
        finally:
            with contextlib.suppress(Exception):
                reader.close()
            self._post(_wake, self._stopped)

    def _poll(self, reader: pulsar.Reader) -> list[ImmutableMessage]:
        out: list[ImmutableMessage] = []
        wait = _WAIT_MS
        while len(out) < _BATCH and not self._stop.is_set():
            try:
                msg = reader.read_next(wait)
            except pulsar.PulsarException as exc:
                if error_name(exc) == "Timeout":
                    break
                if error_name(exc) == "AlreadyClosed" and self._stop.is_set():
                    break
                if is_transient(exc):
                    log.warning("pulsar scanner %r on %r: %r", self.name, self._topic, exc)
                    break
                raise WALError(
                    f"pulsar scanner {self.name!r} on topic {self._topic!r} failed: "
                    f"{error_name(exc)} ({exc}): {hint(error_name(exc), str(exc))}"
                ) from exc
            wait = 1  # more may be queued: take them without waiting long
            decoded = self._decode(msg)
            if decoded is not None:
                out.append(decoded)
        return out

    def _decode(self, msg: pulsar.Message) -> ImmutableMessage | None:
        parsed = parse_key(msg.partition_key())
        if parsed is not None and parsed[0] == CLAIM:
            return None  # a writer's claim of the pchannel, not a message
        try:
            mid = PulsarMessageID.from_pulsar(msg.message_id())
            return to_message(mid, msg.data(), msg.properties())
        except MessageDecodeError as exc:
            raise WALError(
                f"message {msg.message_id()} of topic {self._topic!r} is not a walstream "
                f"message: {exc}"
            ) from exc
