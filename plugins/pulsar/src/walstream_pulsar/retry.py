"""Bounded, jittered retries of transient Pulsar failures (tenacity).

Only what ``errors.is_transient`` calls transient is retried; everything else (auth,
authorization, bad names or configuration, fencing) is raised at once. Retries stop at
a deadline (the caller's ``open_timeout_s``) and after ``MAX_ATTEMPTS``, whichever
comes first; then the last error is raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from walstream_pulsar.errors import PulsarUnavailableError, is_transient

T = TypeVar("T")

MAX_ATTEMPTS = 30
_WAIT = wait_random_exponential(multiplier=0.05, max=1.0)


def retryable(exc: BaseException) -> bool:
    """Transient: the cluster is unreachable, busy or moving the topic."""
    return isinstance(exc, PulsarUnavailableError) or is_transient(exc)


def left(deadline: float, cap: float | None = None) -> float:
    """Seconds until ``deadline`` (at least 10 ms), at most ``cap``."""
    remaining = max(0.01, deadline - time.monotonic())
    return remaining if cap is None else min(cap, remaining)


class _stop_at(stop_base):
    """Stop once ``deadline`` (``time.monotonic()``) has passed."""

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return time.monotonic() >= self._deadline


def call(fn: Callable[[], T], deadline: float) -> T:
    """Run blocking ``fn``, retrying transient errors until ``deadline``."""
    for attempt in Retrying(
        stop=stop_any(stop_after_attempt(MAX_ATTEMPTS), _stop_at(deadline)),
        wait=_WAIT,
        retry=retry_if_exception(retryable),
        reraise=True,
    ):
        with attempt:
            return fn()
    raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover
