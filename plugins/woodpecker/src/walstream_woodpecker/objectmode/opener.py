"""The object-mode opener: one object store and one metastore, the pchannels opened on them.

Both are opened at the first ``open()`` (they need the event loop): the object store
only through the core registry (``walstream.objectstore.open_store_url``), so this
plugin works without any particular object-store plugin installed, and a missing
driver is reported then. A store that cannot create objects conditionally is refused,
because fencing rests on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

from walstream.errors import WALClosedError, WalstreamError
from walstream.metastore import Metastore, open_metastore, sqlite_url
from walstream.objectstore import ObjectStore, driver_for_url, open_store_url
from walstream.objectstore.spi import require
from walstream.walimpls import AccessMode, Capabilities, Opener, PChannelInfo, WALImpl

from walstream_woodpecker.hub import hub_for_key
from walstream_woodpecker.objectmode.context import LogContext
from walstream_woodpecker.objectmode.fence import take_over
from walstream_woodpecker.objectmode.layout import LogLayout
from walstream_woodpecker.objectmode.meta import LogMeta
from walstream_woodpecker.objectmode.wal import ObjectWAL
from walstream_woodpecker.objectmode.writer import ObjectWriter
from walstream_woodpecker.settings import WoodpeckerSettings

log = logging.getLogger(__name__)

_SECRET_HINTS = ("secret", "password", "token", "credential", "key")


def scrub(text: str, secrets: dict[str, Any]) -> str:
    """``text`` with the values of secret-looking settings masked."""
    for name, value in secrets.items():
        if (
            isinstance(value, str)
            and len(value) >= 4
            and any(h in name.lower() for h in _SECRET_HINTS)
        ):
            text = text.replace(value, "**********")
    return text


class ObjectOpener(Opener):
    """Opens pchannels of the zero-disk woodpecker log; see the module doc."""

    def __init__(
        self,
        settings: WoodpeckerSettings,
        *,
        wrap_store: Callable[[ObjectStore], ObjectStore] | None = None,
    ) -> None:
        """``wrap_store`` (for fault-injection tests) wraps the store once it is open."""
        assert settings.object_store_url is not None  # the settings validator ensures it
        self._settings = settings
        self._wrap_store = wrap_store
        self._url = settings.object_store_url
        self._metastore_url = settings.metastore_url or sqlite_url(
            os.path.join(os.path.abspath(settings.root), "meta.sqlite3")
        )
        self._store: ObjectStore | None = None
        self._metastore: Metastore | None = None
        self._connecting = asyncio.Lock()
        self._wals: set[ObjectWAL] = set()
        self._closed = False
        persistent = False
        # The driver class says whether the store outlives the process; an uninstalled
        # driver is reported at open(), where the error belongs.
        with contextlib.suppress(WalstreamError):
            persistent = bool(getattr(driver_for_url(self._url).capabilities, "persistent", False))
        self._capabilities = Capabilities(
            max_message_bytes=settings.max_message_bytes,
            durable_across_processes=persistent,
            fencing=True,
            tail_read=True,
        )

    def __repr__(self) -> str:
        return f"<woodpecker object-mode opener {self._url!r}>"

    @property
    def capabilities(self) -> Capabilities:
        """Fenced and tail-readable; durable across processes iff the store is persistent."""
        return self._capabilities

    async def _connect(self) -> tuple[ObjectStore, Metastore]:
        async with self._connecting:
            if self._store is None or self._metastore is None:
                extra = dict(self._settings.object_store)
                try:
                    store = await open_store_url(self._url, extra)
                except WalstreamError as exc:
                    raise type(exc)(scrub(str(exc), extra)) from None
                if self._wrap_store is not None:
                    store = self._wrap_store(store)
                try:
                    require(
                        store.capabilities,
                        "conditional_create",
                        consumer="woodpecker zero-disk fencing",
                        provider=f"the object store at {self._url!r}",
                    )
                    if self._metastore_url.startswith("sqlite://"):
                        path = self._metastore_url.removeprefix("sqlite://")
                        await asyncio.to_thread(os.makedirs, os.path.dirname(path), exist_ok=True)
                    metastore = open_metastore(self._metastore_url)
                    await metastore.open()
                except BaseException:
                    await store.close()
                    raise
                self._store, self._metastore = store, metastore
            return self._store, self._metastore

    async def open(self, pchannel: PChannelInfo) -> WALImpl:
        """Open ``pchannel``: RW takes the log over (fences older writers, completes
        their segments, starts a new one); RO only reads."""
        if self._closed:
            raise WALClosedError("this woodpecker opener is closed")
        if not isinstance(pchannel, PChannelInfo):
            raise TypeError(f"open() takes a PChannelInfo, got {type(pchannel).__name__}")
        store, metastore = await self._connect()
        layout = LogLayout.of(pchannel.name, self._settings.metastore_prefix)
        ctx = LogContext(
            pchannel=pchannel.name,
            store=store,
            meta=LogMeta(metastore, layout, pchannel.name),
            layout=layout,
            hub=hub_for_key(f"object|{self._url}|{layout.hub_key}"),
            settings=self._settings,
        )
        writer: ObjectWriter | None = None
        if pchannel.access_mode is AccessMode.RW:
            owner, segment = await take_over(ctx, pchannel.term)
            writer = ObjectWriter(ctx, owner, segment)
        wal = ObjectWAL(pchannel, ctx, writer, on_close=self._wals.discard)
        if self._closed:
            await wal.close()
            raise WALClosedError("this woodpecker opener was closed during open()")
        self._wals.add(wal)
        return wal

    async def close(self) -> None:
        """Close every WAL opened here, then the store and metastore; idempotent."""
        self._closed = True
        for wal in list(self._wals):
            await wal.close()
        store, metastore = self._store, self._metastore
        self._store = self._metastore = None
        if store is not None:
            await store.close()
        if metastore is not None:
            await metastore.close()
