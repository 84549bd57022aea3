"""Scanners: one pulsar Reader each, read on a thread of its own.

``read()`` creates the Reader (so its start position is fixed when ``read()``
returns); the scanner's thread (see ``walstream.walimpls.threaded.ThreadedScanner``)
calls ``read_next`` with a short timeout in a loop, so it notices ``close()`` quickly.
``read_next`` returns as soon as a message arrives (the broker pushes messages to the
reader's queue), which is how tail reads wake without polling delays. At most
``read_ahead`` decoded messages wait for the reader, beyond that the thread pauses.

The scanner owns no asyncio task. ``close()`` stops the thread, wakes a pending
``__anext__`` (which then ends the iteration) and waits, bounded, for the reader to be
closed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pulsar  # type: ignore[import-untyped]
from walstream.errors import MessageDecodeError, WALError
from walstream.message import ImmutableMessage
from walstream.walimpls.threaded import DEFAULT_READ_AHEAD, ThreadedScanner

from walstream_pulsar.errors import error_name, hint, is_transient
from walstream_pulsar.message_id import PulsarMessageID
from walstream_pulsar.records import CLAIM, parse_key, to_message

__all__ = ["DEFAULT_READ_AHEAD", "PulsarScanner"]

log = logging.getLogger(__name__)

_BATCH = 256


class PulsarScanner(ThreadedScanner):
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
        """Read ``reader`` (of ``topic``) on a thread; the scanner closes the reader."""
        self._reader = reader
        super().__init__(
            name, backend="pulsar", topic=topic, read_ahead=read_ahead, on_close=on_close
        )

    # --- the hooks, on the thread -------------------------------------------------------

    def _close_source(self) -> None:
        self._reader.close()

    def _read_batch(self) -> list[ImmutableMessage]:
        out: list[ImmutableMessage] = []
        wait = round(self.poll_interval_s * 1000)
        while len(out) < _BATCH and not self._stopping():
            try:
                msg = self._reader.read_next(wait)
            except pulsar.PulsarException as exc:
                if error_name(exc) == "Timeout":
                    break
                if error_name(exc) == "AlreadyClosed" and self._stopping():
                    break
                if is_transient(exc):
                    log.warning("pulsar scanner %r on %r: %r", self.name, self._topic, exc)
                    break
                raise WALError(
                    f"{self._where} failed: {error_name(exc)} ({exc}): "
                    f"{hint(error_name(exc), str(exc))}"
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
