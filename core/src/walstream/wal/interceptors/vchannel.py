"""VChannel check: CreateCollection creates a vchannel, DropCollection drops it.

Every other message on a vchannel needs it alive, except a (WAL-generated) Flush:
the segments a DropCollection seals are flushed right after it. Runs inside the lock step, so
a DropCollection (write lock) waits for every in-flight message of its vchannel
and no message can pass the check between the Drop's append and its record.
"""

from __future__ import annotations

from typing import ClassVar

from walstream.message import MessageType, MutableMessage
from walstream.wal.chain import AppendFunc, AppendResult, BatchAppendFunc, Interceptor, Outcome
from walstream.wal.vchannels import VChannelRegistry, VChannelState

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

    async def do_append_batch(
        self, messages: list[MutableMessage], next_: BatchAppendFunc
    ) -> list[Outcome]:
        """Refuse each message whose vchannel is not writable; the rest go on together.

        A batch holds no Create/DropCollection (exclusive) and no Flush (WAL-generated).
        """
        outcomes: list[Outcome | None] = [None] * len(messages)
        passing: list[MutableMessage] = []
        where: list[int] = []
        registry, pchannel, alive = self._registry, self._pchannel, VChannelState.ALIVE
        for i, message in enumerate(messages):
            vchannel = message.vchannel
            if vchannel and vchannel != pchannel and registry.state(vchannel) is not alive:
                try:
                    registry.check_writable(vchannel, f"a {message.message_type.name} message")
                except Exception as exc:
                    outcomes[i] = exc
                    continue
            passing.append(message)
            where.append(i)
        if len(passing) == len(messages):
            return await next_(messages)
        if passing:
            for i, outcome in zip(where, await next_(passing), strict=True):
                outcomes[i] = outcome
        return [outcome for outcome in outcomes if outcome is not None]
