"""The SQLite metastore: KV semantics, revisions, watches, and two processes on one file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from walstream.errors import MetastoreError
from walstream.metastore import (
    CompactedRevisionError,
    EventType,
    KeyValue,
    MetastoreClosedError,
    SQLiteMetastore,
    SQLiteMetastoreSettings,
    Watch,
    WatchEvent,
)

WAIT = 10.0  # upper bound on any single wait; generous for slow CI machines


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteMetastore]:
    async with SQLiteMetastore(tmp_path / "meta.sqlite3", watch_poll_interval_ms=20) as ms:
        yield ms


async def next_event(watch: Watch) -> WatchEvent:
    return await asyncio.wait_for(anext(watch), WAIT)


async def run_python(code: str, *args: str) -> str:
    """Run ``code`` in a fresh interpreter; its stdout (fails the test on a non-zero exit)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode()
    return out.decode()


# --- key-value ----------------------------------------------------------------------


async def test_get_put_and_revisions(store: SQLiteMetastore) -> None:
    assert await store.current_revision() == 0
    assert await store.get("a") is None
    r1 = await store.put("a", b"1")
    r2 = await store.put("b", b"2")
    r3 = await store.put("a", b"3")
    assert 0 < r1 < r2 < r3
    assert await store.current_revision() == r3
    assert await store.get("a") == KeyValue("a", b"3", create_revision=r1, mod_revision=r3)
    assert await store.get("b") == KeyValue("b", b"2", create_revision=r2, mod_revision=r2)


async def test_revisions_strictly_increase_over_every_kind_of_write(
    store: SQLiteMetastore,
) -> None:
    seen = [await store.put("k", b"v")]
    for i in range(20):
        seen.append(await store.put(f"k{i}", b"x"))
        rev = await store.put_if(f"k{i}", seen[-1], b"y")
        assert rev is not None
        seen.append(rev)
        assert await store.delete(f"k{i}")
        seen.append(await store.current_revision())
    assert seen == sorted(set(seen))


async def test_values_are_bytes_and_keys_unicode(store: SQLiteMetastore) -> None:
    await store.put("ключ/日本/🙂", b"\x00\xff")
    kv = await store.get("ключ/日本/🙂")
    assert kv is not None and kv.value == b"\x00\xff"
    await store.put("empty", b"")
    kv = await store.get("empty")
    assert kv is not None and kv.value == b""
    with pytest.raises(ValueError):
        await store.put("", b"x")
    with pytest.raises(TypeError):
        await store.put("k", "text")  # type: ignore[arg-type]


async def test_cas_create_only(store: SQLiteMetastore) -> None:
    assert await store.compare_and_swap("k", None, b"first")
    rev = await store.current_revision()
    assert not await store.compare_and_swap("k", None, b"second")
    assert await store.current_revision() == rev  # a failed condition writes nothing
    kv = await store.get("k")
    assert kv is not None and kv.value == b"first"


async def test_cas_by_revision(store: SQLiteMetastore) -> None:
    r1 = await store.put("k", b"a")
    await store.put("other", b"x")  # store revision moves, k's mod_revision does not
    assert not await store.compare_and_swap("k", r1 + 1, b"b")
    assert await store.compare_and_swap("k", r1, b"b")
    assert not await store.compare_and_swap("k", r1, b"c")  # stale now
    kv = await store.get("k")
    assert kv is not None and kv.value == b"b" and kv.create_revision == r1
    r3 = await store.put_if("k", kv.mod_revision, b"c")
    assert r3 is not None and r3 > kv.mod_revision
    kv = await store.get("k")
    assert kv is not None and kv.mod_revision == r3


async def test_cas_on_absent_key_with_revision_fails(store: SQLiteMetastore) -> None:
    assert not await store.compare_and_swap("missing", 1, b"x")
    assert await store.get("missing") is None


async def test_delete(store: SQLiteMetastore) -> None:
    r1 = await store.put("k", b"v")
    assert await store.delete("k")
    assert await store.get("k") is None
    r2 = await store.current_revision()
    assert r2 == r1 + 1
    assert not await store.delete("k")
    assert await store.current_revision() == r2  # deleting nothing is not a write
    r3 = await store.put("k", b"again")
    kv = await store.get("k")
    assert kv is not None and kv.create_revision == r3  # a new life of the key


async def test_range_by_prefix_with_boundaries(store: SQLiteMetastore) -> None:
    for key in ["a", "a/", "a/1", "a/2", "a/2/x", "a0", "a.", "b", "a/\U0010ffff", "a/é"]:
        await store.put(key, key.encode())
    got = [kv.key for kv in await store.range("a/")]
    assert got == sorted(["a/", "a/1", "a/2", "a/2/x", "a/é", "a/\U0010ffff"])
    assert [kv.key for kv in await store.range("a/2")] == ["a/2", "a/2/x"]
    assert [kv.key for kv in await store.range("a/", limit=2)] == ["a/", "a/1"]
    assert await store.range("zzz") == []
    everything = [kv.key for kv in await store.range("")]
    assert everything == sorted(everything) and len(everything) == 10
    with pytest.raises(ValueError):
        await store.range("a", limit=0)


async def test_reopen_keeps_data_and_revision(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "meta.sqlite3"  # parents are created
    async with SQLiteMetastore(path) as ms:
        rev = await ms.put("k", b"v")
        await ms.put("j", b"w")
        await ms.delete("j")
        last = await ms.current_revision()
    async with SQLiteMetastore(path) as ms:
        assert await ms.get("k") == KeyValue("k", b"v", rev, rev)
        assert await ms.get("j") is None
        assert await ms.current_revision() == last
        assert await ms.put("x", b"y") == last + 1


async def test_file_is_wal_mode(store: SQLiteMetastore) -> None:
    await store.put("k", b"v")
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


async def test_closed_store_refuses(tmp_path: Path) -> None:
    ms = SQLiteMetastore(tmp_path / "m.sqlite3")
    await ms.put("k", b"v")
    await ms.close()
    await ms.close()  # idempotent
    with pytest.raises(MetastoreClosedError):
        await ms.get("k")
    with pytest.raises(MetastoreClosedError):
        ms.watch("k")
    assert issubclass(MetastoreClosedError, MetastoreError)


async def test_settings_and_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no walstream.toml around
    monkeypatch.setenv("WALSTREAM_SQLITE_PATH", str(tmp_path / "env.sqlite3"))
    monkeypatch.setenv("WALSTREAM_SQLITE_WATCH_POLL_INTERVAL_MS", "25")
    settings = SQLiteMetastoreSettings()
    assert settings.path == tmp_path / "env.sqlite3"
    assert settings.watch_poll_interval_ms == 25
    assert settings.changelog_retention == 10_000
    async with SQLiteMetastore.from_settings(settings) as ms:
        await ms.put("k", b"v")
    assert (tmp_path / "env.sqlite3").exists()
    async with SQLiteMetastore.from_settings() as ms:  # loads env itself
        assert await ms.get("k") is not None


# --- watch ----------------------------------------------------------------------------


async def test_watch_from_now(store: SQLiteMetastore) -> None:
    await store.put("w/old", b"before")
    async with store.watch("w/") as watch:
        r1 = await store.put("w/a", b"1")
        await store.put("x/ignored", b"-")
        r2 = await store.put("w/a", b"2")
        assert await store.delete("w/a")
        r3 = await store.current_revision()
        assert await next_event(watch) == WatchEvent(EventType.PUT, "w/a", b"1", r1)
        assert await next_event(watch) == WatchEvent(EventType.PUT, "w/a", b"2", r2)
        assert await next_event(watch) == WatchEvent(EventType.DELETE, "w/a", b"", r3)


async def test_watch_wakes_a_waiting_consumer(tmp_path: Path) -> None:
    # A long poll interval: only the local wake-up can deliver the event in time.
    ms = SQLiteMetastore(tmp_path / "m.sqlite3", watch_poll_interval_ms=60_000)
    async with ms, ms.watch("p/") as watch:
        pending = asyncio.ensure_future(anext(watch))
        await asyncio.sleep(0.05)  # the consumer is now parked waiting
        rev = await ms.put("p/k", b"v")
        event = await asyncio.wait_for(pending, WAIT)
        assert event.revision == rev


async def test_watch_created_before_open_sees_later_local_writes(tmp_path: Path) -> None:
    ms = SQLiteMetastore(tmp_path / "m.sqlite3")
    try:
        watch = ms.watch("")  # nothing opened yet
        rev = await ms.put("k", b"v")
        assert (await next_event(watch)).revision == rev
        await watch.aclose()
    finally:
        await ms.close()


async def test_watch_from_old_revision(store: SQLiteMetastore) -> None:
    r1 = await store.put("h/a", b"1")
    await store.put("other", b"x")
    r2 = await store.put("h/b", b"2")
    r3 = await store.put("h/a", b"3")
    async with store.watch("h/", start_revision=r1) as watch:
        got = [await next_event(watch) for _ in range(3)]
        assert [(e.key, e.revision) for e in got] == [("h/a", r1), ("h/b", r2), ("h/a", r3)]
        r4 = await store.put("h/c", b"4")  # then carries on live
        assert (await next_event(watch)).revision == r4
    async with store.watch("h/", start_revision=r2 + 1) as watch:
        assert (await next_event(watch)).revision == r3


async def test_watch_from_future_revision(store: SQLiteMetastore) -> None:
    now = await store.current_revision()
    async with store.watch("f/", start_revision=now + 3) as watch:
        await store.put("f/a", b"skipped")
        await store.put("f/b", b"skipped")
        rev = await store.put("f/c", b"seen")
        assert (await next_event(watch)).revision == rev == now + 3


async def test_watch_catches_up_over_many_pages(store: SQLiteMetastore) -> None:
    start = await store.current_revision() + 1
    n = 2500  # more than one change-log page
    for i in range(n):
        await store.put(f"many/{i:05d}", b"")
    async with store.watch("many/", start_revision=start) as watch:
        revs = [(await next_event(watch)).revision for _ in range(n)]
    assert revs == list(range(start, start + n))


async def test_watch_compacted_revision_error(tmp_path: Path) -> None:
    async with SQLiteMetastore(tmp_path / "m.sqlite3", changelog_retention=5) as ms:
        for i in range(12):
            await ms.put(f"c/{i}", b"")
        assert await ms.compacted_revision() == 7
        with pytest.raises(CompactedRevisionError, match="compacted") as err:
            async with ms.watch("c/", start_revision=7) as watch:
                await next_event(watch)
        assert err.value.requested == 7 and err.value.compacted == 7
        assert isinstance(err.value, MetastoreError)
        async with ms.watch("c/", start_revision=8) as watch:  # still retained
            assert (await next_event(watch)).key == "c/7"


async def test_watch_sees_writes_of_another_process(store: SQLiteMetastore) -> None:
    await store.put("xp/setup", b"")
    async with store.watch("xp/") as watch:
        out = await run_python(
            """
import asyncio, sys
from walstream.metastore import SQLiteMetastore

async def main():
    async with SQLiteMetastore(sys.argv[1]) as ms:
        revs = [await ms.put("xp/remote", b"hello"), await ms.put("unrelated", b"")]
        revs.append(await ms.put("xp/remote", b"again"))
        print(revs[0], revs[2])

asyncio.run(main())
""",
            str(store.path),
        )
        r1, r2 = map(int, out.split())
        assert await next_event(watch) == WatchEvent(EventType.PUT, "xp/remote", b"hello", r1)
        assert await next_event(watch) == WatchEvent(EventType.PUT, "xp/remote", b"again", r2)
    kv = await store.get("xp/remote")
    assert kv is not None and kv.mod_revision == r2


async def test_cas_raced_by_two_processes(store: SQLiteMetastore, tmp_path: Path) -> None:
    keys = [f"race/{i}" for i in range(30)]
    expected: dict[str, int | None] = {}
    for key in keys:
        expected[key] = await store.put(key, b"start")
    expected["race/new"] = None  # a create-only race too
    go = tmp_path / "go"
    code = """
import asyncio, json, os, sys, time
from walstream.metastore import SQLiteMetastore

async def main():
    path, go, me, expected = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    async with SQLiteMetastore(path) as ms:
        await ms.current_revision()  # connection ready before the start signal
        deadline = time.monotonic() + 30
        while not os.path.exists(go) and time.monotonic() < deadline:
            time.sleep(0.001)
        won = {}
        for key, rev in expected.items():
            won[key] = await ms.compare_and_swap(key, rev, me.encode())
        print(json.dumps(won))

asyncio.run(main())
"""
    args = (str(store.path), str(go))
    children = [
        asyncio.ensure_future(run_python(code, *args, name, json.dumps(expected)))
        for name in ("p1", "p2")
    ]
    await asyncio.sleep(0.5)  # let both interpreters start and reach the barrier
    go.touch()
    outs = await asyncio.wait_for(asyncio.gather(*children), 90)
    won = [json.loads(out) for out in outs]
    for key in expected:
        winners = [w[key] for w in won]
        assert sorted(winners) == [False, True], key
        kv = await store.get(key)
        assert kv is not None
        assert kv.value == (b"p1" if won[0][key] else b"p2")


async def test_watch_aclose_does_not_hang_or_leak_tasks(store: SQLiteMetastore) -> None:
    before = asyncio.all_tasks()
    watch = store.watch("idle/")

    async def consume() -> list[WatchEvent]:
        return [event async for event in watch]

    consumer = asyncio.ensure_future(consume())
    await asyncio.sleep(0.1)  # parked in __anext__, several poll rounds
    assert not consumer.done()
    await asyncio.wait_for(watch.aclose(), WAIT)
    assert await asyncio.wait_for(consumer, WAIT) == []
    await watch.aclose()  # idempotent
    with pytest.raises(StopAsyncIteration):
        await anext(watch)
    assert asyncio.all_tasks() == before


async def test_watch_aclose_from_the_consumer_itself(store: SQLiteMetastore) -> None:
    before = asyncio.all_tasks()
    async with store.watch("own/") as watch:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(watch), 0.1)  # cancelled mid-wait
        rev = await store.put("own/k", b"")
        assert (await next_event(watch)).revision == rev  # nothing lost by the cancel
    assert asyncio.all_tasks() == before


async def test_closing_the_store_ends_watches(tmp_path: Path) -> None:
    ms = SQLiteMetastore(tmp_path / "m.sqlite3")
    await ms.open()
    watch = ms.watch("z/")
    pending = asyncio.ensure_future(anext(watch))
    await asyncio.sleep(0.05)
    await asyncio.wait_for(ms.close(), WAIT)
    with pytest.raises(MetastoreClosedError):
        await asyncio.wait_for(pending, WAIT)
    await watch.aclose()
