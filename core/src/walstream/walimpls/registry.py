"""WAL backends by entry-point name (group ``walstream.wal``)."""

from __future__ import annotations

from typing import Any

from walstream import plugins
from walstream.errors import PluginLoadError
from walstream.message import MessageID
from walstream.walimpls.spi import Builder, Opener


def get_builder(name: str) -> Builder:
    """An instance of the builder registered as ``name``."""
    cls = plugins.load(plugins.WAL_GROUP, name)
    if not (isinstance(cls, type) and issubclass(cls, Builder)):
        raise PluginLoadError(
            f"entry point {plugins.WAL_GROUP}:{name} gives {cls!r}, which is not a walstream Builder subclass"
        )
    if cls.name != name:
        raise PluginLoadError(
            f"entry point {plugins.WAL_GROUP}:{name} gives a builder named {cls.name!r}; the names must match"
        )
    return cls()


def build_opener(name: str, settings: dict[str, Any] | None = None) -> Opener:
    """Load backend ``name``, validate its settings (``settings`` win over env and TOML), build an opener."""
    builder = get_builder(name)
    return builder.build(builder.load_settings(settings or {}))


def unmarshal_message_id(wal_name: str, data: bytes) -> MessageID:
    """Decode a marshalled id of backend ``wal_name``."""
    return get_builder(wal_name).message_id_class.unmarshal(data)
