"""Contract suite for object-store drivers (``walstream.objectstore`` entry points).

A driver author subclasses :class:`ObjectStoreContract` in a ``Test*`` class and
overrides one fixture, ``object_store``, returning an :class:`ObjectStoreSpec`:
the driver's entry-point name and the settings of a fresh, empty store (a new
root, bucket prefix or namespace per test). Clean up in the fixture if needed::

    import uuid
    import pytest
    from walstream.testing import ObjectStoreContract, ObjectStoreSpec

    class TestMyStore(ObjectStoreContract):
        @pytest.fixture
        def object_store(self, tmp_path):
            return ObjectStoreSpec(name="mystore", settings={"root": str(tmp_path)})

The suite opens every store through the registry by that name, so a packaging
mistake (missing or misnamed entry point) fails it. Optional behaviour is gated
on the driver's declared ``capabilities``: a case needing a capability the
driver does not declare is skipped with the reason.

A subclass may replace a contract test only with a version marked
``@pytest.mark.xfail(reason=...)`` (``test_no_overrides_DO_NOT_OVERRIDE`` checks).

Tests are plain synchronous functions that run their async body with
``asyncio.run`` under a timeout (``timeout_seconds``), so they need no
pytest-asyncio configuration. Class attributes tune the heavy cases.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, TypeVar

import pytest

from walstream.errors import (
    CapabilityError,
    InvalidObjectKeyError,
    ObjectAlreadyExistsError,
    ObjectNotFoundError,
    ObjectStoreError,
)
from walstream.objectstore import (
    InvalidRangeError,
    ObjectMeta,
    ObjectStore,
    ObjectStoreCapabilities,
    ObjectStoreDriver,
    get_driver,
    open_store,
)
from walstream.testing.guard import undeclared_overrides
from walstream.testing.spec import run

T = TypeVar("T")

__all__ = ["INVALID_KEYS", "ObjectStoreContract", "ObjectStoreSpec"]


@dataclass(frozen=True)
class ObjectStoreSpec:
    """Which driver to test (entry-point name) and the settings of a fresh, empty store."""

    name: str
    settings: dict[str, Any] = field(default_factory=dict)


INVALID_KEYS: list[Any] = [
    "",
    "/",
    "/absolute",
    "/etc/passwd",
    "..",
    ".",
    "../escape",
    "a/../../escape",
    "a/..",
    "a/./b",
    "./a",
    "a//b",
    "trailing/",
    "back\\slash",
    "..\\escape",
    "nul\x00byte",
    "bell\x07",
    "new\nline",
    "x" * 1025,
    b"bytes-key",
    None,
]
"""Keys every driver must refuse with ``InvalidObjectKeyError``, before any I/O."""

_INVALID_PREFIXES = ["/", "/a", "../", "a/../b", "a//b", "./a", "back\\slash", "nul\x00"]

_UNICODE_KEYS = [
    "données/été.txt",
    "日本語/キー",
    "ключ/значение",
    "emoji/🙂🚀",
    "mixed/naïve café",
    "ελληνικά/αβγ",
]

_LITERAL_KEYS = [
    "chars/with space",
    "chars/percent%20literal",
    "chars/slash%2Fliteral",
    "chars/slash/literal",
    "chars/plus+sign",
    "chars/hash#tag",
    "chars/colon:x",
    "chars/tilde~",
    "chars/dots..inside",
    "chars/.hidden",
    "chars/quotes'\"",
    "chars/query?a=b&c=d;e",
    "chars/[brackets]{braces}",
]


def _key_id(key: Any) -> str:
    text = repr(key)
    return text if len(text) <= 24 else text[:20] + "...'"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _payload(tag: int, size: int) -> bytes:
    """``size`` bytes that differ from every other tag's payload at every position."""
    block = hashlib.sha256(tag.to_bytes(8, "big")).digest()
    return (block * (size // len(block) + 1))[:size]


class ObjectStoreContract:
    """The object-store contract; subclass it as ``Test<Something>`` and override ``object_store``."""

    overridable_fixtures: tuple[str, ...] = ("object_store",)
    """The fixtures a subclass must override; nothing else but tuning attributes may change."""

    timeout_seconds: ClassVar[float] = 60.0
    """Upper bound for each test's async body."""
    large_object_bytes: ClassVar[int] = 32 * 1024 * 1024
    """Size of the large-object round trip."""
    concurrent_writers: ClassVar[int] = 50
    """Writers to distinct keys started at once."""
    race_rounds: ClassVar[int] = 20
    """Rounds of two writers racing ``put_if_absent`` on one key."""
    race_crowd: ClassVar[int] = 16
    """Writers in the many-writers ``put_if_absent`` race."""

    # --- what the implementer provides --------------------------------------------

    @pytest.fixture
    def object_store(self) -> ObjectStoreSpec:
        """Override: the driver's entry-point name and settings of a fresh, empty store."""
        raise NotImplementedError(
            "override the object_store fixture in your ObjectStoreContract subclass: "
            "return ObjectStoreSpec(name=<entry-point name>, settings={...}) for a fresh, "
            "empty store"
        )

    # --- helpers ------------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on a new event loop, failing after ``timeout_seconds``."""
        return run(coro, self.timeout_seconds)

    async def open(self, spec: ObjectStoreSpec) -> ObjectStore:
        """Open a store for ``spec`` through the registry (by entry-point name)."""
        return await open_store(spec.name, dict(spec.settings))

    def with_store(
        self, spec: ObjectStoreSpec, body: Callable[[ObjectStore], Awaitable[None]]
    ) -> None:
        """Open a store, run ``body`` on it, close it; all under the timeout."""

        async def main() -> None:
            store = await self.open(spec)
            async with store:
                await body(store)

        self.run(main())

    def driver(self, spec: ObjectStoreSpec) -> ObjectStoreDriver:
        """The driver registered under ``spec.name``."""
        return get_driver(spec.name)

    def require(self, spec: ObjectStoreSpec, capability: str) -> None:
        """Skip the test unless the driver declares ``capability``."""
        if not getattr(self.driver(spec).capabilities, capability):
            pytest.skip(f"driver {spec.name!r} does not declare capability {capability}")

    @staticmethod
    async def keys(store: ObjectStore, prefix: str = "") -> list[str]:
        """The keys ``list(prefix)`` returns, in its order."""
        return [m.key for m in await store.list(prefix)]

    # --- the rules of the suite ------------------------------------------------------

    def test_no_overrides_DO_NOT_OVERRIDE(self) -> None:
        """A contract test may only be replaced by one marked xfail with a reason."""
        bad = undeclared_overrides(ObjectStoreContract, type(self))
        assert not bad, f"contract tests overridden or removed without xfail(reason=...): {bad}"

    # --- registration ---------------------------------------------------------------

    def test_driver_is_registered(self, object_store: ObjectStoreSpec) -> None:
        """The entry point loads a driver of the right name, capabilities and settings."""
        driver = self.driver(object_store)
        assert isinstance(driver, ObjectStoreDriver), f"{driver!r} is not an ObjectStoreDriver"
        assert driver.name == object_store.name, "the driver's name must equal its entry-point name"
        assert isinstance(driver.capabilities, ObjectStoreCapabilities), (
            "capabilities must be an ObjectStoreCapabilities"
        )
        settings = driver.load_settings(dict(object_store.settings))
        assert isinstance(settings, driver.settings_class), (
            "load_settings must return settings_class"
        )

        async def main() -> None:
            store = await driver.open(settings)
            async with store:
                assert isinstance(store, ObjectStore), f"open() returned {store!r}"
                assert store.capabilities == driver.capabilities, (
                    "a store must declare its driver's capabilities"
                )

        self.run(main())

    def test_store_starts_empty(self, object_store: ObjectStoreSpec) -> None:
        """The fixture must give a fresh store (a new root or namespace per test)."""

        async def body(store: ObjectStore) -> None:
            assert await store.list() == [], (
                "the object_store fixture must return settings of a fresh, empty store"
            )

        self.with_store(object_store, body)

    # --- put / get / head -----------------------------------------------------------

    def test_put_then_get(self, object_store: ObjectStoreSpec) -> None:
        async def body(store: ObjectStore) -> None:
            data = b"hello, object store"
            meta = await store.put("docs/hello.txt", data)
            assert isinstance(meta, ObjectMeta), f"put returned {meta!r}"
            assert meta.key == "docs/hello.txt"
            assert meta.size == len(data)
            got = await store.get("docs/hello.txt")
            assert type(got) is bytes, f"get must return bytes, not {type(got).__name__}"
            assert got == data

        self.with_store(object_store, body)

    def test_put_overwrites(self, object_store: ObjectStoreSpec) -> None:
        """A second put replaces the object entirely (longer, then shorter)."""

        async def body(store: ObjectStore) -> None:
            await store.put("over/write", b"first version, fairly long")
            await store.put("over/write", b"second")
            assert await store.get("over/write") == b"second", "put must replace, not patch"
            assert (await store.head("over/write")).size == len(b"second")
            await store.put("over/write", b"third and longest version of all")
            assert await store.get("over/write") == b"third and longest version of all"
            assert await self.keys(store) == ["over/write"]

        self.with_store(object_store, body)

    def test_empty_object(self, object_store: ObjectStoreSpec) -> None:
        async def body(store: ObjectStore) -> None:
            meta = await store.put("empty/object", b"")
            assert meta.size == 0
            assert await store.get("empty/object") == b""
            assert (await store.head("empty/object")).size == 0
            listed = await store.list("empty")
            assert [(m.key, m.size) for m in listed] == [("empty/object", 0)]

        self.with_store(object_store, body)

    def test_all_byte_values(self, object_store: ObjectStoreSpec) -> None:
        """Binary data survives untouched: every byte value, CR/LF, NUL, high bytes."""

        async def body(store: ObjectStore) -> None:
            data = bytes(range(256)) * 4 + bytes(reversed(range(256))) + b"\r\n\x00\r\r\n\n\xff"
            await store.put("bin/all-bytes", data)
            got = await store.get("bin/all-bytes")
            assert got == data, "binary data must round-trip byte for byte"
            assert (await store.head("bin/all-bytes")).size == len(data)

        self.with_store(object_store, body)

    def test_head(self, object_store: ObjectStoreSpec) -> None:
        async def body(store: ObjectStore) -> None:
            await store.put("meta/obj", b"12345")
            meta = await store.head("meta/obj")
            assert meta.key == "meta/obj"
            assert meta.size == 5
            assert meta.etag is None or isinstance(meta.etag, str)
            assert meta.last_modified is None or isinstance(meta.last_modified, datetime)
            await store.put("meta/obj", b"1234567890")
            assert (await store.head("meta/obj")).size == 10, "head must see the overwrite"

        self.with_store(object_store, body)

    def test_missing_key_raises_not_found(self, object_store: ObjectStoreSpec) -> None:
        """get and head of a missing key raise ObjectNotFoundError naming the key."""

        async def body(store: ObjectStore) -> None:
            await store.put("present/x", b"x")
            for key in ("absent/key-0042", "present", "present/x/deeper"):
                for op in ("get", "head"):
                    with pytest.raises(ObjectNotFoundError) as info:
                        await getattr(store, op)(key)
                    assert key in str(info.value), (
                        f"{op}({key!r}) error must name the key: {info.value}"
                    )
                    assert isinstance(info.value, KeyError)

        self.with_store(object_store, body)

    # --- list -------------------------------------------------------------------------

    def test_list_sorted_by_key_and_prefix(self, object_store: ObjectStoreSpec) -> None:
        """list is sorted by key and takes the prefix as a path (segment boundaries)."""
        keys = ["a/2", "a/10", "ab/1", "a/1", "b", "a/b/c", "a-/x", "a.b", "z/last"]

        async def body(store: ObjectStore) -> None:
            for i, key in enumerate(keys):
                await store.put(key, b"x" * i)
            listed = await store.list()
            assert [m.key for m in listed] == sorted(keys), "list() must return every key, sorted"
            assert {m.key: m.size for m in listed} == {k: i for i, k in enumerate(keys)}
            under_a = ["a/1", "a/10", "a/2", "a/b/c"]
            assert await self.keys(store, "a") == under_a, "prefix 'a' means keys under 'a/'"
            assert await self.keys(store, "a/") == under_a, "a trailing '/' changes nothing"
            assert await self.keys(store, "a/b") == ["a/b/c"]
            assert await self.keys(store, "ab") == ["ab/1"]
            assert await self.keys(store, "a/1") == [], "a key is not under itself"
            assert await self.keys(store, "b") == [], "nothing is under an object's own key"
            assert await self.keys(store, "nope") == []
            assert await self.keys(store, "z/") == ["z/last"]

        self.with_store(object_store, body)

    def test_list_refuses_invalid_prefix(self, object_store: ObjectStoreSpec) -> None:
        async def body(store: ObjectStore) -> None:
            for prefix in _INVALID_PREFIXES:
                with pytest.raises(InvalidObjectKeyError):
                    await store.list(prefix)

        self.with_store(object_store, body)

    # --- delete -----------------------------------------------------------------------

    def test_delete(self, object_store: ObjectStoreSpec) -> None:
        async def body(store: ObjectStore) -> None:
            await store.put("del/1", b"one")
            await store.put("del/2", b"two")
            await store.delete("del/1")
            with pytest.raises(ObjectNotFoundError):
                await store.get("del/1")
            assert await store.get("del/2") == b"two", "delete must not touch siblings"
            assert await self.keys(store, "del") == ["del/2"]
            await store.delete("del/2")
            assert await store.list() == []
            # Once everything under 'del/' is gone, 'del' itself is a free key.
            await store.put("del", b"now an object")
            assert await store.get("del") == b"now an object"

        self.with_store(object_store, body)

    def test_delete_missing_is_not_an_error(self, object_store: ObjectStoreSpec) -> None:
        """Deleting a missing key, or a key that is only a prefix of others, succeeds (like S3)."""

        async def body(store: ObjectStore) -> None:
            await store.delete("never/existed")
            await store.put("dir/child", b"c")
            await store.delete("dir")  # a prefix, not an object
            assert await store.get("dir/child") == b"c"
            await store.delete("dir/child")
            await store.delete("dir/child")  # twice

        self.with_store(object_store, body)

    # --- ranges (capability range_reads) --------------------------------------------------

    def test_get_range(self, object_store: ObjectStoreSpec) -> None:
        """get_range(key, start, end) is data[start:end]: end exclusive, clamped to the size."""
        self.require(object_store, "range_reads")
        data = bytes(range(256)) * 4

        async def body(store: ObjectStore) -> None:
            await store.put("range/obj", data)
            cases = [(0, 1024), (1, 3), (100, 200), (1023, 1024), (1000, 5000), (0, 1)]
            for start, end in cases:
                got = await store.get_range("range/obj", start, end)
                assert got == data[start:end], f"get_range(.., {start}, {end})"
                assert type(got) is bytes
            for start, end in [(10, 10), (0, 0), (1024, 1024), (1024, 2000)]:
                assert await store.get_range("range/obj", start, end) == b"", (
                    f"get_range(.., {start}, {end}) must be empty"
                )
            await store.put("range/empty", b"")
            assert await store.get_range("range/empty", 0, 0) == b""
            assert await store.get_range("range/empty", 0, 10) == b""

        self.with_store(object_store, body)

    def test_get_range_errors(self, object_store: ObjectStoreSpec) -> None:
        """Negative, reversed or past-the-end ranges raise InvalidRangeError; missing keys NotFound."""
        self.require(object_store, "range_reads")

        async def body(store: ObjectStore) -> None:
            await store.put("range/obj", b"0123456789")
            for start, end in [(-1, 5), (0, -1), (5, 2), (11, 20), (11, 11)]:
                with pytest.raises(InvalidRangeError) as info:
                    await store.get_range("range/obj", start, end)
                assert isinstance(info.value, ValueError)
                assert isinstance(info.value, ObjectStoreError)
            with pytest.raises(ObjectNotFoundError) as missing:
                await store.get_range("range/missing-7", 0, 4)
            assert "range/missing-7" in str(missing.value)

        self.with_store(object_store, body)

    # --- put_if_absent (capability conditional_create) ---------------------------------

    def test_put_if_absent(self, object_store: ObjectStoreSpec) -> None:
        self.require(object_store, "conditional_create")

        async def body(store: ObjectStore) -> None:
            meta = await store.put_if_absent("cond/key", b"first")
            assert meta.key == "cond/key"
            assert meta.size == 5
            with pytest.raises(ObjectAlreadyExistsError):
                await store.put_if_absent("cond/key", b"second")
            assert await store.get("cond/key") == b"first", "a refused create must not write"
            await store.put("cond/plain", b"plain")
            with pytest.raises(ObjectAlreadyExistsError):
                await store.put_if_absent("cond/plain", b"again")
            await store.delete("cond/key")
            await store.put_if_absent("cond/key", b"after delete")
            assert await store.get("cond/key") == b"after delete"
            await store.put_if_absent("cond/empty", b"")
            with pytest.raises(ObjectAlreadyExistsError):
                await store.put_if_absent("cond/empty", b"not empty")
            assert await store.get("cond/empty") == b""

        self.with_store(object_store, body)

    def test_put_if_absent_race(self, object_store: ObjectStoreSpec) -> None:
        """Two writers race on one key: exactly one wins, the other gets ObjectAlreadyExistsError.

        Odd rounds race two handles opened separately on the same store.
        """
        self.require(object_store, "conditional_create")
        size = 256 * 1024

        async def main() -> None:
            first = await self.open(object_store)
            second = await self.open(object_store)
            async with first, second:
                for n in range(self.race_rounds):
                    key = f"race/round-{n:03d}"
                    other = second if n % 2 else first
                    payloads = [_payload(2 * n, size), _payload(2 * n + 1, size)]
                    results = await asyncio.gather(
                        first.put_if_absent(key, payloads[0]),
                        other.put_if_absent(key, payloads[1]),
                        return_exceptions=True,
                    )
                    _check_race(key, results)
                    winner = next(i for i, r in enumerate(results) if isinstance(r, ObjectMeta))
                    stored = await first.get(key)
                    assert _digest(stored) == _digest(payloads[winner]), (
                        f"{key}: the stored bytes must be the winner's, whole"
                    )

        self.run(main())

    def test_put_if_absent_crowd(self, object_store: ObjectStoreSpec) -> None:
        """Many writers race on one key: exactly one wins."""
        self.require(object_store, "conditional_create")

        async def body(store: ObjectStore) -> None:
            payloads = [_payload(n, 4096) for n in range(self.race_crowd)]
            results = await asyncio.gather(
                *(store.put_if_absent("crowd/key", p) for p in payloads), return_exceptions=True
            )
            _check_race("crowd/key", results)
            winner = next(i for i, r in enumerate(results) if isinstance(r, ObjectMeta))
            assert await store.get("crowd/key") == payloads[winner]

        self.with_store(object_store, body)

    def test_put_if_absent_without_capability(self, object_store: ObjectStoreSpec) -> None:
        """A driver without conditional_create must refuse put_if_absent, not fake it."""
        if self.driver(object_store).capabilities.conditional_create:
            pytest.skip("driver declares conditional_create (the put_if_absent tests cover it)")

        async def body(store: ObjectStore) -> None:
            with pytest.raises(CapabilityError):
                await store.put_if_absent("cond/none", b"x")

        self.with_store(object_store, body)

    # --- size and concurrency ---------------------------------------------------------

    def test_large_object(self, object_store: ObjectStoreSpec) -> None:
        size = self.large_object_bytes
        data = os.urandom(size)

        async def body(store: ObjectStore) -> None:
            meta = await store.put("large/blob", data)
            assert meta.size == size
            assert (await store.head("large/blob")).size == size
            got = await store.get("large/blob")
            assert len(got) == size, f"got {len(got)} bytes back, stored {size}"
            assert _digest(got) == _digest(data), "large object content differs"
            assert [(m.key, m.size) for m in await store.list("large")] == [("large/blob", size)]
            if store.capabilities.range_reads:
                tail = await store.get_range("large/blob", size - 1000, size + 1000)
                assert tail == data[size - 1000 :]
                middle = await store.get_range("large/blob", size // 2, size // 2 + 4096)
                assert middle == data[size // 2 : size // 2 + 4096]

        self.with_store(object_store, body)

    def test_concurrent_writers_distinct_keys(self, object_store: ObjectStoreSpec) -> None:
        count = self.concurrent_writers

        async def body(store: ObjectStore) -> None:
            keys = [f"conc/{i:04d}" for i in range(count)]
            payloads = [_payload(i, 1000 + i) for i in range(count)]
            metas = await asyncio.gather(
                *(store.put(k, p) for k, p in zip(keys, payloads, strict=True))
            )
            assert [m.key for m in metas] == keys
            assert await self.keys(store, "conc") == keys
            got = await asyncio.gather(*(store.get(k) for k in keys))
            for key, data, expected in zip(keys, got, payloads, strict=True):
                assert data == expected, f"{key}: content mixed up under concurrency"

        self.with_store(object_store, body)

    # --- keys ---------------------------------------------------------------------------

    @pytest.mark.parametrize("key", INVALID_KEYS, ids=_key_id)
    def test_invalid_key_refused(self, object_store: ObjectStoreSpec, key: Any) -> None:
        """Keys that are empty, absolute, or could escape the root are refused by every operation."""

        async def body(store: ObjectStore) -> None:
            operations: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
                ("put", lambda: store.put(key, b"escaped")),
                ("put_if_absent", lambda: store.put_if_absent(key, b"escaped")),
                ("get", lambda: store.get(key)),
                ("get_range", lambda: store.get_range(key, 0, 1)),
                ("head", lambda: store.head(key)),
                ("delete", lambda: store.delete(key)),
            ]
            for op, call in operations:
                with pytest.raises(InvalidObjectKeyError) as info:
                    await call()
                assert isinstance(info.value, ValueError), (
                    f"{op}: InvalidObjectKeyError is a ValueError"
                )
            assert await store.list() == [], "a refused key must not have written anything"

        self.with_store(object_store, body)

    def test_unicode_keys(self, object_store: ObjectStoreSpec) -> None:
        async def body(store: ObjectStore) -> None:
            for key in _UNICODE_KEYS:
                meta = await store.put(key, key.encode())
                assert meta.key == key
            for key in _UNICODE_KEYS:
                assert await store.get(key) == key.encode(), f"{key!r} did not round-trip"
                assert (await store.head(key)).key == key
            assert await self.keys(store) == sorted(_UNICODE_KEYS)
            assert await self.keys(store, "日本語") == ["日本語/キー"]
            assert await self.keys(store, "données/") == ["données/été.txt"]

        self.with_store(object_store, body)

    def test_literal_keys(self, object_store: ObjectStoreSpec) -> None:
        """Spaces, '%', '+', '#', '?' and friends are plain characters: nothing is decoded."""

        async def body(store: ObjectStore) -> None:
            for key in _LITERAL_KEYS:
                await store.put(key, key.encode())
            assert await self.keys(store) == sorted(_LITERAL_KEYS)
            for key in _LITERAL_KEYS:
                assert await store.get(key) == key.encode(), f"{key!r} did not round-trip"

        self.with_store(object_store, body)

    # --- lifecycle ----------------------------------------------------------------------

    def test_reopen_sees_data(self, object_store: ObjectStoreSpec) -> None:
        """What one store wrote, a store opened later with the same settings reads."""

        async def main() -> None:
            async with await self.open(object_store) as store:
                await store.put("reopen/a", b"persisted")
            async with await self.open(object_store) as store:
                assert await store.get("reopen/a") == b"persisted"
                assert await self.keys(store) == ["reopen/a"]

        self.run(main())

    def test_closed_store_refuses(self, object_store: ObjectStoreSpec) -> None:
        """After close (idempotent), operations raise ObjectStoreError."""

        async def main() -> None:
            store = await self.open(object_store)
            async with store:
                await store.put("closed/a", b"a")
            await store.close()  # a second close is harmless
            for call in (
                lambda: store.get("closed/a"),
                lambda: store.put("closed/b", b"b"),
                store.list,
            ):
                with pytest.raises(ObjectStoreError):
                    await call()

        self.run(main())


def _check_race(key: str, results: Sequence[object]) -> None:
    winners = [r for r in results if isinstance(r, ObjectMeta)]
    losers = [r for r in results if isinstance(r, ObjectAlreadyExistsError)]
    others = [r for r in results if not isinstance(r, ObjectMeta | ObjectAlreadyExistsError)]
    assert not others, f"{key}: unexpected outcomes of racing put_if_absent: {others!r}"
    assert len(winners) == 1, f"{key}: {len(winners)} writers won put_if_absent, expected exactly 1"
    assert len(losers) == len(results) - 1
