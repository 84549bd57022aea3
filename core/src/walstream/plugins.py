"""Finding plugins: stevedore over entry points, with failures isolated.

Every group is discovered the same way. A plugin that fails to import, that
declares a plugin-API range excluding this core, or whose name another
distribution also registered is reported with its distribution, entry point and
cause; it never stops the other plugins from loading.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from stevedore import ExtensionManager

from walstream.errors import (
    DuplicatePluginError,
    PluginIncompatibleError,
    PluginLoadError,
    PluginNotFoundError,
)

PLUGIN_API_VERSION = "1.0"
"""The version of the plugin API this core implements; plugins declare a range over it."""

WAL_GROUP = "walstream.wal"
OBJECTSTORE_GROUP = "walstream.objectstore"
HOOKS_GROUP = "walstream.hooks"
SEGMENT_POLICY_GROUP = "walstream.segment_policy"

_INSTALL_HINTS = {
    (WAL_GROUP, "woodpecker"): "pip install walstream-woodpecker",
    (WAL_GROUP, "kafka"): "pip install walstream-kafka",
    (WAL_GROUP, "pulsar"): "pip install walstream-pulsar",
    (OBJECTSTORE_GROUP, "local"): "pip install walstream-objectstore",
    (OBJECTSTORE_GROUP, "memory"): "pip install walstream-objectstore",
    (OBJECTSTORE_GROUP, "s3"): "pip install walstream-objectstore",
    (OBJECTSTORE_GROUP, "gcs"): "pip install walstream-objectstore",
    (OBJECTSTORE_GROUP, "azure"): "pip install walstream-objectstore",
}

log = logging.getLogger(__name__)
_warned: set[tuple[str, str, str]] = set()

Status = Literal["ok", "error", "incompatible", "duplicate"]


@dataclass
class PluginInfo:
    """One entry point of a group and what became of loading it."""

    group: str
    name: str
    value: str
    distribution: str
    version: str
    status: Status = "ok"
    error: str | None = None
    obj: Any = field(default=None, repr=False)

    @property
    def where(self) -> str:
        """Human-readable origin: distribution, version and entry point."""
        return f"distribution {self.distribution} {self.version}, entry point {self.group}:{self.name} = {self.value}"


def _distributions(group: str) -> dict[tuple[str, str], tuple[str, str]]:
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for ep in md.entry_points(group=group):
        dist = getattr(ep, "dist", None)
        name = dist.metadata["Name"] if dist is not None else "?"
        version = dist.version if dist is not None else "?"
        found[(ep.name, ep.value)] = (name, version)
    return found


def _api_error(obj: Any) -> str | None:
    spec = getattr(obj, "plugin_api", None)
    if spec is None:
        return None
    try:
        ok = SpecifierSet(str(spec)).contains(PLUGIN_API_VERSION, prereleases=True)
    except InvalidSpecifier:
        return f"declares plugin_api {spec!r}, which is not a PEP 440 specifier"
    if ok:
        return None
    return (
        f"supports plugin API {spec}, but this walstream implements {PLUGIN_API_VERSION}; "
        f"install a release of the plugin made for this walstream"
    )


_discovered: dict[str, list[PluginInfo]] = {}
_discover_lock = threading.Lock()


def refresh() -> None:
    """Forget what was discovered, so the next look-up scans the installed plugins again."""
    with _discover_lock:
        _discovered.clear()


def discover(group: str) -> list[PluginInfo]:
    """Every plugin of ``group`` and what became of loading it; problems are recorded,
    never raised. Scanned and imported once per process (``refresh()`` to rescan)."""
    with _discover_lock:
        found = _discovered.get(group)
        if found is None:
            found = _discovered[group] = _scan(group)
        return list(found)


def _scan(group: str) -> list[PluginInfo]:
    dists = _distributions(group)
    failures: dict[tuple[str, str], BaseException] = {}

    def on_failure(_mgr: Any, ep: Any, exc: BaseException) -> None:
        failures[(ep.name, ep.value)] = exc

    mgr: ExtensionManager[Any] = ExtensionManager(
        namespace=group, invoke_on_load=False, on_load_failure_callback=on_failure
    )
    infos: list[PluginInfo] = []
    for ext in mgr.extensions:
        key = (ext.name, ext.entry_point.value)
        dist, version = dists.get(key, ("?", "?"))
        info = PluginInfo(group, ext.name, ext.entry_point.value, dist, version, obj=ext.plugin)
        api_error = _api_error(ext.plugin)
        if api_error:
            info.status, info.error = "incompatible", api_error
        infos.append(info)
    for (name, value), exc in failures.items():
        dist, version = dists.get((name, value), ("?", "?"))
        infos.append(
            PluginInfo(group, name, value, dist, version, "error", f"{type(exc).__name__}: {exc}")
        )
    by_name: dict[str, list[PluginInfo]] = {}
    for info in infos:
        by_name.setdefault(info.name, []).append(info)
    for name, same in by_name.items():
        if len(same) > 1:
            origins = "; ".join(i.where for i in same)
            for info in same:
                info.status = "duplicate"
                info.error = (
                    f"plugin name {name!r} is registered more than once ({origins}); uninstall one"
                )
    for info in infos:
        if info.status == "incompatible":
            key3 = (group, info.name, info.distribution)
            if key3 not in _warned:
                _warned.add(key3)
                warnings.warn(
                    f"skipping plugin {info.name!r} ({info.where}): {info.error}", stacklevel=2
                )
        elif info.status == "error":
            log.warning("plugin %r failed to load (%s): %s", info.name, info.where, info.error)
    return sorted(infos, key=lambda i: (i.name, i.distribution))


def load(group: str, name: str) -> Any:
    """The object behind entry point ``name`` of ``group``, or one clear error."""
    infos = discover(group)
    matches = [i for i in infos if i.name == name]
    if not matches:
        available = sorted({i.name for i in infos if i.status == "ok"})
        hint = _INSTALL_HINTS.get((group, name))
        raise PluginNotFoundError(
            f"no plugin named {name!r} in entry-point group {group!r}; "
            f"installed: {', '.join(available) or 'none'}"
            + (f"; to add it: {hint}" if hint else "")
        )
    info = matches[0]
    if info.status == "duplicate":
        raise DuplicatePluginError(str(info.error))
    if info.status == "incompatible":
        raise PluginIncompatibleError(f"plugin {name!r} ({info.where}) {info.error}")
    if info.status == "error":
        raise PluginLoadError(f"plugin {name!r} could not be loaded ({info.where}): {info.error}")
    return info.obj
