"""The ack manager: TSO timeticks for appends, and which of them are fully acknowledged.

A timetick goes Allocated (handed to an append) -> Confirmed (it and every
timetick allocated before it are acknowledged, successfully or not) -> Synced
(returned by :meth:`AckManager.sync_and_get_acknowledged`, to be covered by a
TimeTick message). The confirmed watermark ``last_confirmed_timetick`` is the
largest allocated timetick with every allocation up to it acknowledged: one
slow append holds it back; a failed append acknowledges with its error.

Appends run concurrently against the backend, so messages reach the log in an
order that differs from their timeticks; the watermark is what lets a TimeTick
promise readers that nothing at or below it is still to come.

Release on ack: a listener (:meth:`AckManager.set_listener`, the time-tick sync)
is called soon after the watermark confirms new messages, at most once per
event-loop iteration, so tailing readers need not wait for a periodic sync.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from walstream.message import ImmutableMessage, MessageID
from walstream.wal.errors import AlreadyAckedError, WALInvariantError
from walstream.wal.last_confirmed import LastConfirmedManager
from walstream.wal.txn_session import TxnSession

__all__ = ["AckDetail", "AckManager", "Acker", "SyncResult", "TimestampAllocator"]


class TimestampAllocator(Protocol):
    """The TSO calls the ack manager needs; :class:`walstream.tso.TimestampOracle` fits."""

    async def allocate(self) -> int:
        """One timestamp above every one handed out before."""
        ...

    async def allocate_at_least(self, barrier: int) -> int:
        """One timestamp ``>= barrier`` and above every one handed out before."""
        ...


@dataclass(slots=True)  # not frozen: one is built per message, and a frozen __init__ is slower
class AckDetail:
    """One successfully appended message, as acknowledged (treat as read-only)."""

    timetick: int
    message: ImmutableMessage
    end_timestamp: int
    """The last timetick allocated when it was acknowledged."""
    last_confirmed_message_id: MessageID
    """The last-confirmed id it was stamped with."""
    txn_session: TxnSession | None

    @property
    def message_id(self) -> MessageID:
        """Where the message was stored."""
        return self.message.message_id


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What a time-tick sync writes: a TimeTick at ``timetick`` covering ``details``."""

    timetick: int
    """The confirmed watermark: every message at or below it is acknowledged."""
    last_confirmed_message_id: MessageID
    """For the TimeTick message: reading from it sees every message above ``timetick``."""
    details: tuple[AckDetail, ...]
    """Messages whose timetick became confirmed since the previous sync, by timetick."""

    @property
    def should_persist(self) -> bool:
        """True when real messages were written since the last sync.

        Otherwise the TimeTick only advances readers in memory (not persisted).
        """
        return bool(self.details)


class Acker:
    """One allocated timetick; acknowledge it exactly once when its append ends."""

    __slots__ = ("_acked", "_detail", "_last_confirmed", "_manager", "_timestamp")

    def __init__(self, manager: AckManager, timestamp: int, last_confirmed: MessageID) -> None:
        self._manager = manager
        self._timestamp = timestamp
        self._last_confirmed = last_confirmed
        self._acked = False
        self._detail: AckDetail | None = None

    @property
    def timestamp(self) -> int:
        """The timetick to stamp on the message (``with_timetick``)."""
        return self._timestamp

    @property
    def last_confirmed_message_id(self) -> MessageID:
        """The id to stamp as last-confirmed (``with_last_confirmed``), fixed at allocation."""
        return self._last_confirmed

    @property
    def acknowledged(self) -> bool:
        """Whether :meth:`ack` was called."""
        return self._acked

    def ack(
        self, result: ImmutableMessage | BaseException, txn_session: TxnSession | None = None
    ) -> None:
        """Acknowledge the append: the stored message, or the error it failed with.

        ``txn_session`` is the transaction the message belongs to (BeginTxn, body,
        CommitTxn or RollbackTxn): until it is resolved the message holds the
        last-confirmed id back. Acking twice raises :class:`AlreadyAckedError`.
        """
        if self._acked:
            raise AlreadyAckedError(
                f"the timetick {self._timestamp} was already acknowledged; each Acker is acked once"
            )
        if isinstance(result, ImmutableMessage) and result.timetick != self._timestamp:
            raise WALInvariantError(
                f"acked message {result!r} has timetick {result.timetick}, "
                f"but its Acker allocated {self._timestamp}"
            )
        self._acked = True
        self._manager._on_ack(self, result, txn_session)

    def _ack_sync(self) -> None:
        # A sync timestamp: acknowledged at once, carries no message.
        self._acked = True
        self._manager._on_ack(self, None, None)

    def __repr__(self) -> str:
        return f"Acker(timestamp={self._timestamp}, acknowledged={self._acked})"


class AckManager:
    """Allocates timeticks for appends and tracks their acknowledgement (see module docs).

    The timetick interceptor calls :meth:`allocate` per message, stamps
    ``acker.timestamp`` and ``acker.last_confirmed_message_id``, appends, then
    ``acker.ack(message_or_error, session)``. The time-tick sync operator calls
    :meth:`sync_and_get_acknowledged` every interval and on demand, and, as the
    listener (:meth:`set_listener`), takes newly confirmed messages in between
    with :meth:`try_sync_nowait` or :meth:`take_acknowledged`. One event loop.
    """

    def __init__(
        self,
        tso: TimestampAllocator,
        *,
        last_confirmed_timetick: int,
        last_confirmed_message_id: MessageID,
    ) -> None:
        """Start from the WAL's first TimeTick (written when it opened): its timetick and id.

        Every timetick the TSO hands out afterwards must be above it.
        """
        self._tso = tso
        # Optional synchronous allocation (TimestampOracle.allocate_nowait): None to wait.
        self._allocate_nowait: Callable[[int], int | None] | None = getattr(
            tso, "allocate_nowait", None
        )
        self._allocate_many_nowait: Callable[[int], int | None] | None = getattr(
            tso, "allocate_many_nowait", None
        )
        # Serialises allocation so timestamps join _pending in TSO order: the
        # watermark walks _pending front to back and must never skip one that
        # the TSO handed out but is not registered yet.
        self._lock = asyncio.Lock()
        self._last_allocated = last_confirmed_timetick
        self._watermark = last_confirmed_timetick
        self._watermark_last_confirmed = last_confirmed_message_id
        self._pending: deque[Acker] = deque()  # allocation order == timetick order
        self._acknowledged: list[AckDetail] = []  # confirmed since the last sync, by timetick
        self._last_confirmed = LastConfirmedManager(last_confirmed_message_id)
        self._listener: Callable[[], None] | None = None
        self._notify_scheduled = False

    # --- inspection ----------------------------------------------------------------

    @property
    def last_allocated_timetick(self) -> int:
        """The newest timetick handed out (the initial one before any)."""
        return self._last_allocated

    @property
    def last_confirmed_timetick(self) -> int:
        """The confirmed watermark: every allocated timetick up to it is acknowledged."""
        return self._watermark

    @property
    def last_confirmed_message_id(self) -> MessageID:
        """The last-confirmed id a message allocated now would carry."""
        return self._last_confirmed.advance(self._watermark)

    @property
    def in_flight(self) -> int:
        """Allocated timeticks not confirmed yet (acknowledged ones behind a slow one count)."""
        return len(self._pending)

    @property
    def has_acknowledged(self) -> bool:
        """Whether confirmed messages wait to be taken by a sync."""
        return bool(self._acknowledged)

    def set_listener(self, listener: Callable[[], None] | None) -> None:
        """Call ``listener`` soon after acknowledged messages wait to be taken (``None``: stop).

        Scheduled with ``loop.call_soon`` when the list of confirmed messages
        becomes non-empty, so a burst of acks in one event-loop iteration makes
        one call; it runs outside the acking code and may take the messages
        (:meth:`try_sync_nowait`, :meth:`take_acknowledged`). One listener.
        """
        self._listener = listener

    # --- allocation and acknowledgement ---------------------------------------------------

    async def allocate(self, barrier: int | None = None) -> Acker:
        """A fresh timetick above every earlier one, and ``>= barrier`` when given.

        Allocations are serialised. With a barrier the TSO jumps to it if it is
        ahead of the clock (an append asking for a barrier timetick).
        """
        acker = self.try_allocate(barrier)
        if acker is not None:
            return acker
        return await self.allocate_waiting(barrier)

    def try_allocate(self, barrier: int | None = None) -> Acker | None:
        """``allocate`` if it needs no wait (the TSO has a timestamp at hand), else ``None``.

        Then call :meth:`allocate_waiting` (not ``allocate``, which would try again).
        """
        if self._allocate_nowait is not None and not self._lock.locked():
            # Fast path: no allocation is between its TSO call and its registration,
            # and this one has none either (no await), so TSO order is kept.
            ts = self._allocate_nowait(barrier or 0)
            if ts is not None:
                return self._register(ts, barrier)
        return None

    def try_allocate_many(self, count: int) -> list[Acker] | None:
        """``count`` consecutive timeticks if that needs no wait, else ``None``.

        As :meth:`try_allocate` for a batch (TSO ``allocate_many_nowait``): one clock
        read and one last-confirmed lookup for all of them, in timetick order.
        """
        allocate_many = self._allocate_many_nowait
        if allocate_many is None or self._lock.locked() or count < 1:
            return None
        first = allocate_many(count)
        if first is None:
            return None
        if first <= self._last_allocated:
            raise WALInvariantError(
                f"the TSO handed out {first}, not above the last allocated timetick "
                f"{self._last_allocated}"
            )
        last_confirmed = self._last_confirmed.advance(self._watermark)
        ackers = [Acker(self, ts, last_confirmed) for ts in range(first, first + count)]
        self._last_allocated = first + count - 1
        self._pending.extend(ackers)
        return ackers

    def ack_many(self, results: Sequence[tuple[Acker, ImmutableMessage | BaseException]]) -> None:
        """``acker.ack(result)`` for each pair (no transaction messages), confirming once."""
        end = self._last_allocated
        push = self._last_confirmed.push
        for acker, result in results:
            if acker._acked:
                raise AlreadyAckedError(
                    f"the timetick {acker.timestamp} was already acknowledged; each Acker is "
                    f"acked once"
                )
            acker._acked = True
            if isinstance(result, ImmutableMessage):
                if result.timetick != acker.timestamp:
                    raise WALInvariantError(
                        f"acked message {result!r} has timetick {result.timetick}, "
                        f"but its Acker allocated {acker.timestamp}"
                    )
                acker._detail = AckDetail(
                    acker.timestamp, result, end, acker.last_confirmed_message_id, None
                )
                push(result.message_id, end, None)
        self._confirm()

    async def allocate_waiting(self, barrier: int | None = None) -> Acker:
        """``allocate`` after :meth:`try_allocate` returned ``None``: waits for the TSO."""
        async with self._lock:
            if barrier is None:
                ts = await self._tso.allocate()
            else:
                ts = await self._tso.allocate_at_least(barrier)
            return self._register(ts, barrier)

    def _register(self, ts: int, barrier: int | None) -> Acker:
        if ts <= self._last_allocated:
            raise WALInvariantError(
                f"the TSO handed out {ts}, not above the last allocated timetick "
                f"{self._last_allocated}"
            )
        if barrier is not None and ts < barrier:
            raise WALInvariantError(f"the TSO handed out {ts}, below the barrier {barrier}")
        self._last_allocated = ts
        acker = Acker(self, ts, self._last_confirmed.advance(self._watermark))
        self._pending.append(acker)
        return acker

    def _on_ack(
        self,
        acker: Acker,
        result: ImmutableMessage | BaseException | None,
        txn_session: TxnSession | None,
    ) -> None:
        if isinstance(result, ImmutableMessage):
            detail = AckDetail(
                acker.timestamp,
                result,
                self._last_allocated,
                acker.last_confirmed_message_id,
                txn_session,
            )
            acker._detail = detail
            self._last_confirmed.push(result.message_id, detail.end_timestamp, txn_session)
        self._confirm()

    def _confirm(self) -> None:
        """Move the watermark over the acknowledged front of the pending allocations."""
        pending = self._pending
        while pending and pending[0].acknowledged:
            done = pending.popleft()
            self._watermark = done.timestamp
            self._watermark_last_confirmed = done.last_confirmed_message_id
            if done._detail is not None:
                self._acknowledged.append(done._detail)
                done._detail = None
        if self._acknowledged and self._listener is not None and not self._notify_scheduled:
            self._schedule_notify()

    def _schedule_notify(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # acked outside a loop: the next sync takes the messages
        self._notify_scheduled = True
        loop.call_soon(self._notify)

    def _notify(self) -> None:
        self._notify_scheduled = False
        # Taken already (by a sync in between), or the listener went away: nothing to do.
        if self._acknowledged and self._listener is not None:
            self._listener()

    # --- sync ----------------------------------------------------------------------------

    async def sync_and_get_acknowledged(self, *, force_tick: bool = True) -> SyncResult:
        """Take what a TimeTick should cover now; each detail is returned once.

        With ``force_tick`` a sync timestamp is allocated and acknowledged first,
        so the watermark moves on even when no append runs. The result's
        ``last_confirmed_message_id`` is the one stamped on the watermark's own
        allocation: valid for every timetick above the watermark. (The current
        id may not be: it can already have moved past a body of a transaction
        whose commit is written with a timetick above the watermark, behind a
        slow append that holds the watermark back.)
        """
        if force_tick:
            acker = await self.allocate()
            acker._ack_sync()
        return self.take_acknowledged()

    def try_sync_nowait(self) -> SyncResult | None:
        """``sync_and_get_acknowledged()`` without waiting, or ``None`` if the TSO would wait.

        Allocates and acknowledges a sync timestamp synchronously when the TSO
        has one at hand (see :meth:`try_allocate`), so the result's timetick
        moves past the newest acknowledged message when nothing else is in flight.
        """
        acker = self.try_allocate()
        if acker is None:
            return None
        acker._ack_sync()
        return self.take_acknowledged()

    def take_acknowledged(self) -> SyncResult:
        """``sync_and_get_acknowledged(force_tick=False)``, synchronously: no new timestamp.

        The result's timetick is the confirmed watermark as it is now, a valid
        TimeTick: every allocation up to it is acknowledged.
        """
        details, self._acknowledged = tuple(self._acknowledged), []
        return SyncResult(self._watermark, self._watermark_last_confirmed, details)
