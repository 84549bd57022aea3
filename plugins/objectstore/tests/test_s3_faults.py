"""The s3 driver across a crash of the real S3 server (scripts/s3proxy kill, then start).

Every wait is bounded: the operations by their retry deadline, the test bodies by
``asyncio.wait_for``, the script by subprocess timeouts.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from objectstore_helpers import ServerControl
from walstream.errors import ObjectStoreError
from walstream.objectstore import open_store


def test_writes_waiting_in_retry_complete_after_restart(
    s3_fresh: dict[str, Any], s3_control: ServerControl
) -> None:
    """A writer runs while the server is killed and started again: nothing fails, nothing is lost."""
    settings = {**s3_fresh, "retry_deadline_s": 60.0}
    count = 40

    async def main() -> float:
        async with await open_store("s3", settings) as store:
            written: list[str] = []

            async def writer() -> None:
                for i in range(count):
                    key = f"w/{i:04d}"
                    if i % 2:
                        await store.put_if_absent(key, f"v{i}".encode())
                    else:
                        await store.put(key, f"v{i}".encode())
                    written.append(key)
                    await asyncio.sleep(0.02)

            task = asyncio.create_task(writer())
            while len(written) < 5:
                assert not task.done(), "the writer stopped early"
                await asyncio.sleep(0.01)
            await asyncio.to_thread(s3_control.kill)
            killed_at = time.monotonic()
            await asyncio.sleep(1.0)  # the writer is now retrying against a dead port
            assert not task.done()
            await asyncio.to_thread(s3_control.start)
            await asyncio.wait_for(task, 60)
            recovered = time.monotonic() - killed_at
            assert written == [f"w/{i:04d}" for i in range(count)]
            for i in range(count):
                assert await store.get(f"w/{i:04d}") == f"v{i}".encode()
            return recovered

    recovered = asyncio.run(asyncio.wait_for(main(), 180))
    assert recovered < 60


def test_short_deadline_fails_with_the_unreachable_error(
    s3_fresh: dict[str, Any], s3_control: ServerControl
) -> None:
    settings = {**s3_fresh, "retry_deadline_s": 1.5}

    async def main() -> None:
        async with await open_store("s3", settings) as store:
            await store.put("before", b"kept")
            s3_control.kill()
            try:
                started = time.monotonic()
                with pytest.raises(ObjectStoreError, match=r"unreachable for \d\.\d s"):
                    await store.put("during", b"x")
                assert time.monotonic() - started < 5
            finally:
                s3_control.start()
            assert await store.get("before") == b"kept", "data survives the crash"

    asyncio.run(asyncio.wait_for(main(), 180))
