"""The append path as a chain of interceptors, each a small object with one job.

Composed outermost first, as Milvus does: redo -> lock -> timetick/txn -> segment
assignment -> the backend append. Each interceptor gets the message and ``next`` (the
rest of the chain) and returns the ``AppendResult`` of the message it appended.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import ClassVar

from walstream.errors import WALError
from walstream.message import MessageID, MessageType, MutableMessage
from walstream.proto import messages_pb2 as pb


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append returns: where the message is and at which timetick.

    ``last_confirmed_message_id``: a reader starting there sees every message with a
    larger timetick. ``txn_context`` is set for messages of a transaction.
    """

    message_id: MessageID
    timetick: int
    last_confirmed_message_id: MessageID
    txn_context: pb.TxnContext | None = None


AppendFunc = Callable[[MutableMessage], Awaitable[AppendResult]]
"""The rest of the chain, as seen by an interceptor."""

Outcome = AppendResult | BaseException
"""What one message of a batch came to: its result, or the error it failed with."""

BatchAppendFunc = Callable[[list[MutableMessage]], Awaitable[list[Outcome]]]
"""The rest of the chain for a batch: one outcome per message, in the batch's order."""

_early_outcomes: ContextVar[Callable[[MutableMessage, Outcome], None] | None] = ContextVar(
    "walstream_early_outcomes", default=None
)


def deliver_early(message: MutableMessage, outcome: Outcome) -> None:
    """Hand ``message``'s final outcome to its caller now, before the batch's end.

    For a step that keeps a batch going after some of its messages are done (the
    redo step re-runs only those that must be redone): the others' callers need not
    wait for that. A no-op outside a batch run by the WAL.
    """
    sink = _early_outcomes.get()
    if sink is not None:
        sink(message, outcome)


def receive_early_outcomes(sink: Callable[[MutableMessage, Outcome], None]) -> None:
    """Make :func:`deliver_early` call ``sink`` in the current task (the WAL's batch runner)."""
    _early_outcomes.set(sink)


class RedoError(WALError):
    """Run the chain again from the redo interceptor (the message gets a fresh timetick).

    Raised by an inner interceptor when the message cannot be appended at the timetick
    it got (for example a segment was sealed at a later timetick meanwhile).

    ``ready``, if given, is what the redo must wait for first (bounded), outside
    every lock: for example the background append of the CreateSegment the insert
    needs. Inner steps never await such work themselves, because it takes the same
    locks the message holds.
    """

    def __init__(self, message: str, *, ready: Awaitable[object] | None = None) -> None:
        """``message`` says why; ``ready`` is awaited by the redo step before the next run."""
        super().__init__(message)
        self.ready = ready


class Interceptor(ABC):
    """One step of the append path."""

    name: ClassVar[str]

    @abstractmethod
    async def do_append(self, message: MutableMessage, next_: AppendFunc) -> AppendResult:
        """Do this step's job around ``next_(message)``."""

    async def do_append_batch(
        self, messages: list[MutableMessage], next_: BatchAppendFunc
    ) -> list[Outcome]:
        """Do this step's job for a batch of plain messages around ``next_``.

        A batch holds only messages that :func:`batchable` accepts (no exclusive,
        transaction, TimeTick or barrier message). The default runs :meth:`do_append`
        for each message concurrently, each passing a batch of one downstream:
        correct for any interceptor; the core steps override it to do their work
        once per batch.
        """

        async def single(message: MutableMessage) -> AppendResult:
            outcome = (await next_([message]))[0]
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome

        return list(
            await asyncio.gather(
                *(self.do_append(m, single) for m in messages), return_exceptions=True
            )
        )

    async def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release what this interceptor holds (called once, at WAL close, innermost first)."""


def batchable(message: MutableMessage) -> bool:
    """Whether ``message`` may share a batch: not exclusive, no transaction, no barrier.

    Those take write locks, drive transaction sessions or need a timetick of their
    own choosing, so they run through the chain one at a time.
    """
    return (
        message.message_type in _BATCHABLE_TYPES
        and not message.has_txn_context
        and not message.has_barrier_timetick
    )


def build_chain(interceptors: Sequence[Interceptor], terminal: AppendFunc) -> AppendFunc:
    """``interceptors[0]`` outermost, ``terminal`` (the backend append) innermost."""
    append = terminal
    for interceptor in reversed(interceptors):
        append = _Step(interceptor, append)
    return append


def build_batch_chain(
    interceptors: Sequence[Interceptor], terminal: BatchAppendFunc
) -> BatchAppendFunc:
    """:func:`build_chain` for batches: ``do_append_batch`` of each step around ``terminal``."""
    append = terminal
    for interceptor in reversed(interceptors):
        append = _BatchStep(interceptor, append)
    return append


class _Step:
    """``interceptor.do_append(message, next_)`` as an :data:`AppendFunc`.

    A plain callable returning the interceptor's coroutine, not a coroutine
    wrapping it: every message passes each step, and a wrapper coroutine per
    step and message is pure overhead (a frame resumed at every suspension).
    """

    __slots__ = ("_do_append", "_next")

    def __init__(self, interceptor: Interceptor, next_: AppendFunc) -> None:
        self._do_append = interceptor.do_append
        self._next = next_

    def __call__(self, message: MutableMessage) -> Awaitable[AppendResult]:
        return self._do_append(message, self._next)


class _BatchStep:
    """``interceptor.do_append_batch(messages, next_)`` as a :data:`BatchAppendFunc`."""

    __slots__ = ("_do_append_batch", "_next")

    def __init__(self, interceptor: Interceptor, next_: BatchAppendFunc) -> None:
        self._do_append_batch = interceptor.do_append_batch
        self._next = next_

    def __call__(self, messages: list[MutableMessage]) -> Awaitable[list[Outcome]]:
        return self._do_append_batch(messages, self._next)


_BATCHABLE_TYPES = frozenset(
    t
    for t in MessageType
    if not (t.is_exclusive_required or t.is_self_controlled)
    and t
    not in (
        MessageType.BEGIN_TXN,
        MessageType.COMMIT_TXN,
        MessageType.ROLLBACK_TXN,
        MessageType.TXN,
    )
)
