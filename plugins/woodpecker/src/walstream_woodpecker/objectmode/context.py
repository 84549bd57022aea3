"""What every part of one pchannel in object mode shares: store, metastore, names, limits."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from walstream.objectstore import ObjectStore

from walstream_woodpecker.hub import ChannelHub
from walstream_woodpecker.objectmode.layout import LogLayout
from walstream_woodpecker.objectmode.meta import LogMeta
from walstream_woodpecker.objectmode.storeio import retrying
from walstream_woodpecker.settings import WoodpeckerSettings

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LogContext:
    """One pchannel's store, metastore records, key layout, hub and settings."""

    pchannel: str
    store: ObjectStore
    meta: LogMeta
    layout: LogLayout
    hub: ChannelHub
    settings: WoodpeckerSettings

    def deadline(self) -> float:
        """The retry deadline of an object operation starting now."""
        return time.monotonic() + self.settings.object_upload_retry_deadline_s

    @property
    def request_timeout(self) -> float:
        """Timeout of one object-store request."""
        return self.settings.object_request_timeout_s

    async def io(self, fn: Callable[[], Awaitable[T]]) -> T:
        """``fn()`` with transient failures retried up to the upload retry deadline."""
        return await retrying(fn, self.deadline(), self.request_timeout)
