"""What a contract-suite fixture hands the suite: which backend, with which settings."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class WALBackendSpec:
    """A WAL backend by entry-point name plus JSON-able settings.

    The suite builds openers itself (``registry.build_opener(name, settings)``),
    also inside child processes for the crash tests, so settings must survive
    ``json.dumps``. Every call of the fixture must give a fresh, empty backend.
    """

    name: str
    settings: dict[str, Any] = field(default_factory=dict)


def run(coro: Coroutine[Any, Any, T], timeout: float = DEFAULT_TIMEOUT_S) -> T:
    """Run ``coro`` on a fresh event loop, failing after ``timeout`` seconds instead of hanging."""
    return asyncio.run(asyncio.wait_for(coro, timeout))
