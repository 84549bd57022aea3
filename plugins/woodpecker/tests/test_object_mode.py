"""Zero-disk mode: settings, capability refusal, layout, pipelining, corruption, truncation."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from om_helpers import FaultStore, make_opener, object_settings
from walstream.errors import (
    CapabilityError,
    PluginNotFoundError,
    SettingsError,
    WALError,
)
from walstream.objectstore import ObjectStoreCapabilities
from walstream.walimpls import DeliverLatest, DeliverStartFrom, ReadOption
from walstream.walimpls.registry import build_opener
from walstream_woodpecker import WoodpeckerBuilder, WoodpeckerMessageID
from walstream_woodpecker.objectmode.block_object import (
    decode_block,
    decode_fence,
    decode_footer,
    encode_block,
    encode_fence,
    encode_footer,
)
from walstream_woodpecker.objectmode.layout import LogLayout, log_segment
from walstream_woodpecker.objectmode.opener import ObjectOpener
from wp_helpers import msg, read_all, read_n, ro, rw, tags

# --- settings -------------------------------------------------------------------------


def test_object_mode_defaults() -> None:
    s = WoodpeckerBuilder().load_settings({"storage": "object", "object_store_url": "memory://x"})
    assert s.object_flush_interval_ms == 200  # type: ignore[attr-defined]
    assert s.object_flush_max_bytes == 2 * 1024 * 1024  # type: ignore[attr-defined]
    assert s.object_max_parallel_uploads == 8  # type: ignore[attr-defined]
    assert s.object_reader_poll_interval_ms == 200  # type: ignore[attr-defined]
    assert s.flush_interval_ms == 10  # type: ignore[attr-defined]  # local mode's is unchanged


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"storage": "object"}, "needs object_store_url"),
        ({"storage": "object", "object_store_url": "/no/scheme"}, "scheme"),
        ({"object_store_url": "memory://x"}, "only applies to storage='object'"),
        ({"object_flush_interval_ms": 50}, "only applies to storage='object'"),
        ({"metastore_url": "sqlite:///x.db", "object_store": {"a": 1}}, "only apply"),
        ({"storage": "s3"}, "storage"),
        (
            {"storage": "object", "object_store_url": "memory://x", "flush_interval_ms": 1},
            "flush_interval_ms only applies to storage='local'.*object_flush_interval_ms",
        ),
        (
            {"storage": "object", "object_store_url": "memory://x", "flush_max_bytes": 1024},
            "flush_max_bytes only applies to storage='local'",
        ),
        (
            {
                "storage": "object",
                "object_store_url": "memory://x",
                "reader_poll_interval_ms": 5,
                "fence_lock_timeout_s": 1,
            },
            "fence_lock_timeout_s, reader_poll_interval_ms only apply to storage='local'",
        ),
        (
            {
                "storage": "object",
                "object_store_url": "memory://x",
                "object_max_parallel_uploads": 0,
            },
            "object_max_parallel_uploads",
        ),
        (
            {
                "storage": "object",
                "object_store_url": "memory://x",
                "object_upload_retry_deadline_s": 0,
            },
            "object_upload_retry_deadline_s",
        ),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, object], match: str) -> None:
    with pytest.raises(SettingsError, match=match):
        WoodpeckerBuilder().load_settings(settings)


def test_secrets_stay_out_of_repr_and_errors(tmp_path: Path) -> None:
    secret = "VERY-SECRET-KEY-123"
    settings = object_settings(
        tmp_path, url="nosuchscheme://bucket", object_store={"secret_access_key": secret}
    )
    s = WoodpeckerBuilder().load_settings(settings)
    assert secret not in repr(s) and secret not in str(s)
    opener = make_opener(settings)
    assert secret not in repr(opener)

    async def go() -> None:
        with pytest.raises(PluginNotFoundError, match="nosuchscheme") as info:
            await opener.open(rw())
        assert secret not in str(info.value)
        await opener.close()

    asyncio.run(go())


async def test_store_without_conditional_create_is_refused(tmp_path: Path) -> None:
    def wrap(inner):  # type: ignore[no-untyped-def]
        return FaultStore(inner, capabilities=ObjectStoreCapabilities(range_reads=True))

    opener = make_opener(object_settings(tmp_path), wrap)
    with pytest.raises(CapabilityError, match="conditional_create") as info:
        await opener.open(rw())
    assert "woodpecker zero-disk fencing" in str(info.value)
    await opener.close()


def test_capabilities_follow_store_persistence(tmp_path: Path) -> None:
    mem = build_opener("woodpecker", object_settings(tmp_path))
    assert isinstance(mem, ObjectOpener)
    assert mem.capabilities.durable_across_processes is False  # memory:// dies with us
    assert mem.capabilities.fencing and mem.capabilities.tail_read


# --- formats and layout -----------------------------------------------------------------------


def test_log_names_are_escaped_into_one_key_segment() -> None:
    assert log_segment("by-dev_rootcoord-dml_0") == "by-dev_rootcoord-dml_0"
    assert log_segment("..") == "%2E%2E"
    assert "/" not in log_segment("a/b") and log_segment("a/b") != log_segment("a%2Fb")
    layout = LogLayout.of("ch", "woodpecker")
    assert layout.block_key(3, 12) == "ch/00000000000000000003/000000000012.blk"
    assert layout.footer_key(3) == "ch/00000000000000000003/footer.blk"
    assert layout.block_number(layout.block_key(3, 12), 3) == 12
    assert layout.block_number(layout.footer_key(3), 3) is None


def test_block_footer_fence_round_trip() -> None:
    data, info = encode_block(2, 0, 0, 7, [b"\x00\x00\x00\x01a", b"\x00\x00\x00\x00"])
    got, entries = decode_block("k", data, 2, 0, 0)
    assert got == info and entries == [b"a", b""]
    assert len(encode_fence(1, 1)) < len(data)
    footer = decode_footer("f", encode_footer(2, 7, [info]), 2)
    assert footer.last_entry == 1 and footer.block_count == 1 and footer.blocks[0].size == len(data)
    bad = bytearray(data)
    bad[-1] ^= 0xFF
    with pytest.raises(WALError, match=r"'k'.*payload fails its CRC32"):
        decode_block("k", bytes(bad), 2, 0, 0)


# --- writing and reading ------------------------------------------------------------------------


async def test_round_trip_layout_and_footer(tmp_path: Path) -> None:
    captured: list[FaultStore] = []

    def wrap(inner):  # type: ignore[no-untyped-def]
        captured.append(FaultStore(inner))
        return captured[0]

    opener = make_opener(object_settings(tmp_path, flush_max_entries=4), wrap)
    wal = await opener.open(rw())
    ids = await asyncio.gather(*(wal.append(msg(i)) for i in range(10)))
    assert ids == [WoodpeckerMessageID(0, i) for i in range(10)]
    assert tags(await read_all(wal)) == [str(i) for i in range(10)]
    await wal.close()
    store = captured[0].inner
    keys = [m.key for m in await store.list("ch")]
    assert keys == [
        "ch/00000000000000000000/000000000000.blk",
        "ch/00000000000000000000/000000000001.blk",
        "ch/00000000000000000000/000000000002.blk",
        "ch/00000000000000000000/footer.blk",
    ]
    footer = decode_footer(keys[-1], await store.get(keys[-1]), 0)
    assert [b.entry_count for b in footer.blocks] == [4, 4, 2] and footer.last_entry == 9
    seg = await opener._metastore.get("woodpecker/logs/ch/segments/00000000000000000000")  # type: ignore[union-attr]
    assert seg is not None and b'"completed"' in seg.value and b'"last_entry":9' in seg.value
    reader = await opener.open(ro())
    assert tags(await read_all(reader)) == [str(i) for i in range(10)]
    await opener.close()


async def test_default_interval_groups_appends(tmp_path: Path) -> None:
    settings = object_settings(tmp_path)
    del settings["object_flush_interval_ms"]  # Woodpecker's 200 ms
    opener = make_opener(settings)
    wal = await opener.open(rw())
    start = time.monotonic()
    await asyncio.gather(*(wal.append(msg(i)) for i in range(50)))
    took = time.monotonic() - start
    assert 0.15 < took < 2.0, took
    assert wal._writer is not None and len(wal._writer._blocks) == 1  # type: ignore[attr-defined]
    await opener.close()


async def test_parallel_uploads_ack_in_entry_order(tmp_path: Path) -> None:
    release_first = asyncio.Event()

    async def hook(op: str, key: str) -> None:
        if op == "put_if_absent" and key.endswith("000000000000.blk"):
            await release_first.wait()

    opener = make_opener(
        object_settings(tmp_path, object_flush_max_bytes=64, object_flush_interval_ms=0),
        lambda inner: FaultStore(inner, hook),
    )
    wal = await opener.open(rw())
    acked: list[int] = []

    async def one(i: int) -> None:
        await wal.append(msg(i, 100))
        acked.append(i)

    tasks = [asyncio.create_task(one(i)) for i in range(6)]
    await asyncio.sleep(0.3)
    assert acked == []  # block 0 is held back, so nothing after it is acknowledged
    scanner = await wal.read(ReadOption("r"))
    with pytest.raises(TimeoutError):  # readers see nothing yet either
        await asyncio.wait_for(scanner.__anext__(), 0.2)
    release_first.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert acked == sorted(acked) and len(acked) == 6
    assert tags(await read_n(scanner, 6)) == [str(i) for i in range(6)]
    await scanner.close()
    await opener.close()


async def test_corrupt_block_is_reported_with_its_key(tmp_path: Path) -> None:
    settings = object_settings(tmp_path)
    opener = make_opener(settings)
    wal = await opener.open(rw())
    for i in range(3):
        await wal.append(msg(i))
    await wal.close()
    store = opener._store
    assert store is not None
    key = "ch/00000000000000000000/000000000001.blk"
    raw = bytearray(await store.get(key))
    raw[-2] ^= 0x55
    await store.delete(key)
    await store.put(key, bytes(raw))
    reader = await opener.open(ro())
    scanner = await reader.read(ReadOption("r"))
    first = await scanner.__anext__()
    assert first.properties["n"] == "0"
    with pytest.raises(WALError, match=key):
        await scanner.__anext__()
    assert scanner.error is not None and key in str(scanner.error)
    await opener.close()


async def test_rolling_and_truncation_delete_objects_and_records(tmp_path: Path) -> None:
    opener = make_opener(object_settings(tmp_path, segment_max_blocks=2, flush_max_entries=1))
    wal = await opener.open(rw())
    ids = [await wal.append(msg(i)) for i in range(9)]
    assert [i.segment for i in ids] == [0, 0, 1, 1, 2, 2, 3, 3, 4]
    await wal.truncate(ids[5])  # segment 2 entry 1
    store, meta = opener._store, opener._metastore
    assert store is not None and meta is not None
    left = sorted({m.key.split("/")[1] for m in await store.list("ch")})
    assert [int(s) for s in left] == [0, 1, 2, 3, 4]
    for gone in (0, 1):  # only a fence at the block count stays (it stops a stale writer)
        kept = await store.list(f"ch/{gone:020d}/")
        assert [m.key.rsplit("/", 1)[1] for m in kept] == ["000000000002.blk"]
        assert decode_fence(await store.get(kept[0].key)) is not None
    records = await meta.range("woodpecker/logs/ch/segments/")
    assert [int(r.key.rsplit("/", 1)[1]) for r in records] == [2, 3, 4]
    got = await read_all(wal)
    assert tags(got) == [str(i) for i in range(5, 9)]
    early = await read_all(wal, ReadOption("from", DeliverStartFrom(ids[0])))
    assert tags(early) == [str(i) for i in range(5, 9)]  # clamped to the truncation point
    with pytest.raises(WALError, match="truncate only"):
        await wal.truncate(WoodpeckerMessageID(9, 0))
    await opener.close()


async def test_cross_opener_tail_read_polls(tmp_path: Path) -> None:
    settings = object_settings(tmp_path)
    writer_side, reader_side = make_opener(settings), make_opener(settings)
    wal = await writer_side.open(rw())
    await wal.append(msg("before"))
    reader = await reader_side.open(ro())
    scanner = await reader.read(ReadOption("tail", DeliverLatest()))
    for i in range(3):
        await wal.append(msg(i))
    got = await read_n(scanner, 3, timeout=10)
    assert tags(got) == ["0", "1", "2"]
    await scanner.close()
    await writer_side.close()
    await reader_side.close()
