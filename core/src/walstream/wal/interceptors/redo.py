"""Redo: re-run the rest of the chain when an inner step raises ``RedoError``.

Re-entering lock and timetick gives the message a fresh timetick each time
(for example after a segment was sealed at a later timetick meanwhile).
"""

from __future__ import annotations

import logging
from typing import ClassVar

from walstream.message import MutableMessage
from walstream.wal.chain import AppendFunc, AppendResult, Interceptor, RedoError
from walstream.wal.errors import RedoLimitError

__all__ = ["RedoInterceptor"]

log = logging.getLogger(__name__)


class RedoInterceptor(Interceptor):
    """Outermost step: loops ``next_(message)`` while it raises ``RedoError``, bounded."""

    name: ClassVar[str] = "redo"

    def __init__(self, max_attempts: int) -> None:
        """At most ``max_attempts`` runs of the chain per append."""
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self._max_attempts = max_attempts

    async def do_append(self, message: MutableMessage, next_: AppendFunc) -> AppendResult:
        """Append, redoing on ``RedoError`` up to the limit (then ``RedoLimitError``)."""
        for attempt in range(1, self._max_attempts + 1):
            try:
                return await next_(message)
            except RedoError as exc:
                last = exc
                log.debug("redo %d of a %s append: %s", attempt, message.message_type.name, exc)
        raise RedoLimitError(
            f"a {message.message_type.name} append on vchannel {message.vchannel!r} was redone "
            f"{self._max_attempts} times (redo_max_attempts) without succeeding: {last}"
        ) from last
