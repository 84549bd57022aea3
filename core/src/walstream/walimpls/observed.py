"""A WALImpl wrapper that reports opens, appends, fencing and closes to observers."""

from __future__ import annotations

from walstream import hooks
from walstream.errors import FencedError
from walstream.message import MessageID, MutableMessage
from walstream.walimpls.options import PChannelInfo, ReadOption
from walstream.walimpls.spi import Opener, Scanner, WALImpl


class ObservedWAL(WALImpl):
    """Delegates to ``inner`` and fires the ``walstream.hooks`` events around it."""

    def __init__(self, inner: WALImpl) -> None:
        self._inner = inner
        self._closed = False
        hooks.notify("walstream_wal_opened", pchannel=inner.channel, wal_name=inner.wal_name)

    @property
    def wal_name(self) -> str:
        return self._inner.wal_name

    @property
    def channel(self) -> PChannelInfo:
        return self._inner.channel

    async def append(self, message: MutableMessage) -> MessageID:
        try:
            message_id = await self._inner.append(message)
        except FencedError:
            hooks.notify("walstream_pchannel_fenced", pchannel=self.channel)
            raise
        if hooks.has_observers("walstream_messages_appended"):
            hooks.notify(
                "walstream_messages_appended", pchannel=self.channel, message_ids=[message_id]
            )
        return message_id

    async def read(self, option: ReadOption) -> Scanner:
        return await self._inner.read(option)

    async def truncate(self, message_id: MessageID) -> None:
        await self._inner.truncate(message_id)

    async def close(self) -> None:
        await self._inner.close()
        if not self._closed:
            self._closed = True
            hooks.notify("walstream_wal_closed", pchannel=self.channel, wal_name=self.wal_name)


async def open_observed(opener: Opener, pchannel: PChannelInfo) -> ObservedWAL:
    """Open ``pchannel`` and wrap it so observers hear about it."""
    return ObservedWAL(await opener.open(pchannel))
