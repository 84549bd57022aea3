"""An in-process WAL backend for fast tests and for running the core alone.

It keeps each pchannel as a Python list shared by every opener with the same
``namespace`` in this process. Nothing survives the process, which its
capabilities say, so the contract suite skips the durability cases.
"""

from __future__ import annotations

import asyncio
import threading
from typing import ClassVar, Self

from pydantic import Field
from pydantic_settings import BaseSettings

from walstream.errors import FencedError, ReadOnlyWALError, WALClosedError, WALError
from walstream.message import ImmutableMessage, MessageID, MutableMessage, check_size
from walstream.message.message_id import marshal_int_tuple, unmarshal_int_tuple
from walstream.settings import WalstreamBaseSettings, driver_settings_config
from walstream.walimpls import (
    AccessMode,
    Builder,
    Capabilities,
    DeliverAll,
    DeliverLatest,
    DeliverStartAfter,
    DeliverStartFrom,
    Opener,
    PChannelInfo,
    ReadOption,
    Scanner,
    WALImpl,
)


class MemoryMessageID(MessageID):
    """Index of the message in its pchannel's list."""

    wal_name: ClassVar[str] = "memory"
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def sort_key(self) -> tuple[int, ...]:
        return (self.index,)

    def marshal(self) -> bytes:
        return marshal_int_tuple((self.index,))

    @classmethod
    def unmarshal(cls, data: bytes) -> Self:
        return cls(unmarshal_int_tuple(cls, data, 1)[0])


class MemorySettings(WalstreamBaseSettings):
    """Settings of the in-memory backend (env ``WALSTREAM_MEMORY_*``, TOML ``[memory]``)."""

    toml_table: ClassVar[str] = "memory"
    model_config = driver_settings_config("memory")

    namespace: str = Field(
        default="default", min_length=1, description="Openers with one namespace share logs."
    )
    max_message_bytes: int = Field(default=8 * 1024 * 1024, gt=0)


class _Log:
    """One pchannel: entries, the highest RW term, the truncation point and tail waiters."""

    def __init__(self) -> None:
        self.entries: list[tuple[bytes, dict[str, str]]] = []
        self.term = -1
        self.truncated_before = 0
        self.waiters: list[asyncio.Future[None]] = []

    def wake(self) -> None:
        waiters, self.waiters = self.waiters, []
        for fut in waiters:
            loop = fut.get_loop()
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, fut)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


_logs: dict[tuple[str, str], _Log] = {}
_logs_lock = threading.Lock()


def _log_for(namespace: str, pchannel: str) -> _Log:
    with _logs_lock:
        return _logs.setdefault((namespace, pchannel), _Log())


class MemoryScanner(Scanner):
    """Reads the shared list; waits on the log's waiters at the tail."""

    def __init__(self, name: str, log: _Log, start: int) -> None:
        super().__init__(name)
        self._log = log
        self._next = start
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None

    async def __anext__(self) -> ImmutableMessage:
        while not self._closed:
            self._next = max(self._next, self._log.truncated_before)
            if self._next < len(self._log.entries):
                payload, props = self._log.entries[self._next]
                msg = ImmutableMessage(payload, dict(props), MemoryMessageID(self._next))
                self._next += 1
                return msg
            self._waiter = asyncio.get_running_loop().create_future()
            self._log.waiters.append(self._waiter)
            await self._waiter
        raise StopAsyncIteration

    async def close(self) -> None:
        self._closed = True
        if self._waiter is not None:
            _resolve(self._waiter)


class MemoryWAL(WALImpl):
    """A pchannel opened from a ``MemoryOpener``."""

    def __init__(self, opener: MemoryOpener, channel: PChannelInfo, log: _Log) -> None:
        self._opener = opener
        self._channel = channel
        self._log = log
        self._closed = False
        self._scanners: set[MemoryScanner] = set()

    @property
    def wal_name(self) -> str:
        return MemoryBuilder.name

    @property
    def channel(self) -> PChannelInfo:
        return self._channel

    def _check_writable(self, what: str) -> None:
        if self._closed:
            raise WALClosedError(f"{what} on closed memory WAL {self._channel.name}")
        if self._channel.access_mode is AccessMode.RO:
            raise ReadOnlyWALError(
                f"{what} refused: pchannel {self._channel.name!r} was opened read-only; open it RW at a term"
            )
        if self._log.term > self._channel.term:
            raise FencedError(
                f"pchannel {self._channel.name!r} term {self._channel.term} was fenced by term {self._log.term}"
            )

    async def append(self, message: MutableMessage) -> MessageID:
        self._check_writable("append")
        check_size(message, self._opener.settings.max_message_bytes, "the memory WAL")
        self._log.entries.append((message.payload, dict(message.properties)))
        index = len(self._log.entries) - 1
        self._log.wake()
        await asyncio.sleep(0)  # let appends interleave like a real backend's would
        return MemoryMessageID(index)

    async def read(self, option: ReadOption) -> Scanner:
        if self._closed:
            raise WALClosedError(f"read on closed memory WAL {self._channel.name}")
        policy = option.deliver_policy
        if isinstance(policy, DeliverAll):
            start = 0
        elif isinstance(policy, DeliverLatest):
            start = len(self._log.entries)
        elif isinstance(policy, DeliverStartFrom):
            start = _index(policy.message_id)
        elif isinstance(policy, DeliverStartAfter):
            start = _index(policy.message_id) + 1
        else:  # pragma: no cover - the union is closed
            raise TypeError(f"unknown deliver policy {policy!r}")
        scanner = MemoryScanner(option.name, self._log, start)
        self._scanners.add(scanner)
        return scanner

    async def truncate(self, message_id: MessageID) -> None:
        self._check_writable("truncate")
        index = _index(message_id)
        if index >= len(self._log.entries):
            raise WALError(
                f"cannot truncate memory pchannel {self._channel.name!r} at {message_id!r}: the log "
                f"ends at index {len(self._log.entries) - 1} (truncate only at ids that were appended)"
            )
        self._log.truncated_before = max(self._log.truncated_before, index)

    async def close(self) -> None:
        self._closed = True
        for scanner in list(self._scanners):
            await scanner.close()
        self._opener.forget(self)


def _index(message_id: MessageID) -> int:
    if not isinstance(message_id, MemoryMessageID):
        raise TypeError(f"the memory WAL takes MemoryMessageID, got {type(message_id).__name__}")
    return message_id.index


class MemoryOpener(Opener):
    """Opens pchannels of one namespace."""

    def __init__(self, settings: MemorySettings) -> None:
        self.settings = settings
        self._wals: set[MemoryWAL] = set()

    def forget(self, wal: MemoryWAL) -> None:
        """A WAL of this opener closed."""
        self._wals.discard(wal)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            max_message_bytes=self.settings.max_message_bytes, durable_across_processes=False
        )

    async def open(self, pchannel: PChannelInfo) -> WALImpl:
        log = _log_for(self.settings.namespace, pchannel.name)
        if pchannel.access_mode is AccessMode.RW:
            if pchannel.term < log.term:
                raise FencedError(
                    f"cannot open {pchannel.name!r} RW at term {pchannel.term}: term {log.term} already owns it"
                )
            log.term = pchannel.term
        wal = MemoryWAL(self, pchannel, log)
        self._wals.add(wal)
        return wal

    async def close(self) -> None:
        for wal in list(self._wals):
            await wal.close()


class MemoryBuilder(Builder):
    """Entry point ``walstream.wal: memory``."""

    name: ClassVar[str] = "memory"
    plugin_api: ClassVar[str] = ">=1.0,<2"
    settings_class: ClassVar[type[BaseSettings]] = MemorySettings
    message_id_class: ClassVar[type[MessageID]] = MemoryMessageID

    def build(self, settings: BaseSettings | None = None) -> Opener:
        if settings is None:
            settings = self.load_settings()
        if not isinstance(settings, MemorySettings):
            raise TypeError(f"memory backend needs MemorySettings, got {type(settings).__name__}")
        return MemoryOpener(settings)
