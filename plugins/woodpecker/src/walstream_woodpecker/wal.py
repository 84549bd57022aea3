"""One pchannel opened read-write (with a writer) or read-only (readers only)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from walstream.errors import ReadOnlyWALError, WALClosedError
from walstream.message import MessageID, MutableMessage, encode
from walstream.walimpls import PChannelInfo, ReadOption, Scanner, WALImpl

from walstream_woodpecker.hub import ChannelHub
from walstream_woodpecker.layout import ChannelLayout
from walstream_woodpecker.message_id import WoodpeckerMessageID
from walstream_woodpecker.scanner import WoodpeckerScanner
from walstream_woodpecker.settings import WoodpeckerSettings
from walstream_woodpecker.start import as_woodpecker_id, resolve_start
from walstream_woodpecker.writer import SegmentWriter


class WoodpeckerWAL(WALImpl):
    """A woodpecker pchannel; RO instances have no writer and refuse append/truncate."""

    def __init__(
        self,
        pchannel: PChannelInfo,
        layout: ChannelLayout,
        settings: WoodpeckerSettings,
        hub: ChannelHub,
        writer: SegmentWriter | None,
        on_close: Callable[[WoodpeckerWAL], None] | None = None,
    ) -> None:
        self._pchannel = pchannel
        self._where = f"woodpecker pchannel {pchannel.name!r}"
        self._layout = layout
        self._settings = settings
        self._hub = hub
        self._writer = writer
        self._on_close = on_close
        self._scanners: set[WoodpeckerScanner] = set()
        self._closed = False
        self._closing: asyncio.Future[None] | None = None

    @property
    def wal_name(self) -> str:
        """``"woodpecker"``."""
        return WoodpeckerMessageID.wal_name

    @property
    def channel(self) -> PChannelInfo:
        """The pchannel, term and access mode this WAL was opened with."""
        return self._pchannel

    @property
    def directory(self) -> str:
        """The pchannel's directory on disk."""
        return str(self._layout.directory)

    def _refuse_read_only(self, what: str) -> SegmentWriter:
        if self._writer is None:
            raise ReadOnlyWALError(
                f"cannot {what} on woodpecker pchannel {self._pchannel.name!r}: it was opened "
                f"read-only (term {self._pchannel.term}); open it with AccessMode.RW to write"
            )
        return self._writer

    def _check_open(self) -> None:
        if self._closed:
            raise WALClosedError(f"woodpecker WAL {self._pchannel.name!r} is closed")

    async def append(self, message: MutableMessage) -> MessageID:
        """Append ``message``; returns its id once the block holding it is fsynced."""
        writer = self._refuse_read_only("append")
        self._check_open()
        entry = encode(message, self._settings.max_message_bytes, self._where)
        return await writer.append(entry)

    async def append_many(
        self, messages: Sequence[MutableMessage]
    ) -> list[MessageID | BaseException]:
        """Queue every message at once (stored in this order); one outcome each."""
        writer = self._refuse_read_only("append")
        self._check_open()
        limit, where = self._settings.max_message_bytes, self._where
        outcomes: list[MessageID | BaseException | asyncio.Future[WoodpeckerMessageID]] = []
        for message in messages:
            try:
                outcomes.append(writer.enqueue(encode(message, limit, where)))
            except Exception as exc:  # too large, or the writer stopped: this message only
                outcomes.append(exc)
        results: list[MessageID | BaseException] = []
        for outcome in outcomes:
            if isinstance(outcome, asyncio.Future):
                try:
                    # Queued together, they complete together: after the first, no suspension.
                    results.append(await outcome)
                except Exception as exc:
                    results.append(exc)
            else:
                results.append(outcome)
        return results

    async def read(self, option: ReadOption) -> Scanner:
        """Open a scanner; see ``walstream_woodpecker.start`` for where each policy starts."""
        self._check_open()
        start, floor = await asyncio.to_thread(
            resolve_start, self._layout, self._hub, option.deliver_policy
        )
        scanner = WoodpeckerScanner(
            option.name,
            self._layout,
            self._hub,
            start,
            floor,
            poll_interval_s=self._settings.reader_poll_interval_ms / 1000.0,
            batch_messages=option.read_ahead_buffer_size,
            on_close=self._scanners.discard,
        )
        if self._closed:  # closed while the start was being resolved
            await scanner.close()
            raise WALClosedError(f"woodpecker WAL {self._pchannel.name!r} is closed")
        self._scanners.add(scanner)
        return scanner

    async def truncate(self, message_id: MessageID) -> None:
        """Persist ``message_id`` as the truncation point; delete segments wholly before it."""
        writer = self._refuse_read_only("truncate")
        self._check_open()
        await writer.truncate(as_woodpecker_id(message_id, "truncate"))

    async def close(self) -> None:
        """Flush pending appends, stop the writer, close scanners; idempotent.

        The work runs in a task of its own, so a caller cancelled half-way does not leave
        it half done: a later ``close()`` waits for the same task."""
        if self._closing is None:
            self._closed = True
            self._closing = asyncio.get_running_loop().create_task(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        try:
            for scanner in list(self._scanners):
                await scanner.close()
            if self._writer is not None:
                await self._writer.close()
        finally:
            if self._on_close is not None:
                self._on_close(self)
