"""Open a metastore from a URL, so a consumer's settings can name one in a single string.

``sqlite:///abs/path.sqlite3`` and ``sqlite:relative/path.sqlite3`` open the embedded
SQLite metastore on that file. Other schemes (``etcd://``) are refused with a clear
error until their implementation exists.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from walstream.errors import SettingsError
from walstream.metastore.spi import Metastore
from walstream.metastore.sqlite import SQLiteMetastore


def sqlite_url(path: str | Path) -> str:
    """The metastore URL of the SQLite file at ``path`` (made absolute)."""
    return "sqlite://" + Path(path).expanduser().absolute().as_posix()


def open_metastore(url: str) -> Metastore:
    """A metastore for ``url`` (not yet connected; use ``async with`` or ``open()``).

    ``SettingsError`` says what was wrong with the URL and what forms are accepted.
    """
    if not isinstance(url, str) or not url:
        raise SettingsError(
            f"metastore URL {url!r} is not a non-empty string; use sqlite:///path/to/meta.sqlite3"
        )
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme != "sqlite":
        raise SettingsError(
            f"metastore URL {url!r} has scheme {scheme or '(none)'!r}; only sqlite:///path "
            f"(the embedded SQLite metastore) is available in this version"
        )
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise SettingsError(
            f"metastore URL {url!r}: use sqlite:///absolute/path or sqlite:relative/path, "
            f"with no host, query or fragment"
        )
    path = unquote(parts.path)
    if not path or path.endswith("/"):
        raise SettingsError(f"metastore URL {url!r} names no database file")
    return SQLiteMetastore(path)
