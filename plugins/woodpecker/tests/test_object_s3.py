"""Zero-disk mode on a real S3 server (S3Proxy): the contract suite and server faults.

Skipped unless ``WALSTREAM_TEST_S3_*`` are set (``eval "$(scripts/s3proxy start)"``);
failing instead under ``WALSTREAM_REQUIRE_SERVICES=1``. The fault tests kill and
restart the server through ``scripts/s3proxy`` with the same ``S3PROXY_RUN_DIR``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from om_helpers import make_opener
from s3_helpers import S3Control, s3_wal_settings
from test_object_faults import append_all, check_log
from walstream.errors import WALError
from walstream.message import MessageID, MutableMessage
from walstream.testing import WALBackendContract, WALBackendSpec
from wp_helpers import msg, rw


class TestObjectS3Contract(WALBackendContract):
    crash_rounds = 20  # each round starts a Python child and an S3 client

    @pytest.fixture
    def wal_backend(self, s3_server: dict[str, str], tmp_path: Path) -> WALBackendSpec:
        return WALBackendSpec(name="woodpecker", settings=s3_wal_settings(s3_server, tmp_path))


async def test_server_killed_mid_stream_appends_wait(
    s3_server: dict[str, str], s3_control: S3Control, tmp_path: Path
) -> None:
    settings = s3_wal_settings(s3_server, tmp_path, object_upload_retry_deadline_s=180)
    opener = make_opener(settings)
    wal = await opener.open(rw("ch", 1))
    acked: dict[bytes, MessageID] = {}
    slow: list[float] = []
    stop = asyncio.Event()
    reached = asyncio.Event()
    target = 100
    loop = asyncio.get_running_loop()

    async def producer(worker: int) -> None:
        i = 0
        while not stop.is_set():
            m = MutableMessage.raw(f"w{worker}-{i}".encode())
            began = loop.time()
            acked[m.payload] = await wal.append(m)  # an error fails the test
            slow.append(loop.time() - began)
            i += 1
            if len(acked) >= target:
                reached.set()

    producers = [asyncio.create_task(producer(w)) for w in range(8)]
    await asyncio.wait_for(reached.wait(), 60)
    reached.clear()
    await asyncio.to_thread(s3_control.kill)
    target = len(acked) + 100
    await asyncio.sleep(2.0)
    await asyncio.to_thread(s3_control.start)
    await asyncio.wait_for(reached.wait(), 200)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*producers), 200)
    assert max(slow) > 1.5, "no append waited through the outage"
    await asyncio.wait_for(wal.close(), 60)
    await opener.close()
    checker = make_opener(settings)
    got = await check_log(checker, acked, 2)
    assert [m.message_id for m in got] == sorted(acked.values())
    await checker.close()


async def test_server_down_past_the_deadline_then_reopen(
    s3_server: dict[str, str], s3_control: S3Control, tmp_path: Path
) -> None:
    settings = s3_wal_settings(s3_server, tmp_path, object_upload_retry_deadline_s=3)
    opener = make_opener(settings)
    wal = await opener.open(rw("ch", 1))
    acked, _ = await append_all(wal, "before", 20)
    await asyncio.to_thread(s3_control.kill)
    try:
        loop = asyncio.get_running_loop()
        start = loop.time()
        during, refused = await asyncio.wait_for(append_all(wal, "during", 20), 60)
        assert loop.time() - start < 30
        assert not during and refused
        with pytest.raises(WALError, match="unreachable"):
            await wal.append(msg("later"))
    finally:
        await asyncio.to_thread(s3_control.start)
    await asyncio.wait_for(wal.close(), 60)
    await opener.close()
    checker = make_opener(settings)
    got = await check_log(checker, acked, 2)
    assert {m.payload for m in got} <= {*acked, *refused}
    again = make_opener(settings)
    wal = await again.open(rw("ch", 3))
    more, bad = await append_all(wal, "recovered", 5)
    assert not bad and len(more) == 5
    await wal.close()
    await again.close()
    await checker.close()
