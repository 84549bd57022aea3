"""Redo: re-run the rest of the chain when an inner step raises ``RedoError``.

Re-entering lock and timetick gives the message a fresh timetick each time
(for example after a segment was sealed at a later timetick meanwhile). A
``RedoError`` may carry a ``ready`` awaitable (say, the CreateSegment append the
insert needs, running in the background): the redo waits for it here, outside
every lock, at most ``ready_timeout_s``, as Milvus's redo interceptor waits for
its ``Ready()`` channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import ClassVar

from walstream.message import MutableMessage
from walstream.wal.chain import (
    AppendFunc,
    AppendResult,
    BatchAppendFunc,
    Interceptor,
    Outcome,
    RedoError,
    deliver_early,
)
from walstream.wal.errors import RedoLimitError

__all__ = ["RedoInterceptor"]

log = logging.getLogger(__name__)

DEFAULT_READY_TIMEOUT_S = 30.0


class RedoInterceptor(Interceptor):
    """Outermost step: loops ``next_(message)`` while it raises ``RedoError``, bounded."""

    name: ClassVar[str] = "redo"

    def __init__(self, max_attempts: int, ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S) -> None:
        """At most ``max_attempts`` runs of the chain per append; wait ``ready`` at most that long."""
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        if ready_timeout_s <= 0:
            raise ValueError(f"ready_timeout_s must be > 0, got {ready_timeout_s}")
        self._max_attempts = max_attempts
        self._ready_timeout_s = ready_timeout_s

    async def do_append(self, message: MutableMessage, next_: AppendFunc) -> AppendResult:
        """Append, redoing on ``RedoError`` up to the limit (then ``RedoLimitError``)."""
        last: RedoError | None = None
        for attempt in range(1, self._max_attempts + 1):
            try:
                result = await next_(message)
            except RedoError as exc:
                last = exc
                log.debug("redo %d of a %s append: %s", attempt, message.message_type.name, exc)
                if exc.ready is not None and attempt < self._max_attempts:
                    await wait_ready(exc.ready, self._ready_timeout_s)
                continue
            # Drop the redone error: its traceback holds this frame (a reference cycle that
            # only a full collection would free).
            last = None
            return result
        raise _limit_error(message, self._max_attempts, last)

    async def do_append_batch(
        self, messages: list[MutableMessage], next_: BatchAppendFunc
    ) -> list[Outcome]:
        """Append the batch; the messages that raised ``RedoError`` run again, together.

        Every other message's outcome is final at once and handed to its caller
        (``deliver_early``): a redo waiting for a new segment holds up no one else.
        """
        outcomes: list[Outcome | None] = [None] * len(messages)
        todo = list(range(len(messages)))
        for attempt in range(1, self._max_attempts + 1):
            try:
                results = await next_([messages[i] for i in todo])
            except BaseException as exc:
                # Only the messages of this attempt failed; the others are settled.
                for i in todo:
                    outcomes[i] = exc
                if not isinstance(exc, Exception) or attempt == 1:
                    raise
                break
            redo: list[int] = []
            ready: list[Awaitable[object]] = []
            for i, outcome in zip(todo, results, strict=True):
                outcomes[i] = outcome
                if isinstance(outcome, RedoError):
                    redo.append(i)
                    if outcome.ready is not None:
                        ready.append(outcome.ready)
            if not redo:
                break
            for i, outcome in zip(todo, results, strict=True):
                if not isinstance(outcome, RedoError):
                    deliver_early(messages[i], outcome)
            log.debug("redo %d of %d batched appends", attempt, len(redo))
            if attempt < self._max_attempts:
                if ready:
                    await asyncio.gather(*(wait_ready(r, self._ready_timeout_s) for r in ready))
                todo = redo
            else:
                for i in redo:
                    last = outcomes[i]
                    assert isinstance(last, RedoError)
                    outcomes[i] = _limit_error(messages[i], self._max_attempts, last)
        return [outcome for outcome in outcomes if outcome is not None]


def _limit_error(message: MutableMessage, attempts: int, last: RedoError | None) -> RedoLimitError:
    error = RedoLimitError(
        f"a {message.message_type.name} append on vchannel {message.vchannel!r} was redone "
        f"{attempts} times (redo_max_attempts) without succeeding: {last}"
    )
    error.__cause__ = last
    return error


async def wait_ready(ready: Awaitable[object], timeout_s: float) -> None:
    """Wait for ``ready`` at most ``timeout_s``; its outcome is not ours to raise.

    The awaitable is shared by every insert waiting for the same work, so neither
    our timeout nor our cancellation cancels it; its error (if any) shows on the
    redo, which runs the checks again.
    """
    future = asyncio.ensure_future(ready)
    done, _ = await asyncio.wait([future], timeout=timeout_s)
    if not done:
        log.warning("redo waited %.1f s for %r; redoing anyway", timeout_s, future)
    elif not future.cancelled():
        future.exception()  # retrieved: the redo reports what matters
