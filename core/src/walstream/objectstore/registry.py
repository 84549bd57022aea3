"""Object-store drivers by entry-point name (group ``walstream.objectstore``) or URL scheme."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from walstream import plugins
from walstream.errors import (
    DuplicatePluginError,
    PluginLoadError,
    PluginNotFoundError,
    SettingsError,
)
from walstream.objectstore.spi import ObjectStore, ObjectStoreDriver

_SCHEME_HINTS = {
    "file": "local",
    "memory": "memory",
    "s3": "s3",
    "gs": "gcs",
    "az": "azure",
    "abfs": "azure",
}
"""Well-known URL schemes and the driver expected to claim them (for error messages only)."""


def _check_driver(name: str, cls: Any) -> type[ObjectStoreDriver]:
    if not (isinstance(cls, type) and issubclass(cls, ObjectStoreDriver)):
        raise PluginLoadError(
            f"entry point {plugins.OBJECTSTORE_GROUP}:{name} gives {cls!r}, "
            f"which is not a walstream ObjectStoreDriver subclass"
        )
    if getattr(cls, "name", None) != name:
        raise PluginLoadError(
            f"entry point {plugins.OBJECTSTORE_GROUP}:{name} gives a driver named "
            f"{getattr(cls, 'name', None)!r}; the names must match"
        )
    return cls


def get_driver(name: str) -> ObjectStoreDriver:
    """An instance of the driver registered as ``name``.

    ``PluginNotFoundError`` (naming the installed drivers) when there is none.
    """
    return _check_driver(name, plugins.load(plugins.OBJECTSTORE_GROUP, name))()


async def open_store(name: str, settings: dict[str, Any] | None = None) -> ObjectStore:
    """Load driver ``name``, validate its settings and open a store.

    ``settings`` win over env and ``walstream.toml``.
    """
    driver = get_driver(name)
    return await driver.open(driver.load_settings(settings or {}))


def driver_for_url(url: str) -> ObjectStoreDriver:
    """The installed driver whose ``url_schemes`` include the scheme of ``url``."""
    scheme = urlsplit(url).scheme.lower()
    if not scheme:
        raise SettingsError(
            f"object-store URL {url!r} has no scheme (e.g. file:///path or memory://name)"
        )
    claims: list[tuple[str, type[ObjectStoreDriver]]] = []
    schemes: set[str] = set()
    for info in plugins.discover(plugins.OBJECTSTORE_GROUP):
        if info.status != "ok":
            continue
        obj = info.obj
        if isinstance(obj, type) and issubclass(obj, ObjectStoreDriver):
            schemes.update(obj.url_schemes)
            if scheme in obj.url_schemes:
                claims.append((info.name, obj))
    if not claims:
        hint = _SCHEME_HINTS.get(scheme)
        raise PluginNotFoundError(
            f"no installed object-store driver handles URL scheme {scheme!r} ({url!r}); "
            f"schemes handled: {', '.join(sorted(schemes)) or 'none'}"
            + (
                f"; the {hint!r} driver handles it (pip install walstream-objectstore)"
                if hint
                else ""
            )
        )
    if len(claims) > 1:
        raise DuplicatePluginError(
            f"URL scheme {scheme!r} is claimed by several object-store drivers: "
            f"{', '.join(sorted(n for n, _ in claims))}; "
            f"uninstall one or open the store by driver name with open_store()"
        )
    name, cls = claims[0]
    return _check_driver(name, cls)()


async def open_store_url(url: str, settings: dict[str, Any] | None = None) -> ObjectStore:
    """Open a store from a URL: ``file:///abs/path`` (local), ``memory://name`` (memory), ...

    The driver is chosen by scheme; ``settings`` add to (and override) what the URL says.
    """
    driver = driver_for_url(url)
    overrides = {**driver.settings_from_url(url), **(settings or {})}
    return await driver.open(driver.load_settings(overrides))
