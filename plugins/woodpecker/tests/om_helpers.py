"""Helpers of the zero-disk (object mode) tests: openers, and a store wrapper for faults."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from walstream.objectstore import ObjectMeta, ObjectStore, ObjectStoreCapabilities
from walstream_woodpecker import WoodpeckerBuilder
from walstream_woodpecker.objectmode.opener import ObjectOpener
from walstream_woodpecker.settings import WoodpeckerSettings

Hook = Callable[[str, str], Awaitable[None]]  # (operation, key)


def object_settings(root: Path, url: str | None = None, **overrides: Any) -> dict[str, Any]:
    """JSON-able settings of a fresh object-mode log (memory:// unless ``url``)."""
    return {
        "root": str(root),
        "storage": "object",
        "object_store_url": url or f"memory://wp-{uuid.uuid4().hex}",
        "object_flush_interval_ms": 5,
        "object_reader_poll_interval_ms": 20,
        **overrides,
    }


def make_opener(
    settings: dict[str, Any], wrap: Callable[[ObjectStore], ObjectStore] | None = None
) -> ObjectOpener:
    """An object-mode opener (optionally with a wrapped store)."""
    loaded = WoodpeckerBuilder().load_settings(settings)
    assert isinstance(loaded, WoodpeckerSettings)
    return ObjectOpener(loaded, wrap_store=wrap)


class FaultStore(ObjectStore):
    """Delegates to ``inner``; ``hook(op, key)`` runs first and may raise, block or sleep."""

    def __init__(
        self,
        inner: ObjectStore,
        hook: Hook | None = None,
        capabilities: ObjectStoreCapabilities | None = None,
    ) -> None:
        self.inner = inner
        self.hook = hook
        self._caps = capabilities
        self.calls: list[tuple[str, str]] = []

    @property
    def capabilities(self) -> ObjectStoreCapabilities:
        return self._caps or self.inner.capabilities

    async def _before(self, op: str, key: str) -> None:
        self.calls.append((op, key))
        if self.hook is not None:
            await self.hook(op, key)

    async def put(self, key: str, data: bytes) -> ObjectMeta:
        await self._before("put", key)
        return await self.inner.put(key, data)

    async def put_if_absent(self, key: str, data: bytes) -> ObjectMeta:
        await self._before("put_if_absent", key)
        return await self.inner.put_if_absent(key, data)

    async def get(self, key: str) -> bytes:
        await self._before("get", key)
        return await self.inner.get(key)

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        await self._before("get_range", key)
        return await self.inner.get_range(key, start, end)

    async def head(self, key: str) -> ObjectMeta:
        await self._before("head", key)
        return await self.inner.head(key)

    async def list(self, prefix: str = "") -> builtins.list[ObjectMeta]:
        await self._before("list", prefix)
        return await self.inner.list(prefix)

    async def delete(self, key: str) -> None:
        await self._before("delete", key)
        await self.inner.delete(key)

    async def close(self) -> None:
        await self.inner.close()
