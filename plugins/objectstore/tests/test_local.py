"""What the contract suite cannot see of the local driver: files, settings, layout clashes."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from walstream.errors import (
    InvalidObjectKeyError,
    ObjectAlreadyExistsError,
    ObjectNotFoundError,
    ObjectStoreError,
    SettingsError,
)
from walstream.objectstore import get_driver, open_store
from walstream.testing.objectstore_contract import INVALID_KEYS
from walstream_objectstore.local import LocalObjectStore, LocalObjectStoreDriver, LocalSettings

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 30))


@pytest.fixture
def no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No walstream.toml and no WALSTREAM_OBJECTSTORE_LOCAL_* variables unless a test sets them."""
    config = tmp_path / "walstream.toml"
    monkeypatch.setenv("WALSTREAM_CONFIG", str(config))
    monkeypatch.delenv("WALSTREAM_OBJECTSTORE_LOCAL_ROOT", raising=False)
    return config


def test_root_is_created_with_parents(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "er" / "objects"

    async def main() -> None:
        async with await open_store("local", {"root": str(root)}) as store:
            assert isinstance(store, LocalObjectStore)
            assert store.root == root.resolve()
            await store.put("seg/0001/data.bin", b"payload")

    run(main())
    assert (root / "seg" / "0001" / "data.bin").read_bytes() == b"payload"


def test_root_from_env(no_config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WALSTREAM_OBJECTSTORE_LOCAL_ROOT", str(tmp_path / "from-env"))
    settings = LocalObjectStoreDriver().load_settings({})
    assert isinstance(settings, LocalSettings)
    assert settings.root == tmp_path / "from-env"


def test_root_from_toml(no_config: Path, tmp_path: Path) -> None:
    no_config.write_text(f'[objectstore.local]\nroot = "{tmp_path / "from-toml"}"\n')
    settings = LocalObjectStoreDriver().load_settings({})
    assert isinstance(settings, LocalSettings)
    assert settings.root == tmp_path / "from-toml"
    override = LocalObjectStoreDriver().load_settings({"root": str(tmp_path / "explicit")})
    assert isinstance(override, LocalSettings)
    assert override.root == tmp_path / "explicit", "explicit settings win over TOML"


def test_bad_root_setting_is_a_readable_error(no_config: Path) -> None:
    with pytest.raises(SettingsError) as info:
        run(open_store("local", {"root": ["not", "a", "path"]}))
    assert "root" in str(info.value)
    assert "WALSTREAM_OBJECTSTORE_LOCAL_ROOT" in str(info.value)


def test_root_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ObjectStoreError, match="root"):
        run(open_store("local", {"root": str(tmp_path / "file")}))


def test_refused_keys_write_nothing_anywhere(tmp_path: Path) -> None:
    root = tmp_path / "sandbox" / "root"

    async def main() -> None:
        async with await open_store("local", {"root": str(root)}) as store:
            for key in INVALID_KEYS:
                with pytest.raises(InvalidObjectKeyError):
                    await store.put(key, b"escaped")
                with pytest.raises(InvalidObjectKeyError):
                    await store.put_if_absent(key, b"escaped")

    run(main())
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == [
        Path("sandbox"),
        Path("sandbox/root"),
    ]


def test_staging_names_are_refused(tmp_path: Path) -> None:
    async def main() -> None:
        async with await open_store("local", {"root": str(tmp_path)}) as store:
            for key in ("x#1", "a/b#123"):
                with pytest.raises(InvalidObjectKeyError, match="staged uploads"):
                    await store.put(key, b"x")
            await store.put("x#tag", b"fine")
            await store.put("x#1/inner", b"fine too")
            assert [m.key for m in await store.list()] == ["x#1/inner", "x#tag"]

    run(main())


def test_object_and_prefix_of_the_same_name(tmp_path: Path) -> None:
    """A filesystem cannot hold 'a' and 'a/b'; the driver says so instead of a raw OS error."""

    async def main() -> None:
        async with await open_store("local", {"root": str(tmp_path)}) as store:
            await store.put("a", b"file")
            with pytest.raises(ObjectStoreError, match="cannot hold an object") as info:
                await store.put("a/b", b"x")
            assert not isinstance(info.value, ObjectAlreadyExistsError)
            with pytest.raises(ObjectStoreError, match="cannot hold an object"):
                await store.put_if_absent("a/b", b"x")
            for op in ("get", "head"):
                with pytest.raises(ObjectNotFoundError, match="'a/b'"):
                    await getattr(store, op)("a/b")
            with pytest.raises(ObjectNotFoundError):
                await store.get_range("a/b", 0, 1)
            assert await store.list("a/b") == []
            await store.delete("a/b")

            await store.put("d/e", b"x")
            with pytest.raises(ObjectStoreError, match="cannot hold an object") as info:
                await store.put("d", b"x")
            with pytest.raises(ObjectStoreError, match="cannot hold an object") as info:
                await store.put_if_absent("d", b"x")
            assert not isinstance(info.value, ObjectAlreadyExistsError)
            with pytest.raises(ObjectNotFoundError):
                await store.get("d")
            await store.delete("d")
            assert await store.get("d/e") == b"x"

    run(main())


def test_delete_removes_empty_directories(tmp_path: Path) -> None:
    async def main() -> None:
        async with await open_store("local", {"root": str(tmp_path)}) as store:
            await store.put("x/y/z", b"1")
            await store.delete("x/y/z")

    run(main())
    assert list(tmp_path.iterdir()) == []


def test_file_urls() -> None:
    driver = get_driver("local")
    assert driver.settings_from_url("file:///tmp/a%20b") == {"root": Path("/tmp/a b")}
    assert driver.settings_from_url("file://localhost/srv/x") == {"root": Path("/srv/x")}
    for bad in ("file://", "file:///x?y=1", "file://host/x"):
        with pytest.raises(SettingsError):
            driver.settings_from_url(bad)
