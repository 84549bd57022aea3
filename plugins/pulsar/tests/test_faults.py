"""Fault tests on the real broker: SIGKILL it in the middle of a stream of appends, and
open with no broker at all.

The kill tests kill and restart the test broker through ``scripts/pulsar``
(``broker_control``), so they run only where that script controls the broker at
``WALSTREAM_TEST_PULSAR_URL``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from typing import Any

import pytest
from pulsar_helpers import (
    BrokerControl,
    closed_port,
    make_opener,
    pulsar_test_settings,
    read_through,
)
from walstream.errors import WALError
from walstream.message import MessageID, MutableMessage
from walstream.walimpls import PChannelInfo, ReadOption
from walstream_pulsar.errors import PulsarUnavailableError

RECOVERY_S = 300.0
"""How long a killed standalone may take to take producers again (see the mid-stream test)."""


def _payload(seq: int) -> bytes:
    return f"seq {seq} ".encode() * (1 + seq % 7)


async def _stream(
    wal: Any,
    stop: asyncio.Event,
    acked: dict[int, MessageID],
    failed: set[int],
    errors: list[WALError] | None = None,
) -> None:
    """Append with 16 in flight until ``stop``; record what was acknowledged and what failed
    (and, given ``errors``, with which error)."""
    slots = asyncio.Semaphore(16)
    seq = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one(n: int) -> None:
        try:
            acked[n] = await wal.append(MutableMessage.raw(_payload(n), {"seq": str(n)}))
        except WALError as exc:
            failed.add(n)
            if errors is not None:
                errors.append(exc)
        finally:
            slots.release()

    while not stop.is_set():
        await slots.acquire()
        task = asyncio.create_task(one(seq))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        seq += 1
    await asyncio.gather(*tasks)


def _check_exactly_once(got: list[Any], acked: dict[int, MessageID], failed: set[int]) -> None:
    seen: dict[int, MessageID] = {}
    for a, b in itertools.pairwise(got):
        assert a.message_id < b.message_id, "ids not strictly increasing"
    for m in got:
        if "seq" not in m.properties:
            continue
        n = int(m.properties["seq"])
        assert n not in seen, f"message {n} delivered twice"
        assert m.payload == _payload(n), f"message {n} is corrupt"
        seen[n] = m.message_id
    lost = sorted(n for n in acked if n not in seen)
    assert not lost, f"{len(lost)} acknowledged messages lost, e.g. {lost[:5]}"
    moved = [n for n, mid in acked.items() if seen[n] != mid]
    assert not moved, f"messages read at another id than acknowledged: {moved[:5]}"
    order = sorted(acked, key=lambda n: acked[n])
    assert [
        n for n in (int(m.properties["seq"]) for m in got if "seq" in m.properties) if n in acked
    ] == order
    unknown = set(seen) - set(acked) - failed
    assert not unknown, f"messages read that were never appended: {sorted(unknown)[:5]}"


def test_open_with_no_broker_fails_clearly_in_time() -> None:
    """Nothing listens at service_url: open() fails with PulsarUnavailableError within
    open_timeout_s, naming the URL and the setting."""
    url = f"pulsar://127.0.0.1:{closed_port()}"
    settings = pulsar_test_settings(url, open_timeout_s=3.0, connection_timeout_ms=500)

    async def go() -> None:
        async with make_opener(settings) as opener:
            started = time.monotonic()
            with pytest.raises(PulsarUnavailableError) as info:
                await opener.open(PChannelInfo("down", 1))
            waited = time.monotonic() - started
            assert waited < 3.0 + 1.5, f"open with no broker took {waited:.1f}s"
            assert url in str(info.value) and "open_timeout_s" in str(info.value)

    asyncio.run(asyncio.wait_for(go(), 60))


def test_broker_killed_mid_stream_appends_wait(
    broker_control: BrokerControl, pulsar_url: str
) -> None:
    """With append_timeout_s outlasting the outage, appends wait out a broker restart.

    After a SIGKILL the standalone's bookie recovers its ledgers before the topic takes
    producers again; on a loaded 2-core machine that was seen to take over two minutes
    ("Error while recovering ledger", "Not enough non-faulty bookies available"), so the
    timeout and the wait for appends to resume allow five. During that recovery the
    broker may also fail sends still pending with a persistence error: those appends
    must fail with the retryable ``PulsarUnavailableError`` (never time out, never a
    final error), and nothing acknowledged may be lost or duplicated.
    """
    settings = pulsar_test_settings(pulsar_url, append_timeout_s=RECOVERY_S)

    async def go() -> tuple[dict[int, MessageID], set[int], float]:
        acked: dict[int, MessageID] = {}
        failed: set[int] = set()
        async with make_opener(settings) as opener:
            name = f"kill_{uuid.uuid4().hex[:8]}"
            wal = await opener.open(PChannelInfo(name, 1))
            tail = await wal.read(ReadOption("tail"))
            stop = asyncio.Event()
            writer = asyncio.create_task(_stream(wal, stop, acked, failed, errors))
            await asyncio.sleep(1.0)
            assert acked, "nothing acknowledged before the kill"
            await asyncio.to_thread(broker_control.kill)
            killed_at = time.monotonic()
            await asyncio.sleep(1.0)
            await asyncio.to_thread(broker_control.start)
            outage = time.monotonic() - killed_at
            resumed = len(acked)
            deadline = time.monotonic() + RECOVERY_S
            while len(acked) < resumed + 200 and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            stop.set()
            await writer
            assert len(acked) >= resumed + 200, "appends did not resume after the restart"
            last = await wal.append(MutableMessage.raw(b"", {"end": "1"}))
            got = await read_through(tail, last, timeout=120)  # a tail reader survives too
            await tail.close()
            async with await wal.read(ReadOption("all")) as scanner:
                again = await read_through(scanner, last, timeout=120)
            await wal.close()
        _check_exactly_once(got, acked, failed)
        _check_exactly_once(again, acked, failed)
        return acked, failed, outage

    errors: list[WALError] = []
    acked, failed, outage = asyncio.run(asyncio.wait_for(go(), 2 * RECOVERY_S + 300))
    wrong = [
        e
        for e in errors
        if not isinstance(e, PulsarUnavailableError) or "append_timeout_s" in str(e)
    ]
    assert not wrong, (
        f"{len(wrong)} of {len(failed)} failed appends failed otherwise than with a broker-side "
        f"retryable error although append_timeout_s outlasts the outage: {wrong[:3]!r}"
    )
    print(f"acked {len(acked)} across a {outage:.1f}s broker outage")


def test_broker_killed_appends_fail_in_time_then_recover(
    broker_control: BrokerControl, pulsar_url: str
) -> None:
    """With a short append_timeout_s appends made while the broker is down fail clearly and
    in time; nothing acknowledged is lost, and a new term writes again after the restart."""
    settings = pulsar_test_settings(pulsar_url, append_timeout_s=3.0)

    async def go() -> None:
        acked: dict[int, MessageID] = {}
        failed: set[int] = set()
        name = f"down_{uuid.uuid4().hex[:8]}"
        async with make_opener(settings) as opener:
            wal = await opener.open(PChannelInfo(name, 1))
            stop = asyncio.Event()
            writer = asyncio.create_task(_stream(wal, stop, acked, failed))
            await asyncio.sleep(1.0)
            await asyncio.to_thread(broker_control.kill)
            started = time.monotonic()
            with pytest.raises(WALError) as info:
                await wal.append(MutableMessage.raw(b"while down", {"down": "1"}))
            waited = time.monotonic() - started
            assert waited < 3.0 + 2.0, f"an append with the broker down took {waited:.1f}s"
            assert "append_timeout_s" in str(info.value)
            stop.set()
            await writer
            assert failed, "no append failed while the broker was down"
            await asyncio.to_thread(broker_control.start)
            await wal.close()
        async with make_opener(settings | {"append_timeout_s": 60.0}) as opener:
            wal = await opener.open(PChannelInfo(name, 2))
            last = await wal.append(MutableMessage.raw(b"", {"end": "1"}))
            async with await wal.read(ReadOption("all")) as scanner:
                got = await read_through(scanner, last, timeout=120)
            await wal.close()
        _check_exactly_once(got, acked, failed)

    asyncio.run(asyncio.wait_for(go(), 600))
