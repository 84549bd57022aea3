"""VChannel check: CreateCollection creates a vchannel, DropCollection drops it.

Every other message on a vchannel needs it alive, except a (WAL-generated) Flush:
the segments a DropCollection seals are flushed right after it. Runs inside the lock step, so
a DropCollection (write lock) waits for every in-flight message of its vchannel
and no message can pass the check between the Drop's append and its record.
"""

from __future__ import annotations

from typing import ClassVar

from walstream.message import MessageType, MutableMessage
from walstream.wal.chain import AppendFunc, AppendResult, Interceptor
from walstream.wal.vchannels import VChannelRegistry

__all__ = ["VChannelInterceptor"]


class VChannelInterceptor(Interceptor):
    """Refuses messages to unknown or dropped vchannels; records create and drop."""

    name: ClassVar[str] = "vchannel"

    def __init__(self, pchannel: str, registry: VChannelRegistry) -> None:
        """Check messages of ``pchannel`` against ``registry``."""
        self._pchannel = pchannel
        self._registry = registry

    async def do_append(self, message: MutableMessage, next_: AppendFunc) -> AppendResult:
        """Check, append, then record a create or drop that succeeded."""
        vchannel = message.vchannel
        if not vchannel or vchannel == self._pchannel:
            return await next_(message)  # all-vchannel or pchannel-level message
        mtype = message.message_type
        if mtype is MessageType.CREATE_COLLECTION:
            self._registry.check_creatable(vchannel)
            result = await next_(message)
            self._registry.created(vchannel)
            return result
        if not (mtype is MessageType.FLUSH and self._registry.state(vchannel) is not None):
            # A Flush of segments sealed by a DropCollection comes after the drop.
            self._registry.check_writable(vchannel, f"a {mtype.name} message")
        result = await next_(message)
        if mtype is MessageType.DROP_COLLECTION:
            self._registry.dropped(vchannel)
        return result
