"""Object-store calls with bounded retries of transient failures (``walstream.retry``).

Transient: a timeout, a connection-level ``OSError``, or an ``ObjectStoreError`` that is
not one of the definite answers (not found, already exists, invalid key or range,
missing capability). Everything else is raised at once. Each attempt has its own
timeout, so a hung connection to a dead server counts as one failed attempt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from walstream import retry
from walstream.errors import (
    CapabilityError,
    InvalidObjectKeyError,
    ObjectAlreadyExistsError,
    ObjectNotFoundError,
    ObjectStoreError,
)
from walstream.objectstore import InvalidRangeError

T = TypeVar("T")

_DEFINITE = (
    ObjectNotFoundError,
    ObjectAlreadyExistsError,
    InvalidObjectKeyError,
    InvalidRangeError,
    CapabilityError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether retrying ``exc`` may help."""
    if isinstance(exc, _DEFINITE):
        return False
    return isinstance(exc, TimeoutError | ConnectionError | ObjectStoreError) or (
        isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError)
    )


async def retrying(
    fn: Callable[[], Awaitable[T]],
    deadline: float,
    request_timeout: float,
) -> T:
    """Await ``fn()``, retrying transient failures until ``deadline`` (``time.monotonic``).

    The core policy caps the attempts of one round; rounds repeat until the deadline,
    so a long deadline really waits out a long outage."""

    async def attempt() -> T:
        async with asyncio.timeout(retry.left(deadline, request_timeout)):
            return await fn()

    while True:
        try:
            return await retry.acall(attempt, deadline, is_transient)
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() >= deadline:
                raise
