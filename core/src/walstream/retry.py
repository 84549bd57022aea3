"""Bounded, jittered retries of transient failures against remote systems (tenacity).

A backend decides what is transient with its own predicate; everything else is
raised at once. Retries stop at a deadline (``time.monotonic()``) or after
``MAX_ATTEMPTS``, whichever comes first, and then the last error is raised.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    wait_random_exponential,
)
from tenacity.stop import stop_base

T = TypeVar("T")

MAX_ATTEMPTS = 30
_WAIT = wait_random_exponential(multiplier=0.05, max=1.0)

Transient = Callable[[BaseException], bool]


def left(deadline: float, cap: float | None = None) -> float:
    """Seconds until ``deadline`` (at least 10 ms), at most ``cap``."""
    remaining = max(0.01, deadline - time.monotonic())
    return remaining if cap is None else min(cap, remaining)


class _StopAt(stop_base):
    """Stop once ``deadline`` (``time.monotonic()``) has passed."""

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return time.monotonic() >= self._deadline


def call(fn: Callable[[], T], deadline: float, transient: Transient) -> T:
    """Run blocking ``fn``, retrying errors ``transient`` accepts until ``deadline``."""
    for attempt in Retrying(
        stop=stop_any(stop_after_attempt(MAX_ATTEMPTS), _StopAt(deadline)),
        wait=_WAIT,
        retry=retry_if_exception(transient),
        reraise=True,
    ):
        with attempt:
            return fn()
    raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover


async def acall(
    fn: Callable[[], Awaitable[T]],
    deadline: float,
    transient: Transient,
    on_retry: Callable[[], None] | None = None,
) -> T:
    """Await ``fn()``, retrying errors ``transient`` accepts until ``deadline``;
    ``on_retry`` runs before each new attempt.

    The first attempt is a plain ``await``: this runs around every backend append, and
    building tenacity's retry state for an attempt that almost always succeeds cost more
    than the append itself (and left reference cycles for the collector). Only after a
    transient failure does tenacity take over, with the same bounds as :func:`call`.
    """
    try:
        return await fn()
    except BaseException as exc:
        if not transient(exc) or time.monotonic() >= deadline:
            raise
    return await aretry(fn, deadline, transient, on_retry)


async def aretry(
    fn: Callable[[], Awaitable[T]],
    deadline: float,
    transient: Transient,
    on_retry: Callable[[], None] | None = None,
) -> T:
    """The rest of :func:`acall` after its first attempt failed transiently before ``deadline``.

    For callers that make the first attempt themselves (without building ``fn``) on a hot path.
    """
    if on_retry is not None:
        on_retry()

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None:
            on_retry()

    async for attempt in AsyncRetrying(
        stop=stop_any(stop_after_attempt(MAX_ATTEMPTS - 1), _StopAt(deadline)),
        wait=_WAIT,
        retry=retry_if_exception(transient),
        before_sleep=before_sleep,
        reraise=True,
    ):
        with attempt:
            return await fn()
    raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover
