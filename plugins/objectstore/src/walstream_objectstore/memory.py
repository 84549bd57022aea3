"""The ``memory`` driver: objects in process memory (obstore ``MemoryStore``).

Stores opened with the same ``name`` share their objects for the life of the
process, so a test can close a store and reopen it. ``drop_namespace`` frees one.

Settings: env ``WALSTREAM_OBJECTSTORE_MEMORY_*``, TOML ``[objectstore.memory]``
(not ``[memory]``, which belongs to the core's in-memory WAL backend).
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from obstore.store import MemoryStore
from pydantic import Field
from pydantic_settings import BaseSettings
from walstream.errors import SettingsError
from walstream.objectstore.spi import ObjectStore, ObjectStoreCapabilities, ObjectStoreDriver
from walstream.settings import WalstreamBaseSettings, driver_settings_config

from walstream_objectstore._obstore import ObstoreObjectStore

_namespaces: dict[str, MemoryStore] = {}
_lock = threading.Lock()


def _namespace(name: str) -> MemoryStore:
    with _lock:
        store = _namespaces.get(name)
        if store is None:
            store = _namespaces[name] = MemoryStore()
        return store


def drop_namespace(name: str) -> bool:
    """Forget the objects of namespace ``name``; whether it existed.

    Stores already open on it keep working on the old data; later opens start empty.
    """
    with _lock:
        return _namespaces.pop(name, None) is not None


def namespaces() -> list[str]:
    """The namespaces that currently hold a store, sorted."""
    with _lock:
        return sorted(_namespaces)


class MemorySettings(WalstreamBaseSettings):
    """Settings of the ``memory`` driver.

    Env ``WALSTREAM_OBJECTSTORE_MEMORY_*``, TOML ``[objectstore.memory]``.
    """

    toml_table: ClassVar[str] = "objectstore.memory"
    model_config = driver_settings_config("objectstore.memory")

    name: str = Field(
        default="default",
        min_length=1,
        description="Namespace; stores opened with one name share objects.",
    )


class MemoryObjectStore(ObstoreObjectStore):
    """Objects in process memory, shared by every store of the same namespace."""

    def __init__(self, name: str, capabilities: ObjectStoreCapabilities) -> None:
        super().__init__(
            _namespace(name), driver="memory", where=f"name={name!r}", capabilities=capabilities
        )
        self._name = name

    @property
    def name(self) -> str:
        """The namespace."""
        return self._name


class MemoryObjectStoreDriver(ObjectStoreDriver):
    """Entry point ``walstream.objectstore: memory``; URLs ``memory://<name>``."""

    name: ClassVar[str] = "memory"
    plugin_api: ClassVar[str] = ">=1.0,<2"
    settings_class: ClassVar[type[BaseSettings]] = MemorySettings
    capabilities: ClassVar[ObjectStoreCapabilities] = ObjectStoreCapabilities(
        conditional_create=True, range_reads=True, persistent=False
    )
    url_schemes: ClassVar[tuple[str, ...]] = ("memory",)

    def settings_from_url(self, url: str) -> dict[str, Any]:
        parts = urlsplit(url)
        if parts.scheme.lower() != "memory":
            raise SettingsError(f"the memory driver opens memory:// URLs, not {url!r}")
        if parts.query or parts.fragment:
            raise SettingsError(f"memory URL {url!r} must not have a query or fragment")
        name = unquote(parts.netloc + parts.path).strip("/")
        return {"name": name} if name else {}

    async def open(self, settings: BaseSettings | None = None) -> ObjectStore:
        if settings is None:
            settings = self.load_settings()
        if not isinstance(settings, MemorySettings):
            raise TypeError(f"memory driver needs MemorySettings, got {type(settings).__name__}")
        return MemoryObjectStore(settings.name, self.capabilities)
