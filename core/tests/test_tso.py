"""The timestamp oracle: hybrid timestamps, monotonic across calls, restarts and clock steps."""

from __future__ import annotations

import asyncio
import itertools
import random
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from walstream.errors import MetastoreError
from walstream.metastore import SQLiteMetastore
from walstream.tso import (
    LOGICAL_BITS,
    MAX_LOGICAL,
    TimestampOracle,
    TSOClosedError,
    TSOError,
    TSOFencedError,
    compose,
    now_ms,
    parse,
)
from walstream.tso import allocator as allocator_module

WAIT = 10.0


class FakeClock:
    """A settable millisecond clock."""

    def __init__(self, start: int = 1_700_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteMetastore]:
    async with SQLiteMetastore(tmp_path / "meta.sqlite3") as ms:
        yield ms


async def window_end(store: SQLiteMetastore, key: str = "tso/window") -> int:
    kv = await store.get(key)
    assert kv is not None
    return int(kv.value)


# --- compose / parse ---------------------------------------------------------------


@given(
    physical=st.integers(min_value=0, max_value=(1 << (64 - LOGICAL_BITS)) - 1),
    logical=st.integers(min_value=0, max_value=MAX_LOGICAL),
)
def test_compose_parse_round_trip(physical: int, logical: int) -> None:
    ts = compose(physical, logical)
    assert 0 <= ts < 1 << 64
    assert parse(ts) == (physical, logical)
    if logical < MAX_LOGICAL:
        assert compose(physical, logical + 1) == ts + 1  # order is numeric order


@given(ts=st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_parse_compose_round_trip(ts: int) -> None:
    assert compose(*parse(ts)) == ts


def test_compose_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        compose(1, 1 << LOGICAL_BITS)
    with pytest.raises(ValueError):
        compose(-1, 0)
    with pytest.raises(ValueError):
        parse(-1)
    with pytest.raises(ValueError):
        parse(1 << 64)


# --- allocation -------------------------------------------------------------------


async def test_timestamps_follow_the_clock(store: SQLiteMetastore) -> None:
    async with TimestampOracle(store) as tso:
        before = now_ms()
        physical, _ = parse(await tso.allocate())
        # A fresh key: start at now + 1 ms, so at most a little ahead of the wall clock.
        assert before <= physical <= now_ms() + 2


async def test_monotonic_under_concurrent_allocate(store: SQLiteMetastore) -> None:
    async with TimestampOracle(store) as tso:
        results = await asyncio.wait_for(
            asyncio.gather(*(tso.allocate() for _ in range(2000))), WAIT
        )
    assert len(set(results)) == len(results)
    # One event loop, one lock: calls are served in the order they were made.
    assert results == sorted(results)


async def test_batches_do_not_overlap(store: SQLiteMetastore) -> None:
    rng = random.Random(7)
    counts = [rng.randint(1, 5000) for _ in range(300)]
    async with TimestampOracle(store) as tso:
        firsts = await asyncio.wait_for(asyncio.gather(*(tso.allocate(c) for c in counts)), WAIT)
    spans = sorted((f, f + c - 1) for f, c in zip(firsts, counts, strict=True))
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start > end
    with pytest.raises(ValueError):
        await TimestampOracle(store, key="other", batch=10).allocate(11)


async def test_allocation_touches_the_metastore_only_to_extend(store: SQLiteMetastore) -> None:
    clock = FakeClock()
    async with TimestampOracle(store, clock=clock) as tso:
        rev = await store.current_revision()
        for _ in range(1000):
            await tso.allocate()
        clock.now += 500  # still well inside the 3 s window
        for _ in range(1000):
            await tso.allocate()
        assert await store.current_revision() == rev


async def test_strictly_increasing_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "meta.sqlite3"
    seen: list[int] = []
    for _ in range(3):
        async with SQLiteMetastore(path) as ms, TimestampOracle(ms) as tso:
            for _ in range(50):
                ts = await tso.allocate(3)
                seen.extend([ts, ts + 1, ts + 2])
    assert seen == sorted(set(seen))


async def test_restart_starts_above_the_persisted_window_even_if_clock_is_behind(
    store: SQLiteMetastore,
) -> None:
    fast = FakeClock(2_000_000_000_000)
    async with TimestampOracle(store, clock=fast) as tso:
        last = await tso.allocate()
        end = await window_end(store)
    assert parse(last)[0] < end
    slow = FakeClock(1_000_000_000_000)  # the next owner's clock is far behind
    async with TimestampOracle(store, clock=slow) as tso:
        ts = await tso.allocate()
    assert ts > last
    assert parse(ts) == (end + 1, 0)


async def test_strictly_increasing_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "meta.sqlite3"
    # The child's clock runs ten minutes fast: only the persisted window can keep
    # the parent's (real-clock) timestamps above the child's.
    code = """
import asyncio, sys, time
from walstream.metastore import SQLiteMetastore
from walstream.tso import TimestampOracle

def fast_clock():
    return time.time_ns() // 1_000_000 + 600_000

async def main():
    async with SQLiteMetastore(sys.argv[1]) as ms:
        async with TimestampOracle(ms, clock=fast_clock) as tso:
            last = 0
            for _ in range(1000):
                last = await tso.allocate()
            last = await tso.allocate(100) + 99
            print(last)

asyncio.run(main())
"""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    child_last = int(out)
    assert parse(child_last)[0] > now_ms() + 500_000  # the child really ran ahead
    async with SQLiteMetastore(path) as ms, TimestampOracle(ms) as tso:
        assert await tso.allocate() > child_last


async def test_clock_going_backwards_never_moves_timestamps_back(
    store: SQLiteMetastore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    # Through the exposed module-level clock, as a process-wide clock step would.
    monkeypatch.setattr(allocator_module, "now_ms", clock)
    rng = random.Random(3)
    seen: list[int] = []
    async with TimestampOracle(store, window_ms=300) as tso:
        for _ in range(2000):
            clock.now += rng.choice([-1000, -50, -1, 0, 0, 1, 5, 40, 400])
            seen.append(await tso.allocate())
    assert all(b > a for a, b in itertools.pairwise(seen))


async def test_logical_overflow_moves_to_the_next_millisecond(store: SQLiteMetastore) -> None:
    clock = FakeClock()  # frozen: everything lands in as few milliseconds as possible
    async with TimestampOracle(store, clock=clock) as tso:
        physical, logical = parse(await tso.allocate())
        assert logical == 0
        rest = MAX_LOGICAL - logical
        first = await tso.allocate(rest)
        assert parse(first + rest - 1) == (physical, MAX_LOGICAL)
        assert parse(await tso.allocate()) == (physical + 1, 0)
        # A batch straddling the boundary is still consecutive integers.
        first = await tso.allocate(MAX_LOGICAL)
        assert parse(first) == (physical + 1, 1)
        assert parse(first + MAX_LOGICAL - 1) == (physical + 1, MAX_LOGICAL)
        assert parse(await tso.allocate(2)) == (physical + 2, 0)


async def test_barrier(store: SQLiteMetastore) -> None:
    clock = FakeClock()
    async with TimestampOracle(store, clock=clock) as tso:
        low = await tso.allocate()
        assert await tso.allocate_at_least(0) > low
        assert await tso.allocate_at_least(low) > low  # never re-issues
        barrier = compose(clock.now + 60_000, 17)  # a minute ahead: beyond the window
        ts = await tso.allocate_at_least(barrier)
        assert ts == barrier
        assert await window_end(store) > parse(barrier)[0]  # persisted before use
        assert await tso.allocate() > ts
    async with TimestampOracle(store, clock=clock) as tso:
        assert await tso.allocate() > barrier  # the barrier's jump survives a restart


async def test_window_is_extended_early_in_the_background(store: SQLiteMetastore) -> None:
    clock = FakeClock()
    async with TimestampOracle(store, clock=clock, window_ms=300) as tso:
        first_end = await window_end(store)
        clock.now += 150  # half the window left: no extension yet
        await tso.allocate()
        assert await window_end(store) == first_end
        clock.now += 100  # under a third left
        async with store.watch("tso/window") as changes:
            await tso.allocate()  # returns at once; the write runs behind it
            event = await asyncio.wait_for(anext(changes), WAIT)
        new_end = int(event.value)
        assert new_end == clock.now + 300
        assert tso.window_end_ms == new_end


async def test_clock_jump_past_the_window_waits_for_extension(store: SQLiteMetastore) -> None:
    clock = FakeClock()
    async with TimestampOracle(store, clock=clock, window_ms=300) as tso:
        before = await tso.allocate()
        clock.now += 10_000
        ts = await tso.allocate()
        assert ts > before and parse(ts)[0] == clock.now
        assert await window_end(store) > clock.now


async def test_second_oracle_on_the_key_fences_the_first(store: SQLiteMetastore) -> None:
    clock = FakeClock()
    first = TimestampOracle(store, clock=clock, window_ms=300)
    a = await first.allocate()
    async with TimestampOracle(store, clock=clock, window_ms=300) as second:
        b = await second.allocate()
        assert b > a  # starts above the first's whole window
        clock.now += 1000  # the first must extend now, and finds the key taken
        with pytest.raises(TSOFencedError, match="took over"):
            await first.allocate()
        with pytest.raises(TSOFencedError):  # and stays fenced
            await first.allocate()
        assert await second.allocate() > b
    await first.close()
    assert issubclass(TSOFencedError, MetastoreError)


async def test_corrupt_window_value_is_refused(store: SQLiteMetastore) -> None:
    await store.put("tso/window", b"not-a-number")
    with pytest.raises(TSOError, match="window end"):
        await TimestampOracle(store).allocate()


async def test_closed_oracle_refuses(store: SQLiteMetastore) -> None:
    tso = TimestampOracle(store)
    await tso.allocate()
    await tso.close()
    with pytest.raises(TSOClosedError):
        await tso.allocate()
    assert await store.get("tso/window") is not None  # the metastore stays open


async def test_allocate_nowait_interleaves_with_allocate_and_never_waits(
    store: SQLiteMetastore,
) -> None:
    tso = TimestampOracle(store)
    assert tso.allocate_nowait() is None  # not started: the async path must start it
    async with tso:
        seen = [await tso.allocate()]
        for i in range(3000):
            got = tso.allocate_nowait() if i % 3 else await tso.allocate()
            if got is not None:
                seen.append(got)
        assert len(seen) > 1000, "the synchronous path should serve most calls"
        assert seen == sorted(seen) and len(set(seen)) == len(seen)
        # A barrier beyond the persisted window needs an extension: nowait declines,
        # the async method extends and honours it.
        far = compose(parse(seen[-1])[0] + 10 * 60 * 1000, 0)
        assert tso.allocate_nowait(far) is None
        assert await tso.allocate_at_least(far) >= far
        nxt = tso.allocate_nowait()
        assert nxt is None or nxt > far
