"""Brute-force model of the append path: the last-confirmed guarantee under any interleaving.

Random concurrent allocations, backend writes (ids handed out in write order,
which differs from both timetick and ack order), acks, failed appends, syncs,
lease expiry and aborts, with transactions that stay open and then resolve.
Afterwards, for every message ``M`` and every sync result: every written
message with a larger timetick has an id >= ``M``'s last-confirmed id, and so
does every part of every transaction committed at a larger timetick.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st
from walstream.backends.memory import MemoryMessageID
from walstream.message import MessageType, new_message
from walstream.tso import compose
from walstream.wal import (
    Acker,
    AckManager,
    SyncResult,
    TransactionError,
    TxnManager,
    TxnSession,
    TxnState,
)

START = compose(1_000, 0)
KEEPALIVES = (1, 2, 5, 10_000)
VCHANNELS = ("v1", "v2")
TYPES = {
    "plain": MessageType.INSERT,
    "begin": MessageType.BEGIN_TXN,
    "body": MessageType.INSERT,
    "commit": MessageType.COMMIT_TXN,
    "rollback": MessageType.ROLLBACK_TXN,
}


class ClockTSO:
    """``max(last + 1, now)`` on a clock the model moves."""

    def __init__(self) -> None:
        self.ms = 1_000
        self.last = START

    async def allocate(self) -> int:
        self.last = max(self.last + 1, compose(self.ms, 0))
        return self.last

    async def allocate_at_least(self, barrier: int) -> int:
        self.last = max(self.last + 1, compose(self.ms, 0), barrier)
        return self.last


@dataclass
class Txn:
    session: TxnSession
    begin_ok: bool = False  # the client holds the context only once the begin is acked
    ended: bool = False  # commit or rollback requested (or attempted)


@dataclass
class Msg:
    kind: str
    acker: Acker
    txn: Txn | None = None
    commit: asyncio.Task[None] | None = None
    index: int | None = None  # the id the backend gave it
    done: bool = False  # acked (successfully or not)
    failed: bool = False

    @property
    def tt(self) -> int:
        return self.acker.timestamp

    @property
    def lc(self) -> int:
        lc = self.acker.last_confirmed_message_id
        assert isinstance(lc, MemoryMessageID)
        return lc.index


@dataclass
class Model:
    tso: ClockTSO = field(default_factory=ClockTSO)
    txns: TxnManager = field(default_factory=TxnManager)
    msgs: list[Msg] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    syncs: list[SyncResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.acks = AckManager(
            self.tso, last_confirmed_timetick=START, last_confirmed_message_id=MemoryMessageID(0)
        )

    # --- the interceptor's side ---------------------------------------------------------

    async def allocate(self, kind: str, txn: Txn | None = None) -> Msg:
        msg = Msg(kind, await self.acks.allocate(), txn)
        self.msgs.append(msg)
        return msg

    def fail(self, msg: Msg) -> None:
        msg.acker.ack(RuntimeError("append failed"))
        msg.done = msg.failed = True
        if msg.txn is None:
            return
        session = msg.txn.session
        if msg.kind == "begin":
            session.fail("begin append failed")
        elif msg.kind == "body":
            session.body_done(msg.tt, ok=False)
        elif msg.kind == "commit":
            session.commit_done(ok=False)
        elif msg.kind == "rollback":
            session.rollback_done(ok=False)

    def refuse(self, msg: Msg) -> None:
        # the session refused it before the append: acked with the error, nothing else
        msg.acker.ack(TransactionError("refused"))
        msg.done = msg.failed = True

    def ack(self, msg: Msg) -> None:
        assert msg.index is not None
        mutable = new_message(
            TYPES[msg.kind], vchannel=msg.txn.session.vchannel if msg.txn else "v1"
        ).with_timetick(msg.tt)
        stored = mutable.into_immutable(MemoryMessageID(msg.index))
        session = msg.txn.session if msg.txn else None
        msg.acker.ack(stored, session)
        msg.done = True
        if msg.txn is None or session is None:
            return
        if msg.kind == "begin":
            msg.txn.begin_ok = True
        elif msg.kind == "body":
            session.body_done(msg.tt, ok=True)
        elif msg.kind == "commit":
            session.commit_done(ok=True)
        elif msg.kind == "rollback":
            session.rollback_done(ok=True)

    def writable(self, msg: Msg) -> bool:
        if msg.done or msg.index is not None:
            return False
        # a commit is written only after its wait for bodies returned
        return msg.commit is None or (msg.commit.done() and msg.commit.exception() is None)

    def failable(self, msg: Msg) -> bool:
        return self.writable(msg)

    def settle_refused_commits(self) -> None:
        for msg in self.msgs:
            task = msg.commit
            if not msg.done and task is not None and task.done() and task.exception() is not None:
                self.refuse(msg)

    # --- operations ---------------------------------------------------------------------

    def usable(self) -> list[Txn]:
        return [
            t
            for t in {id(m.txn): m.txn for m in self.msgs if m.txn is not None}.values()
            if t.begin_ok and not t.ended
        ]

    async def step(self, op: int, pick: int) -> None:
        if op == 0:
            await self.allocate("plain")
        elif op == 1:
            msg = await self.allocate("begin")
            keepalive = KEEPALIVES[pick % len(KEEPALIVES)]
            session = self.txns.begin(VCHANNELS[pick % 2], keepalive, msg.tt)
            msg.txn = Txn(session)
        elif op in (2, 3, 4):
            txns = self.usable()
            if not txns:
                return
            txn = txns[pick % len(txns)]
            session = txn.session
            kind = {2: "body", 3: "commit", 4: "rollback"}[op]
            msg = await self.allocate(kind, txn)
            if kind == "commit":
                txn.ended = True
                msg.commit = asyncio.create_task(session.commit(msg.tt))
                await asyncio.sleep(0)
                return
            try:
                if kind == "body":
                    session.add_body(
                        new_message(MessageType.INSERT, vchannel=session.vchannel).with_timetick(
                            msg.tt
                        )
                    )
                else:
                    txn.ended = True
                    session.rollback(msg.tt)
            except TransactionError:
                self.refuse(msg)
        elif op in (5, 6, 7):
            if op == 5:
                candidates = [m for m in self.msgs if self.writable(m)]
            elif op == 6:
                candidates = [m for m in self.msgs if m.index is not None and not m.done]
            else:
                candidates = [m for m in self.msgs if self.failable(m)]
            if not candidates:
                return
            msg = candidates[pick % len(candidates)]
            if op == 5:
                msg.index = next(self.ids)
            elif op == 6:
                self.ack(msg)
            else:
                self.fail(msg)
        elif op == 8:
            self.tso.ms += pick % 4
            result = await self.acks.sync_and_get_acknowledged()
            self.syncs.append(result)
            self.txns.cleanup_until(result.timetick)
        elif op == 9 and pick % 8 == 0:  # rare, or hardly any transaction would commit
            self.txns.fail_txns_at(VCHANNELS[pick % 2])
        await asyncio.sleep(0)  # let woken commits run
        self.settle_refused_commits()

    async def drain(self) -> None:
        """Write and ack everything in flight, then resolve what is still open."""
        for _ in range(1_000):
            await asyncio.sleep(0)
            self.settle_refused_commits()
            progress = False
            for msg in self.msgs:
                if self.writable(msg):
                    msg.index = next(self.ids)
                if msg.index is not None and not msg.done:
                    self.ack(msg)
                    progress = True
            if all(m.done for m in self.msgs):
                break
            assert progress or any(not m.commit.done() for m in self.msgs if m.commit), "stuck"
        assert all(m.done for m in self.msgs)
        self.txns.fail_all("end of the model run")
        self.syncs.append(await self.acks.sync_and_get_acknowledged())
        self.syncs.append(await self.acks.sync_and_get_acknowledged())


def check(model: Model) -> None:
    written = [m for m in model.msgs if m.index is not None]
    committed: list[tuple[int, list[int]]] = []  # (commit tt, ids of begin + bodies)
    for txn in {id(m.txn): m.txn for m in model.msgs if m.txn is not None}.values():
        if txn.session.state is TxnState.COMMITTED:
            commit = next(m for m in written if m.txn is txn and m.kind == "commit")
            parts = [m.index for m in written if m.txn is txn and m.kind in ("begin", "body")]
            committed.append((commit.tt, [p for p in parts if p is not None]))

    def readable_from(lc: int, above: int, what: str) -> None:
        for n in written:
            assert n.index is not None
            assert n.tt <= above or n.index >= lc, (
                f"{what}: last-confirmed {lc}, but message {n.kind}@{n.tt} id {n.index} is lost"
            )
        for commit_tt, parts in committed:
            if commit_tt > above:
                assert all(p >= lc for p in parts), (
                    f"{what}: last-confirmed {lc}, txn committed at {commit_tt} has parts {parts}"
                )

    for m in model.msgs:
        readable_from(m.lc, m.tt, f"message {m.kind}@{m.tt}")
    for s in model.syncs:
        lc = s.last_confirmed_message_id
        assert isinstance(lc, MemoryMessageID)
        readable_from(lc.index, s.timetick, f"TimeTick@{s.timetick}")

    # stamped ids never go backwards
    stamps = [m.lc for m in model.msgs]
    assert stamps == sorted(stamps)

    # each successfully appended message is synced exactly once, in timetick order,
    # between the previous TimeTick and its own
    synced: list[int] = []
    previous = START
    for s in model.syncs:
        tts = [d.timetick for d in s.details]
        assert all(previous < tt <= s.timetick for tt in tts)
        synced += tts
        previous = s.timetick
    assert synced == sorted(m.tt for m in model.msgs if m.done and not m.failed)

    # liveness: with everything acked and resolved, the id reaches the newest message
    final = model.acks.last_confirmed_message_id
    assert isinstance(final, MemoryMessageID)
    assert final.index == max((m.index for m in written if m.index is not None), default=0)
    assert model.acks.in_flight == 0


# Weighted: writes and acks must keep up with allocations for ids to move at all.
_OP_WEIGHTS = {0: 3, 1: 1, 2: 3, 3: 1, 4: 1, 5: 5, 6: 5, 7: 1, 8: 2, 9: 1}
_OP = st.sampled_from([op for op, weight in _OP_WEIGHTS.items() for _ in range(weight)])
OPS = st.lists(st.tuples(_OP, st.integers(0, 1_000)), min_size=40, max_size=200)


@settings(max_examples=300, deadline=None)
@given(ops=OPS)
def test_last_confirmed_guarantee_under_random_interleavings(ops: list[tuple[int, int]]) -> None:
    async def run() -> None:
        model = Model()
        for op, pick in ops:
            await model.step(op, pick)
        await asyncio.wait_for(model.drain(), 10.0)
        check(model)

    asyncio.run(run())


def test_the_model_can_catch_a_wrong_last_confirmed_id() -> None:
    """The checker is not vacuous: a message stamped past a needed id is reported."""

    async def run() -> None:
        model = Model()
        await model.step(1, 3)  # begin, keepalive 10 s
        await model.step(5, 0)  # write it
        await model.step(6, 0)  # ack it
        await model.step(2, 0)  # a body
        await model.step(0, 0)  # a plain message
        await model.step(3, 0)  # commit, after the plain message
        await model.drain()
        assert model.msgs[0].txn is not None
        assert model.msgs[0].txn.session.state is TxnState.COMMITTED
        # forge: the plain message claims it may start after the body
        plain = model.msgs[2]
        bad = model.msgs[1].index
        assert bad is not None
        plain.acker._last_confirmed = MemoryMessageID(bad + 1)
        check(model)

    try:
        asyncio.run(run())
    except AssertionError:
        return
    raise AssertionError("the checker accepted a last-confirmed id past a needed message")
