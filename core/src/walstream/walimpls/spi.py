"""The backend SPI every WAL plugin implements (modelled on Milvus's ``walimpls``).

Lifetimes nest: a ``Builder`` lives for the process, an ``Opener`` as long as its
client resources, a ``WALImpl`` within its opener, a ``Scanner`` within its WAL.
All I/O is async; a backend whose client blocks runs those calls in threads.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic_settings import BaseSettings

from walstream._closing import AsyncClosing
from walstream.message import DEFAULT_MAX_MESSAGE_BYTES, ImmutableMessage, MessageID, MutableMessage
from walstream.walimpls.options import PChannelInfo, ReadOption


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can promise; the contract suite gates optional cases on these.

    - ``max_message_bytes``: the largest ``Message.size`` an append accepts.
    - ``durable_across_processes``: acknowledged data survives the writer process being killed.
    - ``fencing``: a higher-term RW open fences lower-term writers.
    - ``tail_read``: scanners deliver messages appended after they were opened.
    """

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    durable_across_processes: bool = True
    fencing: bool = True
    tail_read: bool = True


class Scanner(AsyncClosing, ABC):
    """Async iterator over immutable messages in log order.

    Iteration ends after ``close()``; a backend failure is raised from
    ``__anext__`` and kept in ``error``.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._error: BaseException | None = None

    @property
    def name(self) -> str:
        """The name given in ``ReadOption``."""
        return self._name

    @property
    def error(self) -> BaseException | None:
        """The failure that ended this scanner, if any."""
        return self._error

    def __aiter__(self) -> AsyncIterator[ImmutableMessage]:
        return self

    @abstractmethod
    async def __anext__(self) -> ImmutableMessage:
        """The next message; waits for new data at the tail."""

    @abstractmethod
    async def close(self) -> None:
        """Stop the scanner and release its resources; idempotent, never hangs."""


class WALImpl(AsyncClosing, ABC):
    """One pchannel opened at a term. RO-opened WALs refuse append and truncate."""

    @property
    @abstractmethod
    def wal_name(self) -> str:
        """The backend name (``Builder.name``)."""

    @property
    @abstractmethod
    def channel(self) -> PChannelInfo:
        """The pchannel, term and access mode this WAL was opened with."""

    @abstractmethod
    async def append(self, message: MutableMessage) -> MessageID:
        """Store ``message``; the id is durable when this returns.

        Raises ``FencedError`` forever once a higher term took the pchannel,
        ``ReadOnlyWALError`` on an RO WAL, ``MessageTooLargeError`` over the limit.
        """

    async def append_many(
        self, messages: Sequence[MutableMessage]
    ) -> list[MessageID | BaseException]:
        """Store several messages; one outcome per message, in the order given.

        An error fails only its own message (say, one too large); the others are
        stored. As with concurrent ``append`` calls, the log may hold them in any
        relative order. The default runs ``append`` for each, concurrently; a
        backend that can queue many messages at once should override it.
        """
        return list(
            await asyncio.gather(*(self.append(m) for m in messages), return_exceptions=True)
        )

    @abstractmethod
    async def read(self, option: ReadOption) -> Scanner:
        """Open a scanner."""

    @abstractmethod
    async def truncate(self, message_id: MessageID) -> None:
        """Allow the backend to delete every message strictly before ``message_id``."""

    @abstractmethod
    async def close(self) -> None:
        """Close this WAL (not the opener); idempotent."""


class Opener(AsyncClosing, ABC):
    """Holds a backend's client resources and opens pchannels."""

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities:
        """What this backend promises."""

    @abstractmethod
    async def open(self, pchannel: PChannelInfo) -> WALImpl:
        """Open ``pchannel``; RW at a higher term fences every lower-term writer."""

    @abstractmethod
    async def close(self) -> None:
        """Release client resources; WALs opened from here must not be used after."""


class Builder(ABC):
    """Entry point of a WAL plugin, registered in the ``walstream.wal`` group.

    ``plugin_api`` is a PEP 440 specifier the core's ``PLUGIN_API_VERSION`` must
    satisfy, otherwise the plugin is skipped with a warning.
    """

    name: ClassVar[str]
    plugin_api: ClassVar[str] = ">=1.0,<2"
    settings_class: ClassVar[type[BaseSettings]]
    message_id_class: ClassVar[type[MessageID]]

    def load_settings(self, overrides: dict[str, Any] | None = None) -> BaseSettings:
        """Validate this backend's settings from env, ``walstream.toml`` and ``overrides``."""
        from walstream.settings import load_driver_settings

        return load_driver_settings(self.settings_class, overrides or {})

    @abstractmethod
    def build(self, settings: BaseSettings | None = None) -> Opener:
        """Create an opener; ``None`` means settings from env and ``walstream.toml``."""
