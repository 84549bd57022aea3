"""Finding the ids of appends the broker answered as duplicates.

After a reconnect the client sends again every message still pending. One the broker
had persisted before the connection dropped (its receipt was lost) is recognised by
its (producer name, sequence id) and not stored again; its receipt then carries no
position (ledger and entry -1). The append did succeed, so the WAL must still answer
with its id.

The producer is exclusive and sends in order, and receipts arrive in send order. So
such a message is the first of this writer's records stored after the *anchor*: the
last position the writer learnt before it (its claim, an earlier receipt, or the
duplicate just before it, once located). :class:`DuplicateLocator` reads from there,
one Reader per run of duplicates, and checks that each record found is the same
message (key, payload and properties) before answering with its id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import pulsar  # type: ignore[import-untyped]
from walstream.errors import WALClosedError

from walstream_pulsar.errors import PulsarWALError
from walstream_pulsar.message_id import PulsarMessageID


@dataclass(slots=True)
class _Duplicate:
    future: asyncio.Future[PulsarMessageID]
    payload: bytes
    properties: dict[str, str]
    after: PulsarMessageID | None
    """Where to start reading: set on the first duplicate after a known position."""
    first_of_run: bool


class DuplicateLocator:
    """Answers appends whose receipt had no position with the id they were stored at."""

    def __init__(
        self,
        client: pulsar.Client,
        topic: str,
        key: str,
        anchor: PulsarMessageID | None,
        timeout_s: float,
        where: str,
    ) -> None:
        """``anchor``: the writer's claim; ``key``: the partition key of its records."""
        self._client = client
        self._topic = topic
        self._key = key
        self._anchor = anchor
        self._new_run = True
        self._located: PulsarMessageID | None = None
        self._timeout_s = timeout_s
        self._where = where
        self._queue: deque[_Duplicate] = deque()
        self._task: asyncio.Task[None] | None = None

    def stored(self, message_id: PulsarMessageID) -> None:
        """A receipt with a position arrived: later duplicates are read from there."""
        self._anchor = message_id
        self._new_run = True

    def duplicate(
        self,
        future: asyncio.Future[PulsarMessageID],
        payload: bytes,
        properties: Mapping[str, str],
    ) -> None:
        """A receipt without a position arrived (in send order): locate it, then settle."""
        self._queue.append(
            _Duplicate(future, payload, dict(properties), self._anchor, self._new_run)
        )
        self._new_run = False
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Finish locating what is queued (each read is bounded), then stop."""
        try:
            # A duplicate queued while a task was ending starts another: wait for that too.
            while (task := self._task) is not None:
                await task
        finally:  # also when the caller's bound cancelled the task
            self._fail_queued(WALClosedError(f"{self._where} is closed"))

    async def _run(self) -> None:
        reader: pulsar.Reader | None = None
        reader_after: PulsarMessageID | None = None  # the reader's next record follows it
        try:
            while self._queue:
                item = self._queue.popleft()
                start = item.after if item.first_of_run else self._located
                try:
                    if start is None:
                        raise PulsarWALError(
                            "no position of this writer before it is known"
                            if item.first_of_run
                            else "the resend before it could not be located"
                        )
                    if reader is None or reader_after != start:
                        if reader is not None:
                            await asyncio.to_thread(_close, reader)
                            reader = None
                        reader = await asyncio.to_thread(self._open, start)
                    found = await asyncio.to_thread(self._next, reader, item)
                except asyncio.CancelledError:
                    _settle(item.future, WALClosedError(f"{self._where} is closed"))
                    raise
                except Exception as exc:  # settled on the append's future
                    self._located = reader_after = None
                    _settle(
                        item.future,
                        PulsarWALError(
                            f"append to {self._where} is stored (the broker recognised it "
                            f"as a resend after a reconnect) but its id could not be found: "
                            f"{exc}"
                        ),
                    )
                    continue
                reader_after = self._located = found
                _settle(item.future, found)
        finally:
            # Cleared before the last await: a duplicate queued from now on starts a task.
            self._task = None
            if reader is not None:
                await asyncio.to_thread(_close, reader)

    def _open(self, after: PulsarMessageID) -> pulsar.Reader:
        return self._client.create_reader(
            self._topic, after.to_pulsar(), start_message_id_inclusive=False
        )

    def _next(self, reader: pulsar.Reader, item: _Duplicate) -> PulsarMessageID:
        """The next record of ``reader``, which must be ``item``'s message (blocking)."""
        deadline = time.monotonic() + self._timeout_s
        if not reader.has_message_available():
            raise PulsarWALError("no record is stored after the position before it")
        left_ms = max(1, int((deadline - time.monotonic()) * 1000))
        msg = reader.read_next(left_ms)
        found = PulsarMessageID.from_pulsar(msg.message_id())
        if (
            msg.partition_key() != self._key
            or msg.data() != item.payload
            or msg.properties() != item.properties
        ):
            raise PulsarWALError(f"the record stored there ({found}) is another message")
        return found

    def _fail_queued(self, exc: Exception) -> None:
        while self._queue:
            _settle(self._queue.popleft().future, exc)


def _settle(future: asyncio.Future[PulsarMessageID], outcome: PulsarMessageID | Exception) -> None:
    if future.done():
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _close(reader: pulsar.Reader) -> None:
    with contextlib.suppress(pulsar.PulsarException):
        reader.close()
