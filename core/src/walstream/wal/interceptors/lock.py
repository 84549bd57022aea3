"""Lock: exclusive messages serialise with everything else on their vchannel.

Exclusive-required types (DDL, ManualFlush, SchemaChange) take the vchannel's
write lock, or the WAL-wide write lock when they target no vchannel or the
pchannel itself; every other message takes read locks. Because the timetick is
allocated inside the lock, an exclusive message's timetick order equals its log
order: every message acknowledged before it has a smaller timetick and a smaller id.
"""

from __future__ import annotations

from typing import ClassVar

from walstream.message import MutableMessage
from walstream.wal.chain import AppendFunc, AppendResult, BatchAppendFunc, Interceptor, Outcome
from walstream.wal.interceptors.rwlock import RWLock
from walstream.wal.txn_manager import TxnManager

__all__ = ["LockInterceptor"]


class LockInterceptor(Interceptor):
    """Read/write locks per vchannel plus one WAL-wide lock."""

    name: ClassVar[str] = "lock"

    def __init__(self, pchannel: str, txn_manager: TxnManager) -> None:
        """Locks of pchannel ``pchannel``; exclusive messages abort ``txn_manager``'s txns."""
        self._pchannel = pchannel
        self._txns = txn_manager
        self._global = RWLock()
        self._vchannels: dict[str, RWLock] = {}

    async def do_append(self, message: MutableMessage, next_: AppendFunc) -> AppendResult:
        """Hold the right locks around ``next_(message)``."""
        vchannel = message.vchannel
        if vchannel == self._pchannel:
            vchannel = ""
        exclusive = message.message_type.is_exclusive_required
        if exclusive and not vchannel:
            await self._global.acquire(write=True)
            try:
                return await next_(message)
            finally:
                # Before the release, so no body waiting for the lock slips in first.
                self._txns.fail_txns_at("")
                self._global.release(write=True)
        # ``try_acquire`` first: no coroutine per lock when nobody waits (the common case).
        if not self._global.try_acquire(write=False):
            await self._global.acquire(write=False)
        try:
            if not vchannel:
                return await next_(message)
            lock = self._vchannels.get(vchannel)
            if lock is None:
                lock = self._vchannels[vchannel] = RWLock()
            if not lock.try_acquire(write=exclusive):
                await lock.acquire(write=exclusive)
            try:
                return await next_(message)
            finally:
                if exclusive:
                    self._txns.fail_txns_at(vchannel)
                lock.release(write=exclusive)
                if lock.idle:
                    del self._vchannels[vchannel]
        finally:
            self._global.release(write=False)

    async def do_append_batch(
        self, messages: list[MutableMessage], next_: BatchAppendFunc
    ) -> list[Outcome]:
        """Read locks of every vchannel in the batch (sorted: no lock-order cycles), held once."""
        vchannels = sorted({m.vchannel for m in messages} - {self._pchannel, ""})
        if not self._global.try_acquire(write=False):
            await self._global.acquire(write=False)
        held: list[tuple[str, RWLock]] = []
        try:
            for vchannel in vchannels:
                lock = self._vchannels.get(vchannel)
                if lock is None:
                    lock = self._vchannels[vchannel] = RWLock()
                if not lock.try_acquire(write=False):
                    # Registered as held only once granted: a cancelled wait holds nothing.
                    await lock.acquire(write=False)
                held.append((vchannel, lock))
            return await next_(messages)
        finally:
            for vchannel, lock in held:
                lock.release(write=False)
                if lock.idle:
                    del self._vchannels[vchannel]
            self._global.release(write=False)
