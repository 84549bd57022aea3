"""The streaming WAL end to end on Woodpecker-local: concurrent mixed workloads through the whole
chain, read by RW and RO scanners (All, StartFrom + timetick filter), checked against the model."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from walstream.metastore import SQLiteMetastore
from walstream.tso import TimestampOracle
from walstream.wal.workload import Op, check_workload
from walstream.walimpls.registry import build_opener

EXAMPLE_TIMEOUT = 30.0

ops_strategy = st.lists(
    st.builds(
        Op,
        kind=st.sampled_from(
            [
                "insert",
                "insert",
                "insert",
                "delete",
                "create",
                "drop",
                "flush",
                "txn_commit",
                "txn_commit",
                "txn_rollback",
                "txn_expire",
            ]
        ),
        vchannel=st.integers(0, 2),
        size=st.integers(1, 4),
        delay=st.integers(0, 6),
    ),
    min_size=1,
    max_size=12,
)


@pytest.fixture(autouse=True)
def _no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WALSTREAM_CONFIG", str(tmp_path / "walstream.toml"))


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=ops_strategy, anchor=st.integers(0, 1000))
def test_woodpecker_local_mixed_workload_every_reader_sees_exactly_the_committed_stream(
    tmp_path: Path, ops: list[Op], anchor: int
) -> None:
    async def example() -> None:
        run = tmp_path / uuid.uuid4().hex
        run.mkdir()
        async with (
            SQLiteMetastore(run / "meta.sqlite3") as ms,
            TimestampOracle(ms) as tso,
            build_opener("woodpecker", {"root": str(run / "wp")}) as opener,
        ):
            await check_workload(opener, tso, ops, anchor)

    asyncio.run(asyncio.wait_for(example(), EXAMPLE_TIMEOUT))
