"""The ``ObjectStore`` shared by every driver of this plugin, on top of obstore.

Each driver only builds the obstore store; key validation, error mapping and
the SPI's semantics (sorted path-prefix listing, missing-key delete, range
rules) live here.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import TYPE_CHECKING, Any

import obstore
from obstore.exceptions import AlreadyExistsError, BaseError, GenericError, PreconditionError
from walstream.errors import ObjectAlreadyExistsError, ObjectNotFoundError, ObjectStoreError
from walstream.objectstore.spi import (
    ObjectMeta,
    ObjectStore,
    ObjectStoreCapabilities,
    check_range,
    key_in_prefix,
    range_past_end,
    validate_key,
    validate_prefix,
)

if TYPE_CHECKING:
    from obstore.store import LocalStore, MemoryStore

    ObstoreStore = LocalStore | MemoryStore

# What obstore raises: its own hierarchy, FileNotFoundError for missing objects
# (and other OSErrors), ValueError for paths or ranges it cannot parse.
OBSTORE_ERRORS: tuple[type[Exception], ...] = (BaseError, OSError, ValueError)

_READS = frozenset({"get", "get_range", "head"})
_WRITES = frozenset({"put", "put_if_absent"})


def summary(exc: BaseException) -> str:
    """The first line of an obstore error (the rest is a Rust debug dump)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _meta(raw: Any) -> ObjectMeta:
    modified = raw.get("last_modified")
    return ObjectMeta(
        key=str(raw["path"]),
        size=int(raw["size"]),
        etag=raw.get("e_tag"),
        last_modified=modified if isinstance(modified, datetime) else None,
    )


class ObstoreObjectStore(ObjectStore):
    """An ``ObjectStore`` over one obstore store."""

    def __init__(
        self, store: ObstoreStore, *, driver: str, where: str, capabilities: ObjectStoreCapabilities
    ) -> None:
        self._store = store
        self._driver = driver
        self._where = where
        self._capabilities = capabilities
        self._closed = False

    def __repr__(self) -> str:
        return f"<{self._driver} object store {self._where}>"

    @property
    def capabilities(self) -> ObjectStoreCapabilities:
        return self._capabilities

    # --- hooks for drivers ------------------------------------------------------

    def _check_driver_key(self, key: str) -> None:
        """Refuse keys this backend cannot hold (beyond ``validate_key``)."""

    async def _path_clash(self, key: str) -> str | None:
        """Why ``key`` cannot be an object here because of the objects around it, if so.

        Filesystem-backed stores cannot hold an object and a prefix of the same
        name (``a`` and ``a/b``); object stores proper always return ``None``.
        """
        return None

    # --- helpers ---------------------------------------------------------------

    def _key(self, key: str, op: str) -> str:
        validate_key(key)
        self._check_driver_key(key)
        if self._closed:
            raise ObjectStoreError(f"cannot {op} {key!r}: {self!r} is closed")
        return key

    def _not_found(self, key: str) -> ObjectNotFoundError:
        return ObjectNotFoundError(f"object {key!r} not found in {self!r}")

    async def _failure(self, op: str, key: str, exc: Exception) -> ObjectStoreError:
        """Our error for an obstore failure of ``op`` on ``key`` (the caller chains ``exc``)."""
        if isinstance(exc, FileNotFoundError):
            return self._not_found(key)
        if isinstance(exc, AlreadyExistsError | PreconditionError):
            clash = await self._path_clash(key)
            if clash is not None:
                return ObjectStoreError(f"cannot {op} {key!r} in {self!r}: {clash}")
            return ObjectAlreadyExistsError(f"object {key!r} already exists in {self!r}")
        if isinstance(exc, GenericError):
            clash = await self._path_clash(key)
            if clash is not None and op in _READS:
                return self._not_found(key)
            if clash is not None and op in _WRITES:
                return ObjectStoreError(f"cannot {op} {key!r} in {self!r}: {clash}")
        return ObjectStoreError(f"{op} of {key!r} in {self!r} failed: {summary(exc)}")

    # --- the SPI ---------------------------------------------------------------

    async def put(self, key: str, data: bytes) -> ObjectMeta:
        key = self._key(key, "put")
        size = memoryview(data).nbytes
        try:
            result = await obstore.put_async(self._store, key, data)
        except OBSTORE_ERRORS as exc:
            raise await self._failure("put", key, exc) from exc
        return ObjectMeta(key=key, size=size, etag=result.get("e_tag"))

    async def put_if_absent(self, key: str, data: bytes) -> ObjectMeta:
        key = self._key(key, "put_if_absent")
        size = memoryview(data).nbytes
        try:
            result = await obstore.put_async(self._store, key, data, mode="create")
        except OBSTORE_ERRORS as exc:
            raise await self._failure("put_if_absent", key, exc) from exc
        return ObjectMeta(key=key, size=size, etag=result.get("e_tag"))

    async def get(self, key: str) -> bytes:
        key = self._key(key, "get")
        try:
            result = await obstore.get_async(self._store, key)
            buf = await result.bytes_async()
        except OBSTORE_ERRORS as exc:
            raise await self._failure("get", key, exc) from exc
        return bytes(buf)

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        key = self._key(key, "get_range")
        check_range(start, end)
        if start < end:
            try:
                return bytes(await obstore.get_range_async(self._store, key, start=start, end=end))
            except GenericError as exc:
                # obstore refuses ranges starting at or past the end; decide with the size.
                size = (await self.head(key)).size
                if start > size:
                    raise range_past_end(key, start, end, size) from None
                if start < size:
                    raise await self._failure("get_range", key, exc) from exc
            except OBSTORE_ERRORS as exc:
                raise await self._failure("get_range", key, exc) from exc
            return b""  # start == size: the empty tail
        size = (await self.head(key)).size
        if start > size:
            raise range_past_end(key, start, end, size)
        return b""

    async def head(self, key: str) -> ObjectMeta:
        key = self._key(key, "head")
        try:
            raw = await obstore.head_async(self._store, key)
        except OBSTORE_ERRORS as exc:
            raise await self._failure("head", key, exc) from exc
        return _meta(raw)

    async def list(self, prefix: str = "") -> builtins.list[ObjectMeta]:
        trimmed = validate_prefix(prefix)
        if self._closed:
            raise ObjectStoreError(f"cannot list {prefix!r}: {self!r} is closed")
        try:
            raw = await obstore.list(self._store, trimmed or None).collect_async()
        except OBSTORE_ERRORS as exc:
            if isinstance(exc, GenericError) and await self._path_clash(trimmed) is not None:
                return []  # the prefix runs through an object: nothing can be under it
            raise ObjectStoreError(
                f"list of {prefix!r} in {self!r} failed: {summary(exc)}"
            ) from exc
        metas = [_meta(r) for r in raw]
        return sorted((m for m in metas if key_in_prefix(m.key, trimmed)), key=lambda m: m.key)

    async def delete(self, key: str) -> None:
        key = self._key(key, "delete")
        try:
            await obstore.delete_async(self._store, key)
        except FileNotFoundError:
            return  # deleting a missing object is not an error (as in S3)
        except OBSTORE_ERRORS as exc:
            if isinstance(exc, GenericError) and await self._path_clash(key) is not None:
                return  # no object can be at key, so there is nothing to delete
            raise await self._failure("delete", key, exc) from exc

    async def close(self) -> None:
        self._closed = True
