"""The opener: one pulsar-client ``Client`` for a cluster, and the pchannels opened on it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import pulsar  # type: ignore[import-untyped]
from walstream.errors import WALClosedError, WALError
from walstream.walimpls import AccessMode, Capabilities, Opener, PChannelInfo, WALImpl

from walstream_pulsar import retry
from walstream_pulsar.client import make_client, producer_kwargs
from walstream_pulsar.dedup import DuplicateLocator
from walstream_pulsar.errors import PulsarUnavailableError, final_error
from walstream_pulsar.message_id import PulsarMessageID
from walstream_pulsar.naming import topic_name
from walstream_pulsar.records import DATA, record_key
from walstream_pulsar.settings import PulsarSettings
from walstream_pulsar.takeover import check_non_partitioned, ensure_subscription, take_over
from walstream_pulsar.wal import PulsarWAL
from walstream_pulsar.writer import PulsarWriter

# Slack over open_timeout_s for the worker thread's own deadline to fire first; a blocking
# client call in flight may outlast it (the client's operation timeout), then open() gives
# up at open_timeout_s + this and the thread closes whatever it still creates.
_GRACE_S = 0.5


class PulsarOpener(Opener):
    """Opens pchannels as non-partitioned persistent topics of one Pulsar cluster."""

    def __init__(self, settings: PulsarSettings) -> None:
        self._settings = settings
        self._client = make_client(settings)
        self._wals: set[PulsarWAL] = set()
        self._closed = False
        self._capabilities = Capabilities(
            max_message_bytes=settings.max_message_bytes,
            durable_across_processes=True,
            fencing=True,
            tail_read=True,
        )

    @property
    def capabilities(self) -> Capabilities:
        """Durable, fenced, tail-readable; the configured size limit."""
        return self._capabilities

    @property
    def settings(self) -> PulsarSettings:
        """The settings this opener was built with."""
        return self._settings

    async def open(self, pchannel: PChannelInfo) -> WALImpl:
        """Open ``pchannel``; RW fences every writer of a lower term (or the same term)."""
        if self._closed:
            raise WALClosedError("this pulsar opener is closed")
        if not isinstance(pchannel, PChannelInfo):
            raise TypeError(f"open() takes a PChannelInfo, got {type(pchannel).__name__}")
        s = self._settings
        topic = topic_name(s.tenant, s.namespace, s.topic_prefix, pchannel.name)
        rw = pchannel.access_mode is AccessMode.RW
        deadline = time.monotonic() + s.open_timeout_s
        what = f"opening pulsar pchannel {pchannel.name!r} (topic {topic!r}, term {pchannel.term})"
        client = self._client
        abandoned = threading.Event()

        def prepare() -> tuple[pulsar.Producer, PulsarMessageID | None] | None:
            retry.call(lambda: check_non_partitioned(client, topic), deadline)
            if not rw:
                return None
            retry.call(
                lambda: ensure_subscription(client, topic, s.truncation_subscription), deadline
            )
            taken = take_over(
                client, topic, pchannel.name, pchannel.term, producer_kwargs(s), deadline
            )
            if abandoned.is_set():  # open() gave up meanwhile: nobody will use it
                with contextlib.suppress(pulsar.PulsarException):
                    taken[0].close()
                raise PulsarUnavailableError(f"{what}: abandoned after open_timeout_s")
            return taken

        try:
            async with asyncio.timeout(s.open_timeout_s + _GRACE_S):
                taken = await asyncio.to_thread(prepare)
        except TimeoutError:
            abandoned.set()
            raise self._unavailable(what, None) from None
        except pulsar.PulsarException as exc:
            if retry.retryable(exc):
                raise self._unavailable(what, exc) from exc
            raise final_error(what, exc) from exc
        writer = None
        if taken is not None:
            producer, claim = taken
            where = f"pulsar pchannel {pchannel.name!r}"
            duplicates = DuplicateLocator(
                client, topic, record_key(DATA, pchannel.term), claim, s.append_timeout_s, where
            )
            writer = PulsarWriter(
                producer,
                pchannel.term,
                where,
                s.max_pending_messages,
                s.append_timeout_s,
                duplicates,
            )
        wal = PulsarWAL(pchannel, topic, s, client, writer, on_close=self._wals.discard)
        if self._closed:  # closed while this open was in progress
            await wal.close()
            raise WALClosedError("this pulsar opener was closed during open()")
        self._wals.add(wal)
        return wal

    def _unavailable(self, what: str, exc: BaseException | None) -> WALError:
        detail = f" (last error: {type(exc).__name__}: {exc})" if exc is not None else ""
        return PulsarUnavailableError(
            f"{what}: no answer from the Pulsar cluster at {self._settings.service_url} within "
            f"open_timeout_s={self._settings.open_timeout_s}s{detail}. Check that the brokers "
            f"are running and reachable and that service_url is right"
        )

    async def close(self) -> None:
        """Close every WAL opened here, then the client; idempotent."""
        if self._closed and not self._wals:
            return
        self._closed = True
        for wal in list(self._wals):
            await wal.close()
        with contextlib.suppress(pulsar.PulsarException):
            await asyncio.to_thread(self._client.close)
