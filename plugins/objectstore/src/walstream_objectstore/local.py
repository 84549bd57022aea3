"""The ``local`` driver: objects as files under a root directory (obstore ``LocalStore``).

Settings: env ``WALSTREAM_OBJECTSTORE_LOCAL_*``, TOML ``[objectstore.local]``.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from obstore.store import LocalStore
from pydantic import Field
from pydantic_settings import BaseSettings
from walstream.errors import InvalidObjectKeyError, ObjectStoreError, SettingsError
from walstream.objectstore.spi import ObjectStore, ObjectStoreCapabilities, ObjectStoreDriver
from walstream.settings import WalstreamBaseSettings, driver_settings_config

from walstream_objectstore._obstore import ObstoreObjectStore

# object_store's LocalFileSystem stages uploads as ``<name>#<n>`` and hides such names.
_STAGING_NAME = re.compile(r"#\d+$")


class LocalSettings(WalstreamBaseSettings):
    """Settings of the ``local`` driver (env ``WALSTREAM_OBJECTSTORE_LOCAL_*``, TOML ``[objectstore.local]``)."""

    toml_table: ClassVar[str] = "objectstore.local"
    model_config = driver_settings_config("objectstore.local")

    root: Path = Field(
        default=Path("walstream-data") / "objects",
        description="Directory holding the objects; created (with parents) if missing.",
    )


def _clash(root: Path, key: str) -> str | None:
    """Whether the filesystem layout keeps ``key`` from being an object (sync, run in a thread)."""
    parts = key.split("/")
    for i in range(1, len(parts)):
        ancestor = "/".join(parts[:i])
        if (root / ancestor).is_file():
            return (
                f"{ancestor!r} is an object, and the local driver cannot hold an object "
                f"and keys under it ({ancestor + '/'!r}) at the same time"
            )
    if (root / key).is_dir():
        return (
            f"keys exist under {key + '/'!r}, and the local driver cannot hold an object "
            f"and keys under it at the same time"
        )
    return None


class LocalObjectStore(ObstoreObjectStore):
    """Objects as files under ``root``; writes are atomic (staged file, then rename or link)."""

    def __init__(self, root: Path, capabilities: ObjectStoreCapabilities) -> None:
        super().__init__(
            LocalStore(root, automatic_cleanup=True),
            driver="local",
            where=f"root={str(root)!r}",
            capabilities=capabilities,
        )
        self._root = root

    @property
    def root(self) -> Path:
        """The directory holding the objects."""
        return self._root

    def _check_driver_key(self, key: str) -> None:
        if _STAGING_NAME.search(key.rsplit("/", 1)[-1]):
            raise InvalidObjectKeyError(
                f"invalid object key {key!r} for the local driver: names ending in '#<digits>' "
                f"are reserved for its staged uploads"
            )

    async def _path_clash(self, key: str) -> str | None:
        if not key:
            return None
        return await asyncio.to_thread(_clash, self._root, key)


def _prepare_root(root: Path) -> Path:
    root = root.expanduser().resolve()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ObjectStoreError(
            f"local object store: cannot create root {str(root)!r}: {exc}"
        ) from exc
    if not root.is_dir():
        raise ObjectStoreError(f"local object store: root {str(root)!r} is not a directory")
    return root


class LocalObjectStoreDriver(ObjectStoreDriver):
    """Entry point ``walstream.objectstore: local``; URLs ``file:///absolute/path``."""

    name: ClassVar[str] = "local"
    plugin_api: ClassVar[str] = ">=1.0,<2"
    settings_class: ClassVar[type[BaseSettings]] = LocalSettings
    capabilities: ClassVar[ObjectStoreCapabilities] = ObjectStoreCapabilities(
        conditional_create=True, range_reads=True, persistent=True
    )
    url_schemes: ClassVar[tuple[str, ...]] = ("file",)

    def settings_from_url(self, url: str) -> dict[str, Any]:
        parts = urlsplit(url)
        if parts.scheme.lower() != "file":
            raise SettingsError(f"the local driver opens file:// URLs, not {url!r}")
        if parts.netloc not in ("", "localhost"):
            raise SettingsError(
                f"file URL {url!r} names host {parts.netloc!r}; use file:///absolute/path"
            )
        if parts.query or parts.fragment:
            raise SettingsError(f"file URL {url!r} must not have a query or fragment")
        path = url2pathname(unquote(parts.path))
        if not path:
            raise SettingsError(f"file URL {url!r} has no path; use file:///absolute/path")
        return {"root": Path(path)}

    async def open(self, settings: BaseSettings | None = None) -> ObjectStore:
        if settings is None:
            settings = self.load_settings()
        if not isinstance(settings, LocalSettings):
            raise TypeError(f"local driver needs LocalSettings, got {type(settings).__name__}")
        root = await asyncio.to_thread(_prepare_root, settings.root)
        return LocalObjectStore(root, self.capabilities)
