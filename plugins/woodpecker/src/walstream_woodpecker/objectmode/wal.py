"""One pchannel in object mode, opened read-write (with a writer) or read-only."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from walstream.errors import ReadOnlyWALError, WALClosedError
from walstream.message import MessageID, MutableMessage, encode
from walstream.walimpls import PChannelInfo, ReadOption, Scanner, WALImpl

from walstream_woodpecker.message_id import WoodpeckerMessageID
from walstream_woodpecker.objectmode.context import LogContext
from walstream_woodpecker.objectmode.scanner import ObjectScanner
from walstream_woodpecker.objectmode.start import resolve_start
from walstream_woodpecker.objectmode.writer import ObjectWriter
from walstream_woodpecker.start import as_woodpecker_id


class ObjectWAL(WALImpl):
    """A woodpecker pchannel stored as block objects; RO instances have no writer."""

    def __init__(
        self,
        pchannel: PChannelInfo,
        ctx: LogContext,
        writer: ObjectWriter | None,
        on_close: Callable[[ObjectWAL], None] | None = None,
    ) -> None:
        self._pchannel = pchannel
        self._where = f"woodpecker pchannel {pchannel.name!r}"
        self._ctx = ctx
        self._writer = writer
        self._on_close = on_close
        self._scanners: set[ObjectScanner] = set()
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

    def _refuse_read_only(self, what: str) -> ObjectWriter:
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
        """Append ``message``; its id once the block object holding it is stored."""
        writer = self._refuse_read_only("append")
        self._check_open()
        entry = encode(message, self._ctx.settings.max_message_bytes, self._where)
        return await writer.append(entry)

    async def read(self, option: ReadOption) -> Scanner:
        """Open a scanner; see ``objectmode.start`` for where each policy starts."""
        self._check_open()
        start, floor = await resolve_start(self._ctx, option.deliver_policy)
        scanner = ObjectScanner(
            option.name,
            self._ctx,
            start,
            floor,
            batch_messages=option.read_ahead_buffer_size,
            on_close=self._scanners.discard,
        )
        if self._closed:
            await scanner.close()
            raise WALClosedError(f"woodpecker WAL {self._pchannel.name!r} is closed")
        self._scanners.add(scanner)
        return scanner

    async def truncate(self, message_id: MessageID) -> None:
        """Move the truncation point forward; delete whole segments before its segment."""
        writer = self._refuse_read_only("truncate")
        self._check_open()
        await writer.truncate(as_woodpecker_id(message_id, "truncate"))

    async def close(self) -> None:
        """Upload pending appends, complete the segment, close scanners; idempotent.

        The work runs in a task of its own, so a cancelled caller does not leave it
        half done: a later ``close()`` waits for the same task."""
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
