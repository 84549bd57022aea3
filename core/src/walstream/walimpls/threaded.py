"""A scanner base for backends whose client reads block: the reads run on a thread.

``ThreadedScanner`` owns one daemon thread that calls the subclass's blocking read in a
loop, each call waiting only briefly, so the thread notices ``close()`` quickly.
Decoded messages are handed to the event loop in batches with
``call_soon_threadsafe``; at most ``read_ahead`` of them wait there, beyond that the
thread pauses until the reader has taken half of them.

The scanner owns no asyncio task. ``close()`` stops the thread, wakes a pending
``__anext__`` (which then ends the iteration) and waits, bounded, for the thread to
have closed the client's reader.

Subclasses implement three hooks, all called on the scanner's thread:

- ``_open_source()``: create or position the client's reader (optional);
- ``_read_batch()``: one short blocking read, returning the decoded messages;
- ``_close_source()``: release the client's reader.

A ``WalstreamError`` raised by a hook is the scanner's final error as it is; any other
exception is logged and wrapped in a ``WALError``. Transient client errors are the
subclass's to handle (log them and return what was read): the client recovers by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from abc import abstractmethod
from collections import deque
from collections.abc import Callable
from typing import ClassVar, Self

from walstream.errors import WALError, WalstreamError
from walstream.message import ImmutableMessage
from walstream.walimpls.spi import Scanner

__all__ = ["DEFAULT_READ_AHEAD", "ThreadedScanner"]

DEFAULT_READ_AHEAD = 1024
"""Messages a scanner buffers ahead of its reader when ``read_ahead`` is not positive."""


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class ThreadedScanner(Scanner):
    """A ``Scanner`` fed by a thread that runs a blocking client's reads.

    Subclasses set the attributes their hooks use *before* calling
    ``super().__init__``, which starts the thread; it must be called from a coroutine
    (the scanner belongs to the running event loop).
    """

    poll_interval_s: ClassVar[float] = 0.05
    """How long the thread waits at a time for room in a full buffer; ``_read_batch``
    should not block much longer than this either."""

    close_wait_s: ClassVar[float] = 10.0
    """How long ``close()`` waits at most for the thread to close the client's reader."""

    def __init__(
        self,
        name: str,
        *,
        backend: str,
        topic: str,
        read_ahead: int = 0,
        on_close: Callable[[Self], None] | None = None,
    ) -> None:
        """Start reading on a new thread.

        ``backend`` and ``topic`` name the scanner in its thread's name and in errors;
        ``read_ahead`` bounds the messages buffered ahead of the reader (not positive:
        ``DEFAULT_READ_AHEAD``); ``on_close`` is called once, by the first ``close()``.
        """
        super().__init__(name)
        self._topic = topic
        self._where = f"{backend} scanner {name!r} on topic {topic!r}"
        self._read_ahead = read_ahead if read_ahead > 0 else DEFAULT_READ_AHEAD
        self._on_close: Callable[[Self], None] | None = on_close
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
            target=self._run, name=f"walstream-{backend}-scanner[{topic}:{name}]", daemon=True
        )
        self._thread.start()

    @property
    def read_ahead(self) -> int:
        """The most messages buffered ahead of the reader."""
        return self._read_ahead

    # --- the hooks, called on the thread ---------------------------------------------------

    def _open_source(self) -> None:
        """Create or position the client's reader; runs once, before the first read."""

    @abstractmethod
    def _read_batch(self) -> list[ImmutableMessage]:
        """Read what is there, waiting about ``poll_interval_s`` at most for the first
        message; return the decoded messages (maybe none).

        Raise a ``WalstreamError`` to end the scanner with that error.
        """

    @abstractmethod
    def _close_source(self) -> None:
        """Release the client's reader; runs once, last (exceptions are ignored)."""

    def _stopping(self) -> bool:
        """Whether the thread should stop (``close()`` was called or the loop is gone)."""
        return self._stop.is_set()

    # --- the asyncio side ------------------------------------------------------------------

    async def __anext__(self) -> ImmutableMessage:
        """The next message; waits for new data at the tail."""
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

    async def close(self: Self) -> None:
        """Stop the reading thread; a pending ``__anext__`` ends the iteration."""
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
            await asyncio.wait_for(asyncio.shield(self._stopped), self.close_wait_s)

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

    # --- the thread ------------------------------------------------------------------------

    def _post(self, callback: Callable[..., None], *args: object) -> bool:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
            return True
        except RuntimeError:  # the event loop is closed: nobody reads any more
            self._stop.set()
            return False

    def _run(self) -> None:
        try:
            self._open_source()
            while not self._stop.is_set():
                with self._lock:
                    while self._buffered >= self._read_ahead and not self._stop.is_set():
                        self._space.wait(self.poll_interval_s)
                if self._stop.is_set():
                    break
                batch = self._read_batch()
                if batch:
                    with self._lock:
                        self._buffered += len(batch)
                    self._post(self._deliver, batch)
        except WalstreamError as exc:
            self._post(self._fail, exc)
        except Exception as exc:
            # Logged under the subclass's module, where the client-specific code lives.
            logging.getLogger(type(self).__module__).exception("%s failed", self._where)
            self._post(self._fail, WALError(f"{self._where} failed: {exc!r}"))
        finally:
            with contextlib.suppress(Exception):
                self._close_source()
            self._post(_wake, self._stopped)
