"""Namespaces, settings and error mapping of the memory driver (and the shared obstore layer)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from obstore.exceptions import PermissionDeniedError
from walstream.errors import ObjectStoreError, SettingsError
from walstream.objectstore import get_driver, open_store
from walstream_objectstore import _obstore
from walstream_objectstore.memory import MemorySettings, drop_namespace, namespaces

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 30))


@pytest.fixture
def name() -> Iterator[str]:
    ns = f"test-{uuid.uuid4().hex}"
    yield ns
    drop_namespace(ns)


def test_same_name_shares_other_names_do_not(name: str) -> None:
    other = f"{name}-other"

    async def main() -> None:
        async with await open_store("memory", {"name": name}) as a:
            await a.put("k", b"v")
            async with await open_store("memory", {"name": name}) as b:
                assert await b.get("k") == b"v"
                await b.put("k2", b"w")
            assert [m.key for m in await a.list()] == ["k", "k2"]
        async with await open_store("memory", {"name": other}) as c:
            assert await c.list() == []

    try:
        run(main())
    finally:
        drop_namespace(other)


def test_drop_namespace(name: str) -> None:
    async def main() -> None:
        async with await open_store("memory", {"name": name}) as store:
            await store.put("k", b"v")
        assert name in namespaces()
        assert drop_namespace(name)
        assert not drop_namespace(name)
        async with await open_store("memory", {"name": name}) as store:
            assert await store.list() == []

    run(main())


def test_settings_from_env_and_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "walstream.toml"
    config.write_text('[objectstore.memory]\nname = "from-toml"\n[memory]\nname = "not-ours"\n')
    monkeypatch.setenv("WALSTREAM_CONFIG", str(config))
    monkeypatch.delenv("WALSTREAM_OBJECTSTORE_MEMORY_NAME", raising=False)
    driver = get_driver("memory")
    settings = driver.load_settings({})
    assert isinstance(settings, MemorySettings)
    assert settings.name == "from-toml"
    monkeypatch.setenv("WALSTREAM_OBJECTSTORE_MEMORY_NAME", "from-env")
    settings = driver.load_settings({})
    assert isinstance(settings, MemorySettings)
    assert settings.name == "from-env"


def test_empty_name_is_refused() -> None:
    with pytest.raises(SettingsError, match="name"):
        get_driver("memory").load_settings({"name": ""})


def test_memory_urls() -> None:
    driver = get_driver("memory")
    assert driver.settings_from_url("memory://ns") == {"name": "ns"}
    assert driver.settings_from_url("memory://ns/sub") == {"name": "ns/sub"}
    assert driver.settings_from_url("memory://") == {}
    with pytest.raises(SettingsError):
        driver.settings_from_url("memory://ns?x=1")


def test_backend_failure_becomes_object_store_error(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unexpected obstore errors surface as ObjectStoreError with the cause chained."""
    cause = PermissionDeniedError("access denied\n\nDebug source:\nPermissionDenied { ... }")

    async def failing_put(*args: Any, **kwargs: Any) -> Any:
        raise cause

    monkeypatch.setattr(_obstore.obstore, "put_async", failing_put)

    async def main() -> None:
        async with await open_store("memory", {"name": name}) as store:
            with pytest.raises(ObjectStoreError) as info:
                await store.put("k", b"v")
            assert info.value.__cause__ is cause
            assert "access denied" in str(info.value)
            assert "Debug source" not in str(info.value)
            assert "'k'" in str(info.value)

    run(main())
