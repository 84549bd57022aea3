"""The object-store SPI every object-store plugin implements.

An ``ObjectStoreDriver`` is what the ``walstream.objectstore`` entry point names;
it validates its settings and opens an ``ObjectStore``. All I/O is async.

Keys are relative, ``/``-separated paths such as ``segments/0001/data.parquet``.
Every driver validates keys with :func:`validate_key` (and prefixes with
:func:`validate_prefix`) before any I/O, so a key can never escape the store's
root, whatever the backend.

Semantics every driver keeps (the contract suite in
``walstream.testing.objectstore_contract`` checks them):

- ``put`` overwrites atomically: readers see the old or the new bytes, never a mix.
- ``put_if_absent`` is atomic: of several racing writers exactly one wins, the
  others get ``ObjectAlreadyExistsError`` (needs ``conditional_create``).
- ``get``, ``get_range`` and ``head`` of a missing key raise
  ``ObjectNotFoundError`` whose message names the key.
- ``get_range(key, start, end)`` returns ``data[start:end]`` (``end`` exclusive,
  clamped to the object's size) and needs ``0 <= start <= end`` and
  ``start <= size``; otherwise ``InvalidRangeError``.
- ``list(prefix)`` returns the objects *under* ``prefix`` taken as a path:
  ``list("a")`` and ``list("a/")`` both return ``a/x`` and ``a/b/y`` but never
  ``ab/x``, nor an object named exactly ``a``. The result is sorted by key.
- ``delete`` of a missing key is not an error (as in S3).
- After ``close()`` every operation raises ``ObjectStoreError``; ``close`` is idempotent.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar

from pydantic_settings import BaseSettings

from walstream._closing import AsyncClosing
from walstream.errors import (
    CapabilityError,
    InvalidObjectKeyError,
    ObjectStoreError,
    PluginError,
)
from walstream.settings import load_driver_settings

MAX_KEY_BYTES = 1024
"""The longest key, in UTF-8 bytes (the S3 limit, so keys stay portable between drivers)."""


class InvalidRangeError(ObjectStoreError, ValueError):
    """A byte range is negative, reversed or starts past the end of the object."""


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """What a store knows about one object.

    ``etag`` and ``last_modified`` are ``None`` when the backend does not report
    them (``put`` may not know the modification time, for example).
    """

    key: str
    size: int
    etag: str | None = None
    last_modified: datetime | None = None


@dataclass(frozen=True, slots=True)
class ObjectStoreCapabilities:
    """What a driver can promise; consumers check with :func:`require`.

    - ``conditional_create``: ``put_if_absent`` is atomic (exactly one of racing
      writers wins). Without it ``put_if_absent`` raises ``CapabilityError``.
    - ``range_reads``: ``get_range`` reads only the requested bytes from the backend.
    - ``persistent``: stored objects outlive this process (other processes, and this
      one after a restart, see them); ``False`` for an in-process store.
    """

    conditional_create: bool = False
    range_reads: bool = False
    persistent: bool = False


def require(
    capabilities: ObjectStoreCapabilities,
    *names: str,
    consumer: str,
    provider: str = "the configured object store",
) -> None:
    """Raise ``CapabilityError`` unless every capability in ``names`` is declared.

    ``consumer`` names what needs them (it appears in the message), e.g.
    ``require(store.capabilities, "conditional_create", consumer="woodpecker fencing")``.
    """
    known = {f.name for f in fields(ObjectStoreCapabilities)}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f"unknown object-store capabilit{'y' if len(unknown) == 1 else 'ies'} "
            f"{', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}"
        )
    missing = [n for n in names if not getattr(capabilities, n)]
    if missing:
        plural = "y" if len(missing) == 1 else "ies"
        raise CapabilityError(
            f"{consumer} needs object-store capabilit{plural} {', '.join(missing)}, "
            f"which {provider} does not declare; configure an object-store driver that supports "
            f"{'it' if len(missing) == 1 else 'them'}"
        )


def _refuse(key: object, why: str) -> InvalidObjectKeyError:
    return InvalidObjectKeyError(f"invalid object key {key!r}: {why}")


def _check_path(key: str, what: str) -> None:
    if "\\" in key:
        raise _refuse(key, f"{what} must use '/' as separator, backslashes are not allowed")
    bad = next((c for c in key if ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        name = "NUL" if bad == "\x00" else f"control character {bad!r}"
        raise _refuse(key, f"{what} must not contain {name}")
    if key.startswith("/"):
        raise _refuse(key, f"{what} must be relative (no leading '/')")
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise _refuse(key, f"{what} is not valid Unicode (lone surrogate)") from None
    if len(encoded) > MAX_KEY_BYTES:
        raise _refuse(key, f"{what} is longer than {MAX_KEY_BYTES} UTF-8 bytes")
    for segment in key.split("/"):
        if segment == "":
            raise _refuse(key, f"{what} has an empty path segment ('//' or a trailing '/')")
        if segment in (".", ".."):
            raise _refuse(
                key, f"{what} has a {segment!r} segment, which could escape the store's root"
            )


def validate_key(key: object) -> str:
    """Return ``key`` if it is a valid object key, else raise ``InvalidObjectKeyError``.

    A key is a non-empty ``str`` of ``/``-separated segments: no leading ``/``,
    no empty, ``.`` or ``..`` segment, no backslash, NUL or other control
    character, at most ``MAX_KEY_BYTES`` UTF-8 bytes. Every driver calls this
    before touching its backend.
    """
    if not isinstance(key, str):
        raise _refuse(key, f"keys are str, not {type(key).__name__}")
    if key == "":
        raise _refuse(key, "key is empty")
    _check_path(key, "key")
    return key


def validate_prefix(prefix: object) -> str:
    """Validate a ``list`` prefix and return it without its trailing ``/``.

    ``""`` (everything) is allowed, and one trailing ``/`` is; otherwise the
    rules of :func:`validate_key` apply.
    """
    if not isinstance(prefix, str):
        raise _refuse(prefix, f"prefixes are str, not {type(prefix).__name__}")
    if prefix == "":
        return ""
    trimmed = prefix[:-1] if prefix.endswith("/") else prefix
    if trimmed == "":
        raise _refuse(prefix, "prefix must be relative (use '' to list everything)")
    _check_path(trimmed, "prefix")
    return trimmed


def key_in_prefix(key: str, prefix: str) -> bool:
    """Whether ``key`` lies under ``prefix`` as returned by :func:`validate_prefix`."""
    return prefix == "" or key.startswith(prefix + "/")


def check_range(start: int, end: int) -> None:
    """Refuse negative or reversed ranges before any I/O."""
    if (
        isinstance(start, bool)
        or isinstance(end, bool)
        or not (isinstance(start, int) and isinstance(end, int))
    ):
        raise InvalidRangeError(f"range bounds must be int, got start={start!r}, end={end!r}")
    if start < 0 or end < 0:
        raise InvalidRangeError(f"invalid range [{start}, {end}): bounds must not be negative")
    if end < start:
        raise InvalidRangeError(f"invalid range [{start}, {end}): end is before start")


def range_past_end(key: str, start: int, end: int, size: int) -> InvalidRangeError:
    """The error for a range that starts beyond the end of an object of ``size`` bytes."""
    return InvalidRangeError(
        f"invalid range [{start}, {end}) for object {key!r}: it starts past the end "
        f"of the object ({size} bytes)"
    )


def slice_range(key: str, data: bytes, start: int, end: int) -> bytes:
    """``data[start:end]`` with the ``get_range`` rules (for drivers without native ranges)."""
    check_range(start, end)
    if start > len(data):
        raise range_past_end(key, start, end, len(data))
    return bytes(data[start:end])


class ObjectStore(AsyncClosing, ABC):
    """An open object store: flat keys to immutable byte strings.

    Use as an async context manager, or call ``close()``.
    """

    @property
    @abstractmethod
    def capabilities(self) -> ObjectStoreCapabilities:
        """What this store promises (the same as its driver's)."""

    @abstractmethod
    async def put(self, key: str, data: bytes) -> ObjectMeta:
        """Store ``data`` at ``key``, replacing any object there, atomically."""

    async def put_if_absent(self, key: str, data: bytes) -> ObjectMeta:
        """Store ``data`` at ``key`` only if no object is there; atomic.

        Raises ``ObjectAlreadyExistsError`` when the key exists: of racing
        writers exactly one wins. Drivers without ``conditional_create`` keep
        this default, which raises ``CapabilityError``.
        """
        validate_key(key)
        raise CapabilityError(
            f"{type(self).__name__} does not support put_if_absent "
            f"(capability conditional_create is not declared)"
        )

    @abstractmethod
    async def get(self, key: str) -> bytes:
        """The whole object; ``ObjectNotFoundError`` (naming the key) when missing."""

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of the object, ``end`` clamped to its size.

        ``InvalidRangeError`` unless ``0 <= start <= end`` and ``start <= size``.
        This default reads the whole object; drivers with ``range_reads``
        override it.
        """
        validate_key(key)
        check_range(start, end)
        return slice_range(key, await self.get(key), start, end)

    @abstractmethod
    async def head(self, key: str) -> ObjectMeta:
        """The object's metadata; ``ObjectNotFoundError`` when missing."""

    @abstractmethod
    async def list(self, prefix: str = "") -> builtins.list[ObjectMeta]:
        """Every object under ``prefix`` (as a path, see the module doc), sorted by key."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""

    @abstractmethod
    async def close(self) -> None:
        """Release the store's resources; idempotent. Stored data is kept."""


class ObjectStoreDriver(ABC):
    """Entry point of an object-store plugin, in the ``walstream.objectstore`` group.

    ``plugin_api`` is a PEP 440 specifier the core's ``PLUGIN_API_VERSION`` must
    satisfy, otherwise the plugin is skipped with a warning. ``url_schemes``
    lists the URL schemes ``open_store_url`` routes to this driver.
    """

    name: ClassVar[str]
    plugin_api: ClassVar[str] = ">=1.0,<2"
    settings_class: ClassVar[type[BaseSettings]]
    capabilities: ClassVar[ObjectStoreCapabilities]
    url_schemes: ClassVar[tuple[str, ...]] = ()

    def load_settings(self, overrides: dict[str, Any] | None = None) -> BaseSettings:
        """Validate this driver's settings from env, ``walstream.toml`` and ``overrides``."""
        return load_driver_settings(self.settings_class, overrides or {})

    def settings_from_url(self, url: str) -> dict[str, Any]:
        """Settings overrides for ``url`` (a URL of one of ``url_schemes``)."""
        raise PluginError(
            f"object-store driver {self.name!r} cannot be configured from a URL ({url!r})"
        )

    @abstractmethod
    async def open(self, settings: BaseSettings | None = None) -> ObjectStore:
        """Open a store; ``None`` means settings from env and ``walstream.toml``."""
