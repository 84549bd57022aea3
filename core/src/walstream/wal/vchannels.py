"""Which vchannels exist on a pchannel: created by CreateCollection, ended by DropCollection.

The registry is changed only by the vchannel interceptor, under the vchannel's
write lock (both messages are exclusive), so a DML message that checks it under
the read lock sees a settled state.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable

from walstream.message import ImmutableMessage, MessageID, MessageType
from walstream.wal.errors import VChannelDroppedError, VChannelExistsError, VChannelNotFoundError
from walstream.walimpls import DeliverAll, ReadOption, WALImpl

__all__ = ["VChannelRegistry", "VChannelState", "recover_vchannels"]


class VChannelState(enum.Enum):
    """The life of a vchannel on its pchannel; a dropped one never comes back."""

    ALIVE = "alive"
    DROPPED = "dropped"


class VChannelRegistry:
    """The vchannels of one pchannel and their state."""

    __slots__ = ("_pchannel", "_states")

    def __init__(
        self, pchannel: str, alive: Iterable[str] = (), dropped: Iterable[str] = ()
    ) -> None:
        """Start with ``alive`` and ``dropped`` vchannels (from recovery)."""
        self._pchannel = pchannel
        self._states: dict[str, VChannelState] = {v: VChannelState.ALIVE for v in alive}
        self._states.update({v: VChannelState.DROPPED for v in dropped})

    def state(self, vchannel: str) -> VChannelState | None:
        """The state of ``vchannel``; ``None`` if it was never created here."""
        return self._states.get(vchannel)

    @property
    def alive(self) -> frozenset[str]:
        """The vchannels that accept messages."""
        return frozenset(v for v, s in self._states.items() if s is VChannelState.ALIVE)

    def check_writable(self, vchannel: str, what: str) -> None:
        """Raise unless ``vchannel`` is alive; ``what`` names the refused message."""
        state = self._states.get(vchannel)
        if state is VChannelState.ALIVE:
            return
        if state is VChannelState.DROPPED:
            raise VChannelDroppedError(
                f"{what} refused: vchannel {vchannel!r} of pchannel {self._pchannel!r} was "
                f"dropped by a DropCollection; nothing more can be written to it"
            )
        raise VChannelNotFoundError(
            f"{what} refused: vchannel {vchannel!r} does not exist on pchannel "
            f"{self._pchannel!r}; append its CreateCollection first"
        )

    def check_creatable(self, vchannel: str) -> None:
        """Raise unless ``vchannel`` was never created (vchannel names are never reused)."""
        state = self._states.get(vchannel)
        if state is not None:
            raise VChannelExistsError(
                f"CreateCollection refused: vchannel {vchannel!r} on pchannel {self._pchannel!r} "
                f"is already {state.value}; a vchannel is created once"
            )

    def created(self, vchannel: str) -> None:
        """Record a CreateCollection that was appended."""
        self._states[vchannel] = VChannelState.ALIVE

    def dropped(self, vchannel: str) -> None:
        """Record a DropCollection that was appended."""
        self._states[vchannel] = VChannelState.DROPPED

    def observe(self, message: ImmutableMessage) -> None:
        """Replay one logged message (recovery)."""
        mtype = message.message_type
        if mtype is MessageType.CREATE_COLLECTION and message.vchannel:
            self._states.setdefault(message.vchannel, VChannelState.ALIVE)
        elif mtype is MessageType.DROP_COLLECTION and message.vchannel:
            self._states[message.vchannel] = VChannelState.DROPPED


async def recover_vchannels(
    impl: WALImpl,
    until: MessageID,
    observe: Callable[[ImmutableMessage], object] | None = None,
) -> VChannelRegistry:
    """Rebuild the registry by replaying the log from its start up to ``until`` (inclusive).

    ``until`` must be an id already in the log (the WAL's first TimeTick, written
    at open), so the scan ends. Only messages still retained are seen: a backend
    that truncated a CreateCollection loses that vchannel (pass ``vchannels`` to
    ``open_wal`` instead when the log is truncated). ``observe`` also sees every
    replayed message (the segment manager recovers its collections from it).
    """
    registry = VChannelRegistry(impl.channel.name)
    scanner = await impl.read(
        ReadOption(name="walstream-vchannel-recovery", deliver_policy=DeliverAll())
    )
    try:
        async for message in scanner:
            if message.message_id > until:
                break
            registry.observe(message)
            if observe is not None:
                observe(message)
            if message.message_id == until:
                break
    finally:
        await scanner.close()
    return registry
