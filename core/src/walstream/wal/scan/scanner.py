"""``WALScanner``: one reader of the streaming node's WAL, and ``open_scanner``.

A background task runs the produce side (:class:`SwitchableSource`) into the
consume side (:class:`DeliveryPipeline`); the reader iterates over what is
ready. The task stops reading while ``buffer_messages`` messages wait for the
reader, so memory stays bounded however slow the reader is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from walstream._closing import AsyncClosing
from walstream.errors import WALClosedError
from walstream.message import ImmutableMessage
from walstream.wal.options import WALReadOption
from walstream.wal.scan.backoff import (
    DEFAULT_RETRY_INITIAL_SECONDS,
    DEFAULT_RETRY_MAX_SECONDS,
    Backoff,
    is_transient_read_error,
)
from walstream.wal.scan.filters import check_read_option
from walstream.wal.scan.pipeline import DeliveryPipeline
from walstream.wal.scan.source import (
    CLOSE_TIMEOUT_SECONDS,
    LatestStart,
    ScanMode,
    SwitchableSource,
)
from walstream.wal.txn_buffer import DEFAULT_TXN_KEEPALIVE_MS
from walstream.wal.wab import WriteAheadBuffer
from walstream.walimpls.options import DeliverLatest
from walstream.walimpls.spi import WALImpl

__all__ = ["ScannerStats", "WALScanner", "open_scanner"]

log = logging.getLogger(__name__)

ForceSync = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ScannerStats:
    """A snapshot of one scanner: where it reads, what it holds, what it did."""

    mode: ScanMode
    ready: int
    """Messages waiting for the reader (at most ``buffer_messages``)."""
    staged: int
    """Messages released by a TimeTick, waiting for room in the ready queue."""
    reordering: int
    """Messages waiting for a TimeTick in the reorder buffer."""
    open_txns: int
    """Transactions held until they commit, roll back or expire."""
    held_bytes: int
    """Sum of ``size`` of everything held (transaction parts included)."""
    delivered: int
    filtered: int
    duplicates: int
    late: int
    to_tailing: int
    """Switches catch-up → tailing."""
    to_catch_up: int
    """Switches tailing → catch-up (the reader fell out of the write-ahead buffer)."""
    read_retries: int
    """Backend reads retried after a transient error."""

    @property
    def held_messages(self) -> int:
        """Messages held: ready, staged and reordering."""
        return self.ready + self.staged + self.reordering


class WALScanner(AsyncClosing):
    """Async iterator of one reader's messages, strictly increasing by timetick.

    Iteration waits at the tail; it ends after :meth:`close` (messages still held
    are dropped) and, when the scanner failed, raises ``error`` once everything
    that was ready before the failure has been taken.
    """

    def __init__(
        self,
        name: str,
        source: SwitchableSource,
        pipeline: DeliveryPipeline,
        force_sync: ForceSync | None,
    ) -> None:
        """Use :func:`open_scanner`; this starts the background task at once."""
        self._name = name
        self._source = source
        self._pipeline = pipeline
        self._force_sync = force_sync
        self._error: BaseException | None = None
        self._closed = False
        self._finished = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"wal-scanner:{name}")

    @property
    def name(self) -> str:
        """The name from ``WALReadOption``."""
        return self._name

    @property
    def error(self) -> BaseException | None:
        """The final failure that ended this scanner, if any."""
        return self._error

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def finished(self) -> bool:
        """Whether the background task ended (closed or failed)."""
        return self._finished

    @property
    def mode(self) -> ScanMode:
        """Catch-up (backend) or tailing (write-ahead buffer)."""
        return self._source.mode

    def stats(self) -> ScannerStats:
        """What the scanner holds now and its counters."""
        p = self._pipeline.stats()
        s = self._source
        return ScannerStats(
            mode=s.mode,
            ready=p.ready,
            staged=p.staged,
            reordering=p.reordering,
            open_txns=p.open_txns,
            held_bytes=p.held_bytes,
            delivered=p.delivered,
            filtered=p.filtered,
            duplicates=p.duplicates,
            late=p.late,
            to_tailing=s.to_tailing,
            to_catch_up=s.to_catch_up,
            read_retries=s.read_retries,
        )

    # --- the background task ----------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._source.open()
            if self._force_sync is not None:
                await self._sync()
            while True:
                message = await self._source.next()
                await self._pipeline.feed(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self._closed:
                self._error = exc
                log.warning(
                    "scanner %r ended: %s: %s", self._name, type(exc).__name__, exc, exc_info=True
                )
        finally:
            self._finished = True
            self._pipeline.wake()
            await self._source.close()

    async def _sync(self) -> None:
        """Force a persisted TimeTick so catch-up reaches one the buffer holds.

        A failure is not fatal: the periodic time-tick sync will write one later.
        """
        assert self._force_sync is not None
        try:
            await self._force_sync()
        except Exception as exc:
            log.warning("scanner %r: forcing a TimeTick failed (%s); going on", self._name, exc)

    # --- the reader ---------------------------------------------------------------------

    def __aiter__(self) -> WALScanner:
        return self

    async def __anext__(self) -> ImmutableMessage:
        """The next message; waits for one. See the class docs for how it ends."""
        while True:
            if self._closed:
                raise StopAsyncIteration
            message = self._pipeline.take()
            if message is not None:
                return message
            if self._finished:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            await self._pipeline.wait_readable()

    async def close(self) -> None:
        """Stop reading and drop what is held; idempotent, returns within a few seconds.

        Readers waiting in ``__anext__`` stop (``StopAsyncIteration``).
        """
        if not self._closed:
            self._closed = True
            self._task.cancel()
            self._pipeline.close()
        if not self._task.done():
            # Bounded: a backend reader that ignores cancellation is abandoned.
            await asyncio.wait({self._task}, timeout=CLOSE_TIMEOUT_SECONDS * 2)
        # The task may have been cancelled before it ever ran its cleanup.
        await self._source.close()
        self._pipeline.wake()


def open_scanner(
    impl: WALImpl,
    option: WALReadOption,
    *,
    wab: WriteAheadBuffer | None,
    force_sync: ForceSync | None,
    retry_initial: float = DEFAULT_RETRY_INITIAL_SECONDS,
    retry_max: float = DEFAULT_RETRY_MAX_SECONDS,
    transient: Callable[[BaseException], bool] = is_transient_read_error,
    txn_keepalive_ms: int = DEFAULT_TXN_KEEPALIVE_MS,
    latest_start: LatestStart | None = None,
) -> WALScanner:
    """Start a scanner of ``impl`` (call it inside the event loop; it does not block).

    - ``wab``: the write-ahead buffer to tail once catch-up reaches it; ``None``
      (a read-only WAL) reads the backend only.
    - ``force_sync``: awaited once after the backend reader is open, to get a
      persisted TimeTick written that catch-up will reach (RW scanners).
    - ``retry_initial`` / ``retry_max``: backoff in seconds between backend reads
      that failed with an error ``transient`` accepts; others end the scanner.
    - ``txn_keepalive_ms``: for transactions whose context carries no keepalive.
    - ``latest_start``: for a ``DeliverLatest`` scanner, where to resume if the
      backend fails before its first message (see ``LatestStart``); without it
      it reopens at the backend's latest position then.

    Raises ``ValueError`` for an invalid ``option`` and ``WALClosedError`` when
    ``wab`` is already closed. Backend errors surface through the scanner.
    """
    check_read_option(option)
    if wab is not None and wab.closed:
        raise WALClosedError("cannot open a scanner: the write-ahead buffer is closed")
    source = SwitchableSource(
        impl,
        option.deliver_policy,
        name=option.name,
        wab=wab,
        backoff=Backoff(retry_initial, retry_max),
        transient=transient,
        latest_start=latest_start if isinstance(option.deliver_policy, DeliverLatest) else None,
    )
    pipeline = DeliveryPipeline(option, txn_keepalive_ms=txn_keepalive_ms)
    return WALScanner(option.name, source, pipeline, force_sync)
