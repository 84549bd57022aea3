"""The opener: a root directory and the pchannels opened under it."""

from __future__ import annotations

import os
from pathlib import Path

from walstream.errors import WALClosedError
from walstream.walimpls import AccessMode, Capabilities, Opener, PChannelInfo, WALImpl

from walstream_woodpecker.hub import hub_for
from walstream_woodpecker.layout import ChannelLayout
from walstream_woodpecker.ownership import take_ownership
from walstream_woodpecker.settings import WoodpeckerSettings
from walstream_woodpecker.wal import WoodpeckerWAL
from walstream_woodpecker.writer import SegmentWriter


class WoodpeckerOpener(Opener):
    """Opens pchannels as directories under ``settings.root``."""

    def __init__(self, settings: WoodpeckerSettings) -> None:
        self._settings = settings
        # Fixed now, so a later chdir cannot move the data.
        self._root = Path(os.path.abspath(settings.root))
        self._wals: set[WoodpeckerWAL] = set()
        self._closed = False
        self._capabilities = Capabilities(
            max_message_bytes=settings.max_message_bytes,
            durable_across_processes=True,
            fencing=True,
            tail_read=True,
        )

    @property
    def capabilities(self) -> Capabilities:
        """Durable across processes, fenced, tail-readable; the configured size limit."""
        return self._capabilities

    @property
    def root(self) -> Path:
        """The absolute root directory."""
        return self._root

    async def open(self, pchannel: PChannelInfo) -> WALImpl:
        """Open ``pchannel``: RW fences lower terms, recovers and starts a new segment."""
        if self._closed:
            raise WALClosedError("this woodpecker opener is closed")
        if not isinstance(pchannel, PChannelInfo):
            raise TypeError(f"open() takes a PChannelInfo, got {type(pchannel).__name__}")
        layout = ChannelLayout(self._root / pchannel.name)
        writer: SegmentWriter | None = None
        if pchannel.access_mode is AccessMode.RW:
            ownership = await take_ownership(layout, pchannel, self._settings.fence_lock_timeout_s)
            writer = SegmentWriter(layout, pchannel, self._settings, ownership, hub_for(layout))
        wal = WoodpeckerWAL(
            pchannel, layout, self._settings, hub_for(layout), writer, on_close=self._wals.discard
        )
        if self._closed:  # closed while this open was in progress
            await wal.close()
            raise WALClosedError("this woodpecker opener was closed during open()")
        self._wals.add(wal)
        return wal

    async def close(self) -> None:
        """Close every WAL opened here; idempotent."""
        self._closed = True
        for wal in list(self._wals):
            await wal.close()
