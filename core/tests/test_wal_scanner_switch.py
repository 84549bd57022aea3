"""WAL scanners switching between the backend and the write-ahead buffer, under load.

Catch-up → tailing → evicted → catch-up → tailing, with no gap and no duplicate,
checked against a brute-force model of the log; then a hypothesis test of
random concurrent workloads with several readers.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from wal_scan_helpers import (  # the shared harness (core/tests/wal_scan_helpers.py)
    Writer,
    assert_strictly_increasing,
    data_keys,
    expected,
    idx,
    key,
    make,
    open_memory,
    read_until,
)
from walstream.message import ImmutableMessage, MessageType, MutableMessage, new_message
from walstream.wal import ScanMode, WALScanner, open_scanner
from walstream.wal.options import DeliverFilter, WALReadOption
from walstream.walimpls import DeliverStartFrom


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_catch_up_tail_evicted_catch_up_tail(writer: Writer) -> None:
    for _ in range(3):
        await writer.data(4)  # before the buffer existed: only in the backend
    clock = FakeClock()
    wab = writer.start_wab(await writer.tick(), capacity_bytes=2000, clock=clock)
    for _ in range(2):
        await writer.data(4)
    async with open_scanner(
        writer.impl, WALReadOption(buffer_messages=4), wab=wab, force_sync=None
    ) as scanner:
        got = await read_until(scanner, writer.log[-1].timetick)
        assert scanner.mode is ScanMode.TAILING
        assert scanner.stats().to_tailing == 1
        # The reader stops; the writer goes on until the reader's place is evicted.
        for _ in range(30):
            await writer.data(4)
            await asyncio.sleep(0)
        assert wab.floor_timetick > got[-1].timetick + 4
        got += await read_until(scanner, writer.log[-1].timetick)
        stats = scanner.stats()
        assert stats.to_catch_up == 1
        assert stats.to_tailing == 2
        assert scanner.mode is ScanMode.TAILING
        # Still tailing: new writes arrive through the buffer.
        _, tick = await writer.data(3)
        got += await read_until(scanner, tick.timetick)
    assert_strictly_increasing(got)
    assert data_keys(got) == expected(writer.log)


async def test_catch_up_passes_ticks_the_buffer_no_longer_holds(writer: Writer) -> None:
    clock = FakeClock()
    wab = writer.start_wab(await writer.tick(), capacity_bytes=10**6, clock=clock)
    for _ in range(5):
        await writer.data(3)
    clock.now += 3600  # everything but the newest entry ages out
    wab.evict()
    _, tick = await writer.data(3)
    async with open_scanner(writer.impl, WALReadOption(), wab=wab, force_sync=None) as scanner:
        got = await read_until(scanner, tick.timetick)
        assert scanner.stats().to_tailing == 1
        assert scanner.mode is ScanMode.TAILING
    assert data_keys(got) == expected(writer.log)


async def test_without_a_buffer_the_scanner_tails_the_backend(writer: Writer) -> None:
    async with open_scanner(writer.impl, WALReadOption(), wab=None, force_sync=None) as scanner:
        got: list[ImmutableMessage] = []
        for _ in range(3):
            _, tick = await writer.data(3)
            got += await read_until(scanner, tick.timetick)
        assert scanner.mode is ScanMode.CATCH_UP
        assert scanner.stats().to_tailing == 0
    assert data_keys(got) == expected(writer.log)


# --- random concurrent workloads -----------------------------------------------------------

OPS = ("ins", "del", "ddl", "begin", "body", "commit", "rollback")


class Txns:
    """Transactions of a workload across its phases: ids never reused, open ones carried on."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.open: list[tuple[int, str]] = []


async def write_workload(
    writer: Writer,
    plan: list[list[str]],
    rnd: random.Random,
    txns: Txns,
    *,
    wab_at: int,
    capacity: int,
) -> None:
    """Write ``plan`` (one list of ops per window) with shuffled log order inside windows."""
    txn_ids = txns.ids
    open_txns = txns.open
    for n, ops in enumerate(plan):
        async with writer.lock:
            if n == wab_at:
                writer.start_wab(await writer.tick(), capacity_bytes=capacity)
            msgs: list[MutableMessage] = []
            owner: list[int | None] = []
            for op in ops:
                tt = writer.alloc()
                vc = rnd.choice(("v1", "v2"))
                if op in ("body", "commit", "rollback") and open_txns:
                    tid, tvc = open_txns[0]
                    mtype = {
                        "body": rnd.choice((MessageType.INSERT, MessageType.DELETE)),
                        "commit": MessageType.COMMIT_TXN,
                        "rollback": MessageType.ROLLBACK_TXN,
                    }[op]
                    if op != "body":
                        open_txns.pop(0)
                    msgs.append(make(mtype, tt, vchannel=tvc, txn=tid))
                    owner.append(tid)
                elif op == "begin":
                    tid = next(txn_ids)
                    open_txns.append((tid, vc))
                    msgs.append(make(MessageType.BEGIN_TXN, tt, vchannel=vc, txn=tid))
                    owner.append(tid)
                else:
                    mtype = {"del": MessageType.DELETE, "ddl": MessageType.CREATE_PARTITION}.get(
                        op, MessageType.INSERT
                    )
                    msgs.append(make(mtype, tt, vchannel=vc))
                    owner.append(None)
            order = list(range(len(msgs)))
            rnd.shuffle(order)
            # A transaction's own appends are sequential: keep them in timetick order.
            for tid in {o for o in owner if o is not None}:
                slots = [p for p, i in enumerate(order) if owner[i] == tid]
                mine = sorted(order[p] for p in slots)
                for p, i in zip(slots, mine, strict=True):
                    order[p] = i
            await writer.window(msgs, order)
        await asyncio.sleep(0.001 if rnd.random() < 0.2 else 0)


async def read_all(
    scanner: WALScanner, done: asyncio.Event, writer: Writer, rnd: random.Random
) -> list[ImmutableMessage]:
    """Read with random pauses until the writer is done and its last TimeTick arrived."""
    got: list[ImmutableMessage] = []
    while True:
        if done.is_set() and got and got[-1].timetick >= writer.log[-1].timetick:
            return got
        got.append(await anext(scanner))
        if rnd.random() < 0.1:
            await asyncio.sleep(0.001)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    plan=st.lists(st.lists(st.sampled_from(OPS), max_size=8), min_size=2, max_size=40),
    wab_at=st.integers(0, 6),
    start_at=st.integers(0, 20),
    capacity=st.sampled_from([400, 1000, 3000, 10**6]),
    buffers=st.tuples(st.integers(1, 8), st.integers(1, 8), st.integers(1, 8)),
    seed=st.integers(0, 2**32 - 1),
)
def test_concurrent_workloads_every_reader_sees_exactly_the_committed_stream(
    plan: list[list[str]],
    wab_at: int,
    start_at: int,
    capacity: int,
    buffers: tuple[int, int, int],
    seed: int,
) -> None:
    wab_at = min(wab_at, len(plan) - 1)
    start_at = min(start_at, len(plan) - 1)
    asyncio.run(
        asyncio.wait_for(
            run_workload(plan, wab_at, start_at, capacity, buffers, random.Random(seed)),
            timeout=30,
        )
    )


async def run_workload(
    plan: list[list[str]],
    wab_at: int,
    start_at: int,
    capacity: int,
    buffers: tuple[int, int, int],
    rnd: random.Random,
) -> None:
    impl = await open_memory()
    writer = Writer(impl)
    done = asyncio.Event()
    first, rest = plan[:start_at], plan[start_at:]
    # The readers start part-way: the buffer exists from window wab_at on.
    txns = Txns()
    await write_workload(writer, first, rnd, txns, wab_at=wab_at, capacity=capacity)
    resume = next(
        (m for m in reversed(writer.log) if m.message_type is MessageType.TIME_TICK), None
    )
    readers: list[tuple[WALScanner, dict[str, Any]]] = []
    specs: list[tuple[WALReadOption, dict[str, Any]]] = [
        (WALReadOption(name="all", buffer_messages=buffers[0]), {}),
        (WALReadOption(name="v1", vchannel="v1", buffer_messages=buffers[1]), {"vchannel": "v1"}),
    ]
    if resume is not None:
        lc = resume.last_confirmed_message_id
        assert lc is not None
        specs.append(
            (
                WALReadOption(
                    name="resume",
                    deliver_policy=DeliverStartFrom(lc),
                    deliver_filter=DeliverFilter(timetick_gt=resume.timetick),
                    buffer_messages=buffers[2],
                ),
                {"start": idx(lc), "gt": resume.timetick},
            )
        )

    async def force_sync() -> None:
        await writer.tick_and_feed()

    for option, model in specs:
        wab_now = writer.wab
        scanner = open_scanner(
            impl, option, wab=wab_now, force_sync=force_sync if wab_now is not None else None
        )
        readers.append((scanner, model))

    async def write_rest() -> None:
        await write_workload(
            writer,
            rest,
            rnd,
            txns,
            wab_at=wab_at - start_at if wab_at >= start_at else -1,
            capacity=capacity,
        )
        await writer.tick_and_feed()  # a final TimeTick every reader must reach
        done.set()

    tasks = [
        asyncio.create_task(read_all(s, done, writer, random.Random(rnd.random())))
        for s, _ in readers
    ]
    await write_rest()
    results = await asyncio.gather(*tasks)
    streams = []
    for (scanner, model), got in zip(readers, results, strict=True):
        stats = scanner.stats()
        await scanner.close()
        assert_strictly_increasing(got)
        keys = data_keys(got)
        assert keys == expected(writer.log, **model), scanner.name
        assert stats.ready <= scanner_buffer(scanner, specs)
        if stats.to_catch_up:
            event("a reader fell out of the buffer and caught up again")
        if stats.to_tailing:
            event("a reader switched to tailing")
        streams.append((model, keys))
    await impl.close()
    # Readers of the whole pchannel from the start agree exactly.
    all_keys = streams[0][1]
    if len(streams) == 3:
        gt = streams[2][0]["gt"]
        assert [k for k in all_keys if k[1] > gt and k[0] != "TXN"] == [
            k for k in streams[2][1] if k[0] != "TXN"
        ]


def scanner_buffer(scanner: WALScanner, specs: Sequence[tuple[WALReadOption, Any]]) -> int:
    return next(o.buffer_messages for o, _ in specs if o.name == scanner.name)


async def test_tailing_releases_messages_covered_by_a_tick_at_their_own_timetick(
    writer: Writer,
) -> None:
    """Regression: the time-tick sync covers a batch with a TimeTick at the watermark,
    which is the newest message's own timetick whenever a slow append holds it back.
    The buffer cursor dropped such a tick ("not newer"), so a tailing scanner held the
    batch until some later tick happened to be strictly above it: under steady load
    delivery fell seconds behind."""
    wab = writer.start_wab(await writer.tick())
    async with open_scanner(writer.impl, WALReadOption(), wab=wab, force_sync=None) as scanner:
        first, _ = await writer.data(2)
        await read_until(scanner, max(m.timetick for m in first))
        assert scanner.mode is ScanMode.TAILING
        for _ in range(3):
            out = [
                await writer._append(
                    make(MessageType.INSERT, writer.alloc()).with_last_confirmed_use_self()
                )
                for _ in range(3)
            ]
            top = out[-1].timetick
            tick = new_message(MessageType.TIME_TICK, vchannel=None).with_timetick(top)
            stored = await writer._append(tick.with_last_confirmed_use_self())
            wab.append(out, stored)
            got = await read_until(scanner, top, timeout=1.0)
            assert data_keys(got) == [key(m) for m in out]
            assert_strictly_increasing(got)
        assert scanner.stats().reordering == 0
