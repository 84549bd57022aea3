"""The terminal step of the append chain: the backend append, retried unless final.

Transient backend failures are retried with jittered back-off (``walstream.retry``)
until ``append_retry_timeout_s``. Final errors are raised at once: a fenced writer
(and from then on every append, forever), a read-only or closed WAL, a message the
backend can never take (too large, malformed) and cancellation.

A not-persisted TimeTick never reaches the backend: it only advances readers in
memory, so the step answers with the newest stored id as a hint.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from walstream import retry
from walstream.errors import (
    CapabilityError,
    FencedError,
    MessageError,
    ReadOnlyWALError,
    WALClosedError,
)
from walstream.message import MessageID, MutableMessage
from walstream.wal.chain import AppendResult, Outcome
from walstream.walimpls import WALImpl

__all__ = ["BackendAppender", "is_final_append_error"]

log = logging.getLogger(__name__)

_FINAL = (
    FencedError,
    ReadOnlyWALError,
    WALClosedError,
    MessageError,  # includes MessageTooLargeError: retrying cannot make it fit
    CapabilityError,
    TypeError,
    ValueError,
    NotImplementedError,
)


def is_final_append_error(exc: BaseException) -> bool:
    """Whether retrying the backend append is pointless (anything not an ``Exception`` is)."""
    return not isinstance(exc, Exception) or isinstance(exc, _FINAL)


class BackendAppender:
    """``impl.append`` as the innermost :data:`~walstream.wal.chain.AppendFunc`.

    The returned ``AppendResult`` carries the stored id as its last-confirmed id:
    the timetick interceptor replaces it with the one it stamped.
    """

    __slots__ = ("_fenced", "_impl", "_last_id", "_on_fenced", "_retry_timeout")

    def __init__(
        self,
        impl: WALImpl,
        *,
        retry_timeout_s: float,
        on_fenced: Callable[[FencedError], None] | None = None,
    ) -> None:
        """Append to ``impl``; ``on_fenced`` runs once, when the backend first says fenced."""
        self._impl = impl
        self._retry_timeout = retry_timeout_s
        self._on_fenced = on_fenced
        self._fenced: FencedError | None = None
        self._last_id: MessageID | None = None

    @property
    def fenced(self) -> FencedError | None:
        """The error that fenced this writer, if it was fenced (then it stays so)."""
        return self._fenced

    @property
    def last_message_id(self) -> MessageID | None:
        """The id of the most recently completed backend append."""
        return self._last_id

    def check_usable(self) -> None:
        """Raise a fresh ``FencedError`` if this writer was fenced."""
        if self._fenced is not None:
            raise FencedError(
                f"the WAL on pchannel {self._impl.channel.name!r} (term "
                f"{self._impl.channel.term}) was fenced and is unavailable for good: "
                f"{self._fenced}"
            )

    async def __call__(self, message: MutableMessage) -> AppendResult:
        """Store ``message`` (or skip a not-persisted TimeTick) and say where it is."""
        self.check_usable()
        timetick = message.timetick if message.has_timetick else 0
        if not message.is_persisted:
            hint = self._last_id
            if hint is None:
                raise WALClosedError("no message was stored yet: the WAL is not open")
            return AppendResult(hint, timetick, hint, message.txn_context)
        deadline = time.monotonic() + self._retry_timeout
        try:
            # As ``retry.acall``, with its first attempt inline: no closures per append.
            try:
                message_id = await self._impl.append(message)
            except BaseException as exc:
                if is_final_append_error(exc) or time.monotonic() >= deadline:
                    raise
                message_id = await self._retry(message, deadline)
        except FencedError as exc:
            self._fence(exc)
            raise
        self._last_id = message_id
        return AppendResult(message_id, timetick, message_id, message.txn_context)

    async def append_batch(self, messages: list[MutableMessage]) -> list[Outcome]:
        """Store a batch of persisted messages (``WALImpl.append_many``); one outcome each.

        Messages that failed transiently are retried one by one, concurrently, until
        the deadline; the others keep their first outcome.
        """
        self.check_usable()
        deadline = time.monotonic() + self._retry_timeout
        stored: list[MessageID | BaseException]
        try:
            stored = await self._impl.append_many(messages)
        except Exception as exc:
            # The call failed as a whole: each message retries on its own if it may.
            if isinstance(exc, FencedError):
                self._fence(exc)
            if is_final_append_error(exc):
                raise
            stored = [exc] * len(messages)
        outcomes: list[Outcome] = []
        retry: list[int] = []
        last: MessageID | None = None
        for i, (message, outcome) in enumerate(zip(messages, stored, strict=True)):
            if isinstance(outcome, BaseException):
                if isinstance(outcome, FencedError):
                    self._fence(outcome)
                elif not is_final_append_error(outcome):
                    retry.append(i)
                outcomes.append(outcome)
            else:
                outcomes.append(AppendResult(outcome, message.timetick, outcome))
                last = outcome
        if last is not None:
            self._last_id = last
        if retry and self._fenced is None and time.monotonic() < deadline:
            retried = await asyncio.gather(
                *(self._retry(messages[i], deadline) for i in retry), return_exceptions=True
            )
            for i, again in zip(retry, retried, strict=True):
                if isinstance(again, BaseException):
                    if isinstance(again, FencedError):
                        self._fence(again)
                    outcomes[i] = again
                else:
                    outcomes[i] = AppendResult(again, messages[i].timetick, again)
                    self._last_id = again
        return outcomes

    async def _retry(self, message: MutableMessage, deadline: float) -> MessageID:
        return await retry.aretry(
            lambda: self._impl.append(message),
            deadline,
            lambda exc: not is_final_append_error(exc),
            on_retry=lambda: log.warning(
                "backend append to %s failed transiently; retrying", self._impl.channel.name
            ),
        )

    def _fence(self, exc: FencedError) -> None:
        if self._fenced is not None:
            return
        self._fenced = exc
        log.error("WAL on pchannel %s is fenced: %s", self._impl.channel.name, exc)
        if self._on_fenced is not None:
            self._on_fenced(exc)
