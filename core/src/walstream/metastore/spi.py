"""The metastore SPI: a small, etcd-like key-value store for coordination state.

The coordinator, the streaming nodes and the timestamp oracle keep their small
shared state here (pchannel assignments, terms, checkpoints, the TSO window).
The embedded implementation is SQLite (:mod:`walstream.metastore.sqlite`); an
etcd implementation follows the same contract, which is why the semantics are
etcd's:

- keys are ``str`` (non-empty), values ``bytes``;
- every write bumps one store-wide *revision* (an ``int``, strictly increasing);
  each key remembers the revision that created it and the one that last
  modified it;
- conditional writes compare a key's ``mod_revision`` (``None`` = "absent");
- a watch replays the change history of a prefix, in revision order, from any
  revision that has not been compacted away.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from walstream.errors import MetastoreError

__all__ = [
    "CompactedRevisionError",
    "EventType",
    "KeyValue",
    "Metastore",
    "MetastoreClosedError",
    "Watch",
    "WatchEvent",
]


class MetastoreClosedError(MetastoreError):
    """The metastore (or one of its watches) was used after ``close()``."""


class CompactedRevisionError(MetastoreError):
    """A watch asked for history that has been compacted away.

    Read the current state again (``range``) and watch from
    ``current_revision() + 1``.
    """

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(
            f"watch start revision {requested} has been compacted: the change log only "
            f"keeps revisions after {compacted}; re-read the state with range() and watch "
            f"from current_revision() + 1"
        )
        self.requested = requested
        self.compacted = compacted


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One key as stored: its value and the revisions that created and last modified it."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int


class EventType(enum.Enum):
    """What a :class:`WatchEvent` reports."""

    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change seen by a watch.

    ``value`` is the new value for ``PUT`` and ``b""`` for ``DELETE`` (as in etcd).
    ``revision`` is the store revision of the change.
    """

    type: EventType
    key: str
    value: bytes
    revision: int


class Watch(AsyncIterator[WatchEvent]):
    """An async iterator of :class:`WatchEvent` in revision order.

    One consumer at a time. ``aclose()`` may be called from any task, also while
    another task waits in ``__anext__`` (that call then ends the iteration); it
    never blocks for long and leaves no task behind. Use it as an async context
    manager to close it for sure::

        async with store.watch("nodes/") as events:
            async for ev in events:
                ...
    """

    @abc.abstractmethod
    async def __anext__(self) -> WatchEvent:
        """The next event; waits for one. ``StopAsyncIteration`` after ``aclose()``."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Stop watching; idempotent."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class Metastore(abc.ABC):
    """Async key-value store for coordination state (see the module docstring).

    A returned write is durable. Implementations raise :class:`MetastoreError`
    (or a subclass) for failures; a failed condition is *not* a failure: it is
    reported by the return value.
    """

    async def open(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Connect eagerly, surfacing configuration errors now instead of at first use."""

    @abc.abstractmethod
    async def get(self, key: str) -> KeyValue | None:
        """The key's current value, or ``None`` if it does not exist."""

    @abc.abstractmethod
    async def put(self, key: str, value: bytes) -> int:
        """Set ``key`` unconditionally; returns the new store revision."""

    @abc.abstractmethod
    async def put_if(self, key: str, expected_mod_revision: int | None, value: bytes) -> int | None:
        """Conditional put; the new revision, or ``None`` if the condition failed.

        ``expected_mod_revision=None`` creates the key only if it is absent; an
        ``int`` writes only if the key exists with exactly that ``mod_revision``.
        Returning the revision lets a caller chain conditional writes on a key it
        owns (the timestamp oracle does) without a racy re-read.
        """

    async def compare_and_swap(
        self, key: str, expected_mod_revision: int | None, value: bytes
    ) -> bool:
        """:meth:`put_if` as a boolean: ``True`` if written, ``False`` on a conflict."""
        return await self.put_if(key, expected_mod_revision, value) is not None

    @abc.abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove ``key``; ``True`` if it existed (only then is the revision bumped)."""

    @abc.abstractmethod
    async def range(self, prefix: str, limit: int | None = None) -> list[KeyValue]:
        """Every key starting with ``prefix`` (``""`` = all), sorted by key, at most ``limit``."""

    @abc.abstractmethod
    async def current_revision(self) -> int:
        """The store's latest revision (0 for an empty, never-written store).

        To follow a prefix without gaps: ``rev = await current_revision()``, then
        ``range(prefix)``, then ``watch(prefix, rev + 1)`` (events between ``rev``
        and the range may then be seen twice, never missed).
        """

    @abc.abstractmethod
    def watch(self, prefix: str, start_revision: int | None = None) -> Watch:
        """Changes to keys starting with ``prefix``, in revision order.

        With ``start_revision``: every change with revision ``>= start_revision``
        (a :class:`CompactedRevisionError` is raised from the iterator if that
        history is gone). Without: only changes after the call; every write made
        through this handle after the call is seen, while a write by another
        client racing with the call may or may not be (as with etcd). For an exact
        starting point pass ``current_revision() + 1``.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the store; open watches end with :class:`MetastoreClosedError`."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
