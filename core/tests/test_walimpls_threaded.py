"""``ThreadedScanner`` against a fake blocking source: no services needed."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable

import pytest
from walstream.backends.memory import MemoryMessageID
from walstream.errors import WALError
from walstream.message import ImmutableMessage, MessageType, new_message
from walstream.walimpls.threaded import DEFAULT_READ_AHEAD, ThreadedScanner

TRANSIENT = "transient"
log = logging.getLogger(__name__)


def msg(index: int) -> ImmutableMessage:
    """A stored message whose id is ``index``."""
    return new_message(MessageType.INSERT, vchannel="v1").into_immutable(MemoryMessageID(index))


def index(message: ImmutableMessage) -> int:
    """The index ``msg`` gave ``message``."""
    mid = message.message_id
    assert isinstance(mid, MemoryMessageID)
    return mid.index


Item = list[ImmutableMessage] | BaseException | str


class FakeScanner(ThreadedScanner):
    """Reads batches (or errors to raise, or ``TRANSIENT``) from a ``queue.Queue``, like a
    blocking client read with a short timeout."""

    poll_interval_s = 0.01

    def __init__(
        self,
        feed: queue.Queue[Item],
        *,
        read_ahead: int = 0,
        on_close: Callable[[FakeScanner], None] | None = None,
        fail_open: BaseException | None = None,
    ) -> None:
        self.feed = feed
        self.fail_open = fail_open
        self.opened = threading.Event()
        self.source_closed = threading.Event()
        self.transients = 0
        super().__init__("s1", backend="fake", topic="t1", read_ahead=read_ahead, on_close=on_close)

    def _open_source(self) -> None:
        if self.fail_open is not None:
            raise self.fail_open
        self.opened.set()

    def _read_batch(self) -> list[ImmutableMessage]:
        try:
            item = self.feed.get(timeout=self.poll_interval_s)
        except queue.Empty:
            return []
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, str):  # as the plugins do: log it, the client recovers by itself
            self.transients += 1
            log.warning("%s: transient trouble", self._where)
            return []
        return item

    def _close_source(self) -> None:
        self.source_closed.set()


class Endless(ThreadedScanner):
    """Produces one message per read, forever; counts them."""

    poll_interval_s = 0.01

    def __init__(self, read_ahead: int) -> None:
        self.produced = 0
        super().__init__("s2", backend="fake", topic="t2", read_ahead=read_ahead)

    def _read_batch(self) -> list[ImmutableMessage]:
        self.produced += 1
        return [msg(self.produced - 1)]

    def _close_source(self) -> None:
        pass


class Stuck(ThreadedScanner):
    """Blocks in a read until ``release`` is set (a client call that overruns its timeout)."""

    close_wait_s = 0.3

    def __init__(self) -> None:
        self.release = threading.Event()
        self.reading = threading.Event()
        self.source_closed = threading.Event()
        super().__init__("s3", backend="fake", topic="t3")

    def _read_batch(self) -> list[ImmutableMessage]:
        self.reading.set()
        self.release.wait()
        return []

    def _close_source(self) -> None:
        self.source_closed.set()


async def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``cond()`` holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.005)


async def test_delivers_every_batch_in_order() -> None:
    feed: queue.Queue[Item] = queue.Queue()
    scanner = FakeScanner(feed)
    for start in range(0, 100, 7):
        feed.put([msg(i) for i in range(start, min(start + 7, 100))])
    got = [index(await anext(scanner)) for _ in range(100)]
    assert got == list(range(100))
    assert scanner.error is None
    await scanner.close()
    assert scanner.source_closed.is_set()


async def test_tail_read_wakes_a_waiting_reader() -> None:
    feed: queue.Queue[Item] = queue.Queue()
    async with FakeScanner(feed) as scanner:
        pending = asyncio.ensure_future(anext(scanner))
        await asyncio.sleep(0.05)
        assert not pending.done()
        feed.put([msg(42)])
        got = await asyncio.wait_for(pending, 2.0)
        assert index(got) == 42


async def test_read_ahead_bounds_the_buffer() -> None:
    scanner = Endless(read_ahead=8)
    assert scanner.read_ahead == 8
    try:
        await wait_for(lambda: scanner.produced >= 8)
        await asyncio.sleep(0.1)  # many poll intervals: a full buffer stops the thread
        assert scanner.produced == 8
        # Each message taken makes room for one more, never more than that.
        for expected in range(3):
            assert index(await anext(scanner)) == expected
        await wait_for(lambda: scanner.produced >= 11)
        await asyncio.sleep(0.1)
        assert scanner.produced == 11
        for expected in range(3, 53):
            assert index(await anext(scanner)) == expected
            assert scanner.produced <= expected + 1 + 8
        await asyncio.sleep(0.1)
        assert scanner.produced == 53 + 8
    finally:
        await scanner.close()


async def test_read_ahead_defaults() -> None:
    async with FakeScanner(queue.Queue()) as scanner:
        assert scanner.read_ahead == DEFAULT_READ_AHEAD


async def test_close_ends_a_pending_read_and_is_idempotent() -> None:
    baseline = len(asyncio.all_tasks())
    closed: list[FakeScanner] = []
    feed: queue.Queue[Item] = queue.Queue()
    scanner = FakeScanner(feed, on_close=closed.append)
    feed.put([msg(0), msg(1)])
    assert index(await anext(scanner)) == 0
    await wait_for(scanner.opened.is_set)
    assert index(await anext(scanner)) == 1
    pending = asyncio.ensure_future(anext(scanner))
    await asyncio.sleep(0.02)
    start = time.monotonic()
    await scanner.close()
    assert time.monotonic() - start < 1.0
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, 1.0)
    assert scanner.source_closed.is_set()
    assert not scanner._thread.is_alive()
    await scanner.close()
    assert closed == [scanner]
    with pytest.raises(StopAsyncIteration):
        await anext(scanner)
    assert scanner.error is None
    assert len(asyncio.all_tasks()) == baseline


async def test_close_drops_buffered_messages() -> None:
    feed: queue.Queue[Item] = queue.Queue()
    scanner = FakeScanner(feed)
    feed.put([msg(0), msg(1), msg(2)])
    assert index(await anext(scanner)) == 0
    await scanner.close()
    with pytest.raises(StopAsyncIteration):
        await anext(scanner)


async def test_close_while_blocked_in_a_read_is_bounded() -> None:
    baseline = len(asyncio.all_tasks())
    scanner = Stuck()
    try:
        await wait_for(scanner.reading.is_set)
        pending = asyncio.ensure_future(anext(scanner))
        await asyncio.sleep(0.01)
        start = time.monotonic()
        await scanner.close()  # the read does not return: close gives up after close_wait_s
        took = time.monotonic() - start
        assert Stuck.close_wait_s - 0.05 <= took < Stuck.close_wait_s + 1.0
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(pending, 1.0)
        assert len(asyncio.all_tasks()) == baseline
    finally:
        scanner.release.set()
    # Once the read returns, the thread sees the stop and closes the source.
    await asyncio.to_thread(scanner._thread.join, 2.0)
    assert scanner.source_closed.is_set()
    start = time.monotonic()
    await scanner.close()
    assert time.monotonic() - start < 0.2


async def test_final_error_surfaces_after_the_messages_before_it() -> None:
    feed: queue.Queue[Item] = queue.Queue()
    scanner = FakeScanner(feed)
    failure = WALError("the log is gone")
    feed.put([msg(0), msg(1)])
    feed.put(failure)
    assert [index(await anext(scanner)) for _ in range(2)] == [0, 1]
    with pytest.raises(WALError) as caught:
        await anext(scanner)
    assert caught.value is failure
    assert scanner.error is failure
    with pytest.raises(StopAsyncIteration):  # raised once, then the iteration ends
        await anext(scanner)
    await asyncio.to_thread(scanner._thread.join, 2.0)
    assert scanner.source_closed.is_set()
    await scanner.close()
    assert scanner.error is failure


async def test_final_error_wakes_a_waiting_reader() -> None:
    feed: queue.Queue[Item] = queue.Queue()
    async with FakeScanner(feed) as scanner:
        pending = asyncio.ensure_future(anext(scanner))
        await asyncio.sleep(0.03)
        feed.put(WALError("gone"))
        with pytest.raises(WALError, match="gone"):
            await asyncio.wait_for(pending, 2.0)


async def test_other_exceptions_become_wal_errors(caplog: pytest.LogCaptureFixture) -> None:
    feed: queue.Queue[Item] = queue.Queue()
    feed.put(RuntimeError("boom"))
    with caplog.at_level(logging.ERROR, logger=__name__):
        async with FakeScanner(feed) as scanner:
            with pytest.raises(WALError, match="fake scanner 's1' on topic 't1' failed") as caught:
                await asyncio.wait_for(anext(scanner), 2.0)
            assert "boom" in str(caught.value)
    # Logged under the subclass's module.
    assert any(r.name == __name__ and r.levelno == logging.ERROR for r in caplog.records)


async def test_open_failure_surfaces() -> None:
    failure = WALError("cannot connect")
    async with FakeScanner(queue.Queue(), fail_open=failure) as scanner:
        with pytest.raises(WALError) as caught:
            await asyncio.wait_for(anext(scanner), 2.0)
        assert caught.value is failure
        await asyncio.to_thread(scanner._thread.join, 2.0)
        assert scanner.source_closed.is_set()


async def test_transient_errors_do_not_end_the_scan(caplog: pytest.LogCaptureFixture) -> None:
    feed: queue.Queue[Item] = queue.Queue()
    with caplog.at_level(logging.WARNING, logger=__name__):
        async with FakeScanner(feed) as scanner:
            feed.put([msg(0)])
            feed.put(TRANSIENT)
            feed.put(TRANSIENT)
            feed.put([msg(1), msg(2)])
            got = [index(await asyncio.wait_for(anext(scanner), 2.0)) for _ in range(3)]
            assert got == [0, 1, 2]
            assert scanner.transients == 2
            assert scanner.error is None
            assert scanner._thread.is_alive()
    assert sum("transient trouble" in r.getMessage() for r in caplog.records) == 2


async def test_stopping_when_the_loop_is_gone() -> None:
    """A thread whose loop closed stops by itself instead of reading forever."""
    feed: queue.Queue[Item] = queue.Queue()
    holder: list[FakeScanner] = []

    def run() -> None:
        async def open_only() -> None:
            holder.append(FakeScanner(feed))

        asyncio.run(open_only())  # the loop closes with the scanner left open

    await asyncio.to_thread(run)
    scanner = holder[0]
    feed.put([msg(0)])  # delivering it finds the loop closed
    await asyncio.to_thread(scanner._thread.join, 2.0)
    assert not scanner._thread.is_alive()
    assert scanner._stopping()
    assert scanner.source_closed.is_set()
