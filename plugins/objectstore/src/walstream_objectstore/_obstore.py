"""The ``ObjectStore`` shared by every driver of this plugin, on top of obstore.

Each driver only builds the obstore store; key validation, error mapping and
the SPI's semantics (sorted path-prefix listing, missing-key delete, range
rules) live here. Every backend call goes through :meth:`ObstoreObjectStore._io`,
which remote drivers override to retry transient failures
(``walstream_objectstore._remote``).
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

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
    from obstore.store import AzureStore, GCSStore, LocalStore, MemoryStore, S3Store

    ObstoreStore = LocalStore | MemoryStore | S3Store | GCSStore | AzureStore

T = TypeVar("T")

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

    async def _io(
        self,
        op: str,
        key: str,
        call: Callable[[], Awaitable[T]],
        on_retry: Callable[[], None] | None = None,
    ) -> T:
        """Run one backend call of ``op`` on ``key``; obstore errors propagate unchanged.

        Local stores make one attempt. Remote drivers override this to retry
        transient failures, calling ``on_retry`` before each new attempt.
        """
        return await call()

    def _backend_failure(self, op: str, key: str, exc: Exception) -> ObjectStoreError | None:
        """A driver's own mapping of ``exc``, tried before the generic one (``None``: none).

        Remote drivers map refused credentials and missing buckets here.
        """
        return None

    def _describe(self, exc: BaseException) -> str:
        """``exc`` for an error message (remote drivers also mask secrets)."""
        return summary(exc)

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
        own = self._backend_failure(op, key, exc)
        if own is not None:
            return own
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
        return ObjectStoreError(f"{op} of {key!r} in {self!r} failed: {self._describe(exc)}")

    # --- the SPI ---------------------------------------------------------------

    async def put(self, key: str, data: bytes) -> ObjectMeta:
        key = self._key(key, "put")
        size = memoryview(data).nbytes
        try:
            result = await self._io("put", key, lambda: obstore.put_async(self._store, key, data))
        except OBSTORE_ERRORS as exc:
            raise await self._failure("put", key, exc) from exc
        return ObjectMeta(key=key, size=size, etag=result.get("e_tag"))

    async def put_if_absent(self, key: str, data: bytes) -> ObjectMeta:
        key = self._key(key, "put_if_absent")
        size = memoryview(data).nbytes
        try:
            result = await self._io(
                "put_if_absent",
                key,
                lambda: obstore.put_async(self._store, key, data, mode="create"),
            )
        except OBSTORE_ERRORS as exc:
            raise await self._failure("put_if_absent", key, exc) from exc
        return ObjectMeta(key=key, size=size, etag=result.get("e_tag"))

    async def get(self, key: str) -> bytes:
        key = self._key(key, "get")
        try:
            buf = await self._io("get", key, lambda: self._get_bytes(key))
        except OBSTORE_ERRORS as exc:
            raise await self._failure("get", key, exc) from exc
        return bytes(buf)

    async def _get_bytes(self, key: str) -> Any:
        result = await obstore.get_async(self._store, key)
        return await result.bytes_async()

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        key = self._key(key, "get_range")
        check_range(start, end)
        if start < end:
            try:
                return bytes(
                    await self._io(
                        "get_range",
                        key,
                        lambda: obstore.get_range_async(self._store, key, start=start, end=end),
                    )
                )
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
            raw = await self._io("head", key, lambda: obstore.head_async(self._store, key))
        except OBSTORE_ERRORS as exc:
            raise await self._failure("head", key, exc) from exc
        return _meta(raw)

    async def list(self, prefix: str = "") -> builtins.list[ObjectMeta]:
        trimmed = validate_prefix(prefix)
        if self._closed:
            raise ObjectStoreError(f"cannot list {prefix!r}: {self!r} is closed")
        try:
            raw = await self._io(
                "list", trimmed, lambda: obstore.list(self._store, trimmed or None).collect_async()
            )
        except OBSTORE_ERRORS as exc:
            if isinstance(exc, GenericError) and await self._path_clash(trimmed) is not None:
                return []  # the prefix runs through an object: nothing can be under it
            own = self._backend_failure("list", trimmed, exc)
            raise (
                own
                or ObjectStoreError(f"list of {prefix!r} in {self!r} failed: {self._describe(exc)}")
            ) from exc
        metas = [_meta(r) for r in raw]
        return sorted((m for m in metas if key_in_prefix(m.key, trimmed)), key=lambda m: m.key)

    async def delete(self, key: str) -> None:
        key = self._key(key, "delete")
        try:
            await self._io("delete", key, lambda: obstore.delete_async(self._store, key))
        except FileNotFoundError:
            return  # deleting a missing object is not an error (as in S3)
        except OBSTORE_ERRORS as exc:
            if isinstance(exc, GenericError) and await self._path_clash(key) is not None:
                return  # no object can be at key, so there is nothing to delete
            raise await self._failure("delete", key, exc) from exc

    async def close(self) -> None:
        self._closed = True
