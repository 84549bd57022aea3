"""The object-store registry (by name, by URL scheme) and the SPI's shared helpers."""

from __future__ import annotations

import asyncio
import builtins
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest
from pydantic_settings import BaseSettings
from walstream import plugins
from walstream.errors import (
    CapabilityError,
    DuplicatePluginError,
    InvalidObjectKeyError,
    ObjectNotFoundError,
    PluginLoadError,
    PluginNotFoundError,
    SettingsError,
)
from walstream.objectstore import (
    InvalidRangeError,
    ObjectMeta,
    ObjectStore,
    ObjectStoreCapabilities,
    ObjectStoreDriver,
    driver_for_url,
    get_driver,
    key_in_prefix,
    open_store,
    open_store_url,
    require,
    validate_key,
    validate_prefix,
)
from walstream.plugins import PluginInfo

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 30))


@pytest.fixture
def drivers_installed() -> None:
    """Skip unless walstream-objectstore (the local and memory drivers) is installed."""
    pytest.importorskip("walstream_objectstore", reason="walstream-objectstore is not installed")


# --- by name ----------------------------------------------------------------------------


def test_unknown_driver_names_the_installed_ones(drivers_installed: None) -> None:
    with pytest.raises(PluginNotFoundError) as info:
        get_driver("no-such-store")
    message = str(info.value)
    assert "'no-such-store'" in message
    assert plugins.OBJECTSTORE_GROUP in message
    assert "local" in message and "memory" in message


def test_open_store_unknown_driver(drivers_installed: None) -> None:
    with pytest.raises(PluginNotFoundError):
        run(open_store("no-such-store"))


def test_get_driver_by_name(drivers_installed: None) -> None:
    for name in ("local", "memory"):
        driver = get_driver(name)
        assert isinstance(driver, ObjectStoreDriver)
        assert driver.name == name


def test_open_store_validates_settings(drivers_installed: None) -> None:
    with pytest.raises(SettingsError) as info:
        run(open_store("memory", {"name": ""}))
    assert "name" in str(info.value)


def test_entry_point_that_is_not_a_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugins, "load", lambda group, name: object)
    with pytest.raises(PluginLoadError, match="not a walstream ObjectStoreDriver"):
        get_driver("weird")


def test_entry_point_name_must_match_driver_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugins, "load", lambda group, name: _DictDriver)
    with pytest.raises(PluginLoadError, match="names must match"):
        get_driver("other-name")


# --- by URL -------------------------------------------------------------------------------


def test_file_url_opens_local_store(drivers_installed: None, tmp_path: Path) -> None:
    root = tmp_path / "with space" / "objects"

    async def main() -> None:
        async with await open_store_url(root.as_uri()) as store:
            await store.put("a/b.txt", b"via url")
        assert (root / "a" / "b.txt").read_bytes() == b"via url"

    run(main())
    assert get_driver("local").name == driver_for_url(root.as_uri()).name


def test_memory_url_opens_memory_namespace(drivers_installed: None) -> None:
    name = f"url-{uuid.uuid4().hex}"

    async def main() -> None:
        async with await open_store_url(f"memory://{name}") as store:
            await store.put("k", b"shared")
        async with await open_store("memory", {"name": name}) as store:
            assert await store.get("k") == b"shared"
        async with await open_store_url(f"MEMORY://{name}") as store:
            assert await store.get("k") == b"shared", "schemes are case-insensitive"

    run(main())
    assert driver_for_url("memory://").settings_from_url("memory://") == {}


def test_url_settings_override(drivers_installed: None) -> None:
    a, b = f"url-{uuid.uuid4().hex}", f"url-{uuid.uuid4().hex}"

    async def main() -> None:
        async with await open_store_url(f"memory://{a}", {"name": b}) as store:
            await store.put("k", b"in b")
        async with await open_store("memory", {"name": b}) as store:
            assert await store.get("k") == b"in b"

    run(main())


def test_unknown_url_scheme(drivers_installed: None) -> None:
    with pytest.raises(PluginNotFoundError) as info:
        driver_for_url("gopher://host/x")
    message = str(info.value)
    assert "'gopher'" in message
    assert "file" in message and "memory" in message


def test_url_without_scheme() -> None:
    with pytest.raises(SettingsError, match="no scheme"):
        run(open_store_url("relative/path"))


def test_file_url_with_a_host(drivers_installed: None) -> None:
    with pytest.raises(SettingsError, match="host"):
        run(open_store_url("file://elsewhere/tmp/x"))


def test_scheme_claimed_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    class Twin(_DictDriver):
        name: ClassVar[str] = "twin"

    infos = [
        PluginInfo(plugins.OBJECTSTORE_GROUP, "dict", "x:A", "dist-a", "1", obj=_DictDriver),
        PluginInfo(plugins.OBJECTSTORE_GROUP, "twin", "y:B", "dist-b", "1", obj=Twin),
    ]
    monkeypatch.setattr(plugins, "discover", lambda group: infos)
    with pytest.raises(DuplicatePluginError, match="dict, twin"):
        driver_for_url("dict://x")


def test_scheme_routing_with_a_third_party_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    infos = [PluginInfo(plugins.OBJECTSTORE_GROUP, "dict", "x:A", "dist-a", "1", obj=_DictDriver)]
    monkeypatch.setattr(plugins, "discover", lambda group: infos)
    assert isinstance(driver_for_url("dict://anything"), _DictDriver)

    async def main() -> None:
        async with await open_store_url("dict://anything") as store:
            await store.put("k", b"v")
            assert await store.get("k") == b"v"

    run(main())


# --- key validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["a", "a/b/c", "données/été", "with space", "a..b", ".hidden", "...", "a%2Fb", "x" * 1024],
)
def test_valid_keys(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/a",
        "a/",
        "a//b",
        ".",
        "..",
        "../a",
        "a/../b",
        "a/.",
        "a\\b",
        "a\x00b",
        "a\x1fb",
        "a\x7fb",
        "\ud800",
        "é" * 513,
        None,
        b"a",
        1,
    ],
)
def test_invalid_keys(key: Any) -> None:
    with pytest.raises(InvalidObjectKeyError) as info:
        validate_key(key)
    assert isinstance(info.value, ValueError)
    assert repr(key)[:20] in str(info.value)


def test_validate_prefix() -> None:
    assert validate_prefix("") == ""
    assert validate_prefix("a") == "a"
    assert validate_prefix("a/") == "a"
    assert validate_prefix("a/b/") == "a/b"
    for bad in ["/", "//", "a//", "/a", "../", "a/../", None]:
        with pytest.raises(InvalidObjectKeyError):
            validate_prefix(bad)


def test_key_in_prefix() -> None:
    assert key_in_prefix("a/b", "")
    assert key_in_prefix("a/b", "a")
    assert not key_in_prefix("ab/c", "a")
    assert not key_in_prefix("a", "a")


# --- capabilities --------------------------------------------------------------------------


def test_require_names_capability_and_consumer() -> None:
    caps = ObjectStoreCapabilities(conditional_create=False, range_reads=True)
    require(caps, "range_reads", consumer="the flusher")
    with pytest.raises(CapabilityError) as info:
        require(caps, "range_reads", "conditional_create", consumer="woodpecker fencing")
    assert "conditional_create" in str(info.value)
    assert "woodpecker fencing" in str(info.value)
    assert "range_reads" not in str(info.value)


def test_require_unknown_capability() -> None:
    with pytest.raises(ValueError, match="teleport"):
        require(ObjectStoreCapabilities(), "teleport", consumer="x")


# --- the ObjectStore defaults ------------------------------------------------------------


class _DictStore(ObjectStore):
    """A minimal store keeping only the SPI's abstract methods, to test the defaults."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    @property
    def capabilities(self) -> ObjectStoreCapabilities:
        return _DictDriver.capabilities

    async def put(self, key: str, data: bytes) -> ObjectMeta:
        self.data[validate_key(key)] = bytes(data)
        return ObjectMeta(key, len(data))

    async def get(self, key: str) -> bytes:
        try:
            return self.data[validate_key(key)]
        except KeyError:
            raise ObjectNotFoundError(f"object {key!r} not found") from None

    async def head(self, key: str) -> ObjectMeta:
        return ObjectMeta(key, len(await self.get(key)))

    async def list(self, prefix: str = "") -> builtins.list[ObjectMeta]:
        p = validate_prefix(prefix)
        return [ObjectMeta(k, len(v)) for k, v in sorted(self.data.items()) if key_in_prefix(k, p)]

    async def delete(self, key: str) -> None:
        self.data.pop(validate_key(key), None)

    async def close(self) -> None:
        return None


class _DictSettings(BaseSettings):
    pass


class _DictDriver(ObjectStoreDriver):
    name: ClassVar[str] = "dict"
    settings_class: ClassVar[type[BaseSettings]] = _DictSettings
    capabilities: ClassVar[ObjectStoreCapabilities] = ObjectStoreCapabilities()
    url_schemes: ClassVar[tuple[str, ...]] = ("dict",)

    def settings_from_url(self, url: str) -> dict[str, Any]:
        return {}

    async def open(self, settings: BaseSettings | None = None) -> ObjectStore:
        return _DictStore()


def test_default_put_if_absent_refuses_without_capability() -> None:
    async def main() -> None:
        store = _DictStore()
        with pytest.raises(CapabilityError, match="conditional_create"):
            await store.put_if_absent("k", b"v")
        with pytest.raises(InvalidObjectKeyError):
            await store.put_if_absent("../k", b"v")

    run(main())


def test_default_get_range_slices() -> None:
    async def main() -> None:
        store = _DictStore()
        await store.put("k", b"0123456789")
        assert await store.get_range("k", 2, 5) == b"234"
        assert await store.get_range("k", 8, 100) == b"89"
        assert await store.get_range("k", 10, 10) == b""
        for start, end in [(-1, 2), (5, 2), (11, 12)]:
            with pytest.raises(InvalidRangeError):
                await store.get_range("k", start, end)
        with pytest.raises(ObjectNotFoundError, match="'missing'"):
            await store.get_range("missing", 0, 1)

    run(main())
