"""Zero-disk fault tests on memory:// and file://: racing writers, fenced uploads, crashes
before the footer, an unreachable store. Invariants everywhere: everything acknowledged
is read back exactly once, in order; nothing unacknowledged past a fence is visible."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from om_helpers import FaultStore, make_opener, object_settings
from s3_helpers import s3_wal_settings
from walstream.errors import FencedError, ObjectStoreError, WALError
from walstream.message import ImmutableMessage, MessageID, MutableMessage
from walstream.testing.wal_contract import read_idle_until
from walstream.walimpls import ReadOption, WALImpl
from walstream_woodpecker import WoodpeckerMessageID
from walstream_woodpecker.objectmode.block_object import encode_block
from walstream_woodpecker.objectmode.opener import ObjectOpener
from wp_helpers import msg, read_idle, ro, rw

STORES = ["memory", "file", "s3"]


@pytest.fixture(params=STORES)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "s3":
        server = request.getfixturevalue("s3_server")
        return s3_wal_settings(server, tmp_path / "wal")
    url = None
    if request.param == "file":
        (tmp_path / "objects").mkdir()
        url = (tmp_path / "objects").as_uri()
    return object_settings(tmp_path / "wal", url)


def payloads(messages: list[ImmutableMessage]) -> list[bytes]:
    return [m.payload for m in messages]


async def check_log(
    opener: ObjectOpener, acked: dict[bytes, MessageID], term: int, name: str = "ch"
) -> list[ImmutableMessage]:
    """Open at ``term``, read everything: acked ⊆ visible, no duplicates, ids increase.

    Reads until the last acknowledged id (bounded), then whatever follows until a short
    quiet period: a slow machine can only make that tail read miss extras, never fail."""
    wal = await opener.open(rw(name, term))
    got = await read_through(wal, max(acked.values(), default=None))
    await wal.close()
    seen = payloads(got)
    assert len(seen) == len(set(seen)), "an entry was delivered twice"
    ids = [m.message_id for m in got]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for payload, mid in acked.items():
        assert payload in seen, f"acknowledged {payload!r} at {mid!r} is lost"
        assert got[seen.index(payload)].message_id == mid
    return got


async def read_through(wal: WALImpl, last: MessageID | None) -> list[ImmutableMessage]:
    """Every message up to ``last`` (waiting for it, bounded), then any that follow."""
    scanner = await wal.read(ReadOption("check"))
    try:
        got = [] if last is None else await read_idle_until(scanner, last, timeout=60)
        return got + await read_idle(scanner, 0.2)
    finally:
        await scanner.close()


async def append_all(wal: WALImpl, tag: str, n: int) -> tuple[dict[bytes, MessageID], list[bytes]]:
    """``n`` concurrent appends: acknowledged {payload: id} and refused payloads."""

    async def one(i: int) -> tuple[bytes, MessageID | BaseException]:
        m = MutableMessage.raw(f"{tag}-{i}".encode(), {"w": tag})
        try:
            return m.payload, await wal.append(m)
        except (FencedError, WALError) as exc:
            return m.payload, exc

    acked: dict[bytes, MessageID] = {}
    refused: list[bytes] = []
    for payload, outcome in await asyncio.gather(*(one(i) for i in range(n))):
        if isinstance(outcome, BaseException):
            refused.append(payload)
        else:
            acked[payload] = outcome
    return acked, refused


# --- two writers ----------------------------------------------------------------------------


@pytest.mark.parametrize("same_opener", [True, False])
async def test_racing_rw_opens_one_survives(settings: dict[str, Any], same_opener: bool) -> None:
    a = make_opener(settings)
    b = a if same_opener else make_opener(settings)
    first = await a.open(rw("ch", 1))
    warm, _ = await append_all(first, "warm", 10)
    # Appends in flight on term 1 while terms 1 (again, superseding) and 2 open concurrently.
    racing = asyncio.create_task(append_all(first, "t1", 50))
    opens = await asyncio.gather(a.open(rw("ch", 1)), b.open(rw("ch", 2)), return_exceptions=True)
    old_acked, old_refused = await racing
    survivors: list[WALImpl] = []
    acked = {**warm, **old_acked}
    for wal in opens:
        if isinstance(wal, BaseException):
            assert isinstance(wal, FencedError), wal
            continue
        got, refused = await append_all(wal, f"t{wal.channel.term}-g", 20)
        acked.update(got)
        if got:
            assert not refused
            survivors.append(wal)
        else:
            assert refused
    assert len(survivors) == 1 and survivors[0].channel.term == 2
    with pytest.raises(FencedError):
        await first.append(msg("late"))
    for o in {a, b}:
        await o.close()
    checker = make_opener(settings)
    got = await check_log(checker, acked, 3)
    visible = set(payloads(got))
    assert not visible & set(old_refused), "a refused append became visible"
    await checker.close()


async def test_fenced_writer_that_keeps_uploading_is_never_visible(
    settings: dict[str, Any],
) -> None:
    hold = asyncio.Event()
    held: list[str] = []

    async def hook(op: str, key: str) -> None:
        if op == "put_if_absent" and key.endswith(".blk") and not hold.is_set():
            held.append(key)
            await hold.wait()

    old_opener = make_opener(settings, lambda inner: FaultStore(inner, hook))
    old = await old_opener.open(rw("ch", 1))
    hold.set()
    acked, _ = await append_all(old, "acked", 5)
    hold.clear()
    # Blocks of these appends are being uploaded (held) when the new owner fences.
    pending = asyncio.create_task(append_all(old, "stuck", 12))
    for _ in range(200):
        if held:
            break
        await asyncio.sleep(0.01)
    assert held
    new_opener = make_opener(settings)
    new = await new_opener.open(rw("ch", 2))
    hold.set()  # the old writer's uploads go on now and meet the fence
    stuck_acked, stuck_refused = await asyncio.wait_for(pending, 30)
    assert not stuck_acked and len(stuck_refused) == 12
    with pytest.raises(FencedError):
        await old.append(msg("after"))
    # Simulate an old upload that lands beyond the fence: still never visible.
    store = new_opener._store
    assert store is not None
    data, _ = encode_block(0, 7, 99, 1, [b"\x00\x00\x00\x01z"])
    await store.put_if_absent("ch/00000000000000000000/000000000007.blk", data)
    mine, _ = await append_all(new, "new", 3)
    got = await read_through(new, max(mine.values()))
    assert sorted(payloads(got)) == sorted([*acked, *mine])
    await old_opener.close()
    await new_opener.close()


async def test_readers_stop_at_a_fence(settings: dict[str, Any]) -> None:
    opener = make_opener(settings)
    wal = await opener.open(rw("ch", 1))
    acked, _ = await append_all(wal, "a", 3)
    reader_opener = make_opener(settings)
    reader = await reader_opener.open(ro("ch", 1))
    scanner = await reader.read(ReadOption("r"))
    other = make_opener(settings)
    new = await other.open(rw("ch", 2))  # fences segment 0, completes it
    got = []
    for _ in range(len(acked)):
        got.append(await asyncio.wait_for(scanner.__anext__(), 10))
    assert sorted(payloads(got)) == sorted(acked)
    more, _ = await append_all(new, "b", 2)
    for _ in range(2):
        got.append(await asyncio.wait_for(scanner.__anext__(), 10))
    assert sorted(payloads(got)) == sorted([*acked, *more])
    await scanner.close()
    for o in (opener, reader_opener, other):
        await o.close()


# --- crash before the footer ---------------------------------------------------------------------


async def test_footer_write_fails_then_next_open_completes(settings: dict[str, Any]) -> None:
    async def hook(op: str, key: str) -> None:
        if key.endswith("footer.blk") and op.startswith("put"):
            raise ObjectStoreError("injected: the footer cannot be written")

    opener = make_opener(
        {**settings, "object_upload_retry_deadline_s": 0.5}, lambda inner: FaultStore(inner, hook)
    )
    wal = await opener.open(rw("ch", 1))
    acked, _ = await append_all(wal, "x", 25)
    await asyncio.wait_for(wal.close(), 10)  # logs the failure, does not hang
    await opener.close()
    checker = make_opener(settings)
    got = await check_log(checker, acked, 2)
    assert sorted(payloads(got)) == sorted(acked)
    assert checker._metastore is not None
    kv = await checker._metastore.get("woodpecker/logs/ch/segments/00000000000000000000")
    assert kv is not None
    record = json.loads(kv.value)
    assert record["state"] == "completed" and record["last_entry"] == 24
    await checker.close()


_CHILD = r"""
import asyncio, json, sys
from walstream.message import MutableMessage
from walstream.walimpls import PChannelInfo
from walstream.walimpls.registry import build_opener

async def main(settings):
    opener = build_opener("woodpecker", settings)
    wal = await opener.open(PChannelInfo("ch", 1))
    for i in range(30):
        await wal.append(MutableMessage.raw(f"c-{i}".encode()))
        print(f"ack c-{i}", flush=True)
    print("done", flush=True)
    await asyncio.sleep(3600)  # killed here: blocks stored, no footer, segment active

asyncio.run(main(json.loads(sys.argv[1])))
"""


def test_sigkilled_writer_before_footer(tmp_path: Path) -> None:
    (tmp_path / "objects").mkdir()
    settings = object_settings(tmp_path / "wal", (tmp_path / "objects").as_uri())
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps(settings)], stdout=subprocess.PIPE, text=True
    )
    acked: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("ack "):
                acked.append(line.split()[1])
            if line.strip() == "done":
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert len(acked) == 30
    assert not list((tmp_path / "objects").rglob("footer.blk"))

    async def go() -> None:
        opener = make_opener(settings)
        wal = await opener.open(rw("ch", 2))
        got = await read_through(wal, WoodpeckerMessageID(0, len(acked) - 1))
        assert [m.payload.decode() for m in got] == acked
        assert opener._metastore is not None
        kv = await opener._metastore.get("woodpecker/logs/ch/segments/00000000000000000000")
        assert kv is not None and json.loads(kv.value)["last_entry"] == 29
        assert list((tmp_path / "objects").rglob("footer.blk"))
        await opener.close()

    asyncio.run(go())


# --- an unreachable store ----------------------------------------------------------------------------


async def test_outage_shorter_than_the_deadline_is_waited_out(settings: dict[str, Any]) -> None:
    down = asyncio.Event()

    async def hook(op: str, key: str) -> None:
        if down.is_set():
            raise ObjectStoreError("injected: connection refused")

    opener = make_opener(
        {**settings, "object_upload_retry_deadline_s": 30}, lambda inner: FaultStore(inner, hook)
    )
    wal = await opener.open(rw("ch", 1))
    first, _ = await append_all(wal, "before", 5)
    down.set()
    during = asyncio.create_task(append_all(wal, "during", 20))
    await asyncio.sleep(1.0)
    assert not during.done()
    down.clear()
    acked_during, refused = await asyncio.wait_for(during, 30)
    assert not refused
    await wal.close()
    await opener.close()
    checker = make_opener(settings)
    got = await check_log(checker, {**first, **acked_during}, 2)
    assert len(got) == 25
    await checker.close()


async def test_outage_past_the_deadline_kills_the_writer(settings: dict[str, Any]) -> None:
    down = asyncio.Event()

    async def hook(op: str, key: str) -> None:
        if down.is_set():
            raise ObjectStoreError("injected: connection refused")

    opener = make_opener(
        {**settings, "object_upload_retry_deadline_s": 0.5}, lambda inner: FaultStore(inner, hook)
    )
    wal = await opener.open(rw("ch", 1))
    acked, _ = await append_all(wal, "before", 5)
    down.set()
    start = asyncio.get_running_loop().time()
    during_acked, refused = await asyncio.wait_for(append_all(wal, "during", 20), 20)
    assert asyncio.get_running_loop().time() - start < 10
    assert not during_acked and len(refused) == 20
    with pytest.raises(WALError, match="unreachable"):
        await wal.append(msg("later"))
    down.clear()
    await wal.close()
    await opener.close()
    checker = make_opener(settings)
    got = await check_log(checker, acked, 2)
    assert set(payloads(got)) <= {*acked, *refused}
    await checker.close()
