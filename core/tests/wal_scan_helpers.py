"""Helpers shared by the WAL scanner tests: hand-written logs on the memory backend."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from walstream.backends.memory import MemoryMessageID
from walstream.message import ImmutableMessage, MessageID, MessageType, MutableMessage, new_message
from walstream.proto import messages_pb2 as pb
from walstream.wal import (
    ImmutableTxnMessage,
    WALScanner,
    WriteAheadBuffer,
)
from walstream.walimpls import (
    PChannelInfo,
    WALImpl,
)
from walstream.walimpls.registry import build_opener

WAIT = 5.0  # seconds: the bound on every wait that is expected to finish

Key = tuple[object, ...]


async def open_memory(pchannel: str = "p1") -> WALImpl:
    """A fresh memory-backend pchannel (own namespace, so tests never share a log)."""
    opener = build_opener("memory", {"namespace": f"scan-{uuid.uuid4().hex}"})
    return await opener.open(PChannelInfo(pchannel, 1))


def make(
    mtype: MessageType,
    tt: int,
    *,
    vchannel: str | None = "v1",
    txn: int | None = None,
    keepalive_ms: int = 10_000,
    payload: bytes = b"x" * 50,
    broadcast: list[str] | None = None,
) -> MutableMessage:
    """A message stamped with timetick ``tt`` as the append path would."""
    header = None if broadcast is None else pb.BroadcastHeader(broadcast_id=1, vchannels=broadcast)
    m = new_message(
        mtype, vchannel=None if broadcast else vchannel, payload=payload, broadcast=header
    ).with_timetick(tt)
    if txn is not None:
        m.with_txn_context(pb.TxnContext(txn_id=txn, keepalive_milliseconds=keepalive_ms))
    return m


class Writer:
    """Writes a log the way the append path does: windows of concurrent appends, then a TimeTick.

    Inside a window the log order is any permutation (appends ran concurrently);
    every message's last-confirmed id is the window's first stored id; the TimeTick
    after the window is above all of it and is its own last-confirmed id. The
    write-ahead buffer, when attached, gets each window in timetick order.
    """

    def __init__(self, impl: WALImpl, *, start_tt: int = 1000) -> None:
        self.impl = impl
        self.wab: WriteAheadBuffer | None = None
        self._tt = start_tt
        self.log: list[ImmutableMessage] = []
        # Held across a window (timetick allocation to TimeTick) so a forced sync
        # cannot tick in the middle, which the real time-tick sync never does.
        self.lock = asyncio.Lock()

    def alloc(self) -> int:
        self._tt += 1
        return self._tt

    async def _append(self, m: MutableMessage) -> ImmutableMessage:
        im = m.into_immutable(await self.impl.append(m))
        self.log.append(im)
        return im

    async def tick(self) -> ImmutableMessage:
        m = new_message(MessageType.TIME_TICK, vchannel=None).with_timetick(self.alloc())
        return await self._append(m.with_last_confirmed_use_self())

    async def tick_and_feed(self) -> ImmutableMessage:
        """A TimeTick with nothing new before it, written and fed to the buffer (a forced sync)."""
        async with self.lock:
            tick = await self.tick()
            if self.wab is not None:
                self.wab.append([], tick)
            return tick

    def idle_tick(self) -> ImmutableMessage:
        """A not-persisted TimeTick: only the write-ahead buffer sees it."""
        assert self.wab is not None
        m = new_message(MessageType.TIME_TICK, vchannel=None).with_timetick(self.alloc())
        m.with_not_persisted().with_last_confirmed(self.log[-1].message_id)
        im = m.into_immutable(self.log[-1].message_id)
        self.wab.append([], im)
        return im

    def start_wab(self, tick: ImmutableMessage, **kwargs: Any) -> WriteAheadBuffer:
        self.wab = WriteAheadBuffer(tick, **kwargs)
        return self.wab

    async def window(
        self, msgs: Sequence[MutableMessage], order: Sequence[int] | None = None
    ) -> tuple[list[ImmutableMessage], ImmutableMessage]:
        """Store ``msgs`` in ``order`` (indexes into msgs), then a TimeTick; feed the buffer."""
        # Hand-stamped timeticks may run ahead of alloc(): the TimeTick must cover them.
        self._tt = max([self._tt, *(m.timetick for m in msgs)])
        first: MessageID | None = None
        out: list[ImmutableMessage] = []
        for i in order if order is not None else range(len(msgs)):
            m = msgs[i]
            if first is None:
                m.with_last_confirmed_use_self()
            else:
                m.with_last_confirmed(first)
            im = await self._append(m)
            first = first or im.message_id
            out.append(im)
        tick = await self.tick()
        if self.wab is not None:
            self.wab.append(sorted(out, key=lambda x: x.timetick), tick)
        return out, tick

    async def data(
        self, n: int, *, vchannel: str = "v1"
    ) -> tuple[list[ImmutableMessage], ImmutableMessage]:
        """A window of ``n`` inserts stored in reverse timetick order."""
        msgs = [make(MessageType.INSERT, self.alloc(), vchannel=vchannel) for _ in range(n)]
        return await self.window(msgs, list(reversed(range(n))))


def idx(message_id: MessageID) -> int:
    assert isinstance(message_id, MemoryMessageID)
    return message_id.index


def key(m: ImmutableMessage) -> Key:
    """What identifies a delivered message; a transaction by its commit and body ids."""
    if isinstance(m, ImmutableTxnMessage):
        return ("TXN", m.timetick, idx(m.message_id), tuple(idx(b.message_id) for b in m.body))
    return (m.message_type.name, m.timetick, idx(m.message_id))


def expected(
    log: Sequence[ImmutableMessage],
    *,
    start: int = 0,
    vchannel: str | None = None,
    gt: int | None = None,
    types: frozenset[MessageType] | None = None,
) -> list[Key]:
    """The non-TimeTick messages a reader starting at log index ``start`` must get, in order.

    A brute-force model: committed transactions whose begin it read become one
    TXN at the commit; rolled-back and unfinished ones vanish (no expiry here).
    """
    out: list[tuple[int, Key]] = []
    txns: dict[int, list[ImmutableMessage]] = {}
    for m in log[start:]:
        mtype = m.message_type
        if mtype is MessageType.TIME_TICK:
            continue
        if vchannel is not None and m.vchannel and m.vchannel != vchannel:
            continue
        if vchannel is not None and not m.vchannel:
            bh = m.broadcast_header
            if bh is not None and bh.vchannels and vchannel not in bh.vchannels:
                continue
        ctx = m.txn_context
        if ctx is None:
            if (gt is None or m.timetick > gt) and (types is None or mtype in types):
                out.append((m.timetick, key(m)))
            continue
        if mtype is MessageType.BEGIN_TXN:
            txns[ctx.txn_id] = []
        elif ctx.txn_id not in txns:
            continue
        elif mtype is MessageType.COMMIT_TXN:
            body = sorted(txns.pop(ctx.txn_id), key=lambda b: b.timetick)
            if gt is None or m.timetick > gt:
                out.append(
                    (
                        m.timetick,
                        (
                            "TXN",
                            m.timetick,
                            idx(m.message_id),
                            tuple(idx(b.message_id) for b in body),
                        ),
                    )
                )
        elif mtype is MessageType.ROLLBACK_TXN:
            del txns[ctx.txn_id]
        else:
            txns[ctx.txn_id].append(m)
    return [k for _, k in sorted(out, key=lambda p: p[0])]


async def read_until(
    scanner: WALScanner, timetick: int, timeout: float = WAIT
) -> list[ImmutableMessage]:
    """Everything delivered up to and including a message at ``timetick`` (bounded wait)."""
    got: list[ImmutableMessage] = []
    async with asyncio.timeout(timeout):
        async for m in scanner:
            got.append(m)
            if m.timetick >= timetick:
                break
    return got


def data_keys(got: Sequence[ImmutableMessage]) -> list[Key]:
    return [key(m) for m in got if m.message_type is not MessageType.TIME_TICK]


def assert_strictly_increasing(got: Sequence[ImmutableMessage]) -> None:
    tts = [m.timetick for m in got]
    assert all(a < b for a, b in itertools.pairwise(tts)), tts


@pytest.fixture
async def writer() -> AsyncIterator[Writer]:
    impl = await open_memory()
    yield Writer(impl)
    await impl.close()
