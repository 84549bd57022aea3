"""The metastore: a small etcd-like key-value store for coordination state.

:mod:`walstream.metastore.spi` defines the contract; :class:`SQLiteMetastore` is
the embedded implementation (an etcd one will follow the same SPI).
"""

from walstream.metastore.spi import (
    CompactedRevisionError,
    EventType,
    KeyValue,
    Metastore,
    MetastoreClosedError,
    Watch,
    WatchEvent,
)
from walstream.metastore.sqlite import SQLiteMetastore, SQLiteMetastoreSettings
from walstream.metastore.url import open_metastore, sqlite_url

__all__ = [
    "CompactedRevisionError",
    "EventType",
    "KeyValue",
    "Metastore",
    "MetastoreClosedError",
    "SQLiteMetastore",
    "SQLiteMetastoreSettings",
    "Watch",
    "WatchEvent",
    "open_metastore",
    "sqlite_url",
]
