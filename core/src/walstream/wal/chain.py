"""The append path as a chain of interceptors, each a small object with one job.

Composed outermost first, as Milvus does: redo -> lock -> timetick/txn -> segment
assignment -> the backend append. Each interceptor gets the message and ``next`` (the
rest of the chain) and returns the ``AppendResult`` of the message it appended.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from walstream.errors import WALError
from walstream.message import MessageID, MutableMessage
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

    async def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release what this interceptor holds (called once, at WAL close, innermost first)."""


def build_chain(interceptors: Sequence[Interceptor], terminal: AppendFunc) -> AppendFunc:
    """``interceptors[0]`` outermost, ``terminal`` (the backend append) innermost."""
    append = terminal
    for interceptor in reversed(interceptors):
        append = _bind(interceptor, append)
    return append


def _bind(interceptor: Interceptor, next_: AppendFunc) -> AppendFunc:
    return _Step(interceptor, next_)


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
