"""End to end on the memory backend: concurrent mixed workloads through the whole StreamingWAL,
read by RW and RO scanners, checked against the model; write-ahead-buffer transitions under load."""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from walstream.message import ImmutableMessage
from walstream.metastore import SQLiteMetastore
from walstream.testing.wal_workload import workload_ops
from walstream.tso import TimestampOracle
from walstream.wal import ScanMode, WALSettings, open_wal
from walstream.wal.options import WALReadOption
from walstream.wal.workload import (
    Op,
    check_stream,
    check_workload,
    client_keys,
    insert_message,
    read_through,
    run_workload,
)
from walstream.walimpls import PChannelInfo
from walstream.walimpls.registry import build_opener

EXAMPLE_TIMEOUT = 20.0

ops_strategy = workload_ops(max_size=14)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=ops_strategy, anchor=st.integers(0, 1000))
def test_concurrent_mixed_workload_every_reader_sees_exactly_the_committed_stream(
    tmp_path: Path, ops: list[Op], anchor: int
) -> None:
    async def example() -> None:
        async with (
            SQLiteMetastore(tmp_path / f"meta-{uuid.uuid4().hex}.sqlite3") as ms,
            TimestampOracle(ms) as tso,
        ):
            opener = build_opener("memory", {"namespace": f"wl-{uuid.uuid4().hex}"})
            await check_workload(opener, tso, ops, anchor)

    asyncio.run(asyncio.wait_for(example(), EXAMPLE_TIMEOUT))


async def test_wab_catch_up_tail_evicted_catch_up_under_load(tmp_path: Path) -> None:
    async with (
        SQLiteMetastore(tmp_path / "meta.sqlite3") as ms,
        TimestampOracle(ms) as tso,
    ):
        opener = build_opener("memory", {"namespace": f"wab-{uuid.uuid4().hex}"})
        # Syncs on demand only, so the paused reader's place is evicted in one step.
        settings = WALSettings(timetick_interval_ms=10_000_000, wab_capacity_bytes=3000)
        wal = await open_wal(await opener.open(PChannelInfo("p1", 1)), tso=tso, settings=settings)
        rnd = random.Random(7)
        try:
            outcome = await run_workload(
                wal, [Op("insert", i % 2, 2) for i in range(20)], vchannels=2
            )
            expected = dict(outcome.expected)

            async def load(n: int, sync: bool = True) -> int:
                last = 0
                for _ in range(n):
                    picks = [rnd.randint(0, 1) for _ in range(4)]
                    work = [wal.append(insert_message(f"p1_v{i}", i + 1, 3)) for i in picks]
                    work_results = await asyncio.gather(*work, return_exceptions=True)
                    for r in work_results:
                        assert not isinstance(r, BaseException), r
                        expected[("INSERT", r.timetick)] = 0
                        last = max(last, r.timetick)
                    if sync:
                        await wal.sync()
                return last

            # Starts early: the oldest messages left the 3000-byte buffer: catch up first.
            scanner = await wal.read(WALReadOption(name="early", buffer_messages=4))
            got: list[ImmutableMessage] = []
            try:
                last = await load(5)
                got += await read_through(scanner, last)
                assert scanner.stats().to_tailing >= 1
                assert scanner.mode is ScanMode.TAILING
                # Tailing under load, reading as it goes.
                for _ in range(5):
                    last = await load(2)
                    got += await read_through(scanner, last)
                assert scanner.mode is ScanMode.TAILING
                # The reader pauses; the writer goes on until the reader's place is evicted.
                catch_ups = scanner.stats().to_catch_up
                last = await load(40, sync=False)
                await wal.sync()  # the buffer gets them all now, and evicts the reader's place
                assert wal.wab is not None
                assert wal.wab.floor_timetick > got[-1].timetick
                got += await read_through(scanner, last)
                stats = scanner.stats()
                assert stats.to_catch_up > catch_ups, stats
                assert stats.to_tailing >= 2, stats
                assert scanner.mode is ScanMode.TAILING
                last = await load(3)
                got += await read_through(scanner, last)
            finally:
                await scanner.close()
            check_stream(got, expected)
            assert client_keys(got) == expected
        finally:
            await wal.close()
