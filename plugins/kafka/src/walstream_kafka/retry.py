"""What is worth retrying against Kafka; the policy itself is ``walstream.retry``.

Anything final (authentication, authorization, unknown topic, bad configuration,
fencing) is raised at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from walstream import retry as _policy
from walstream.retry import MAX_ATTEMPTS, left

from walstream_kafka.errors import KafkaUnavailableError, is_transient

T = TypeVar("T")

__all__ = ["MAX_ATTEMPTS", "acall", "call", "left", "retryable"]


def retryable(exc: BaseException) -> bool:
    """Transient: the cluster is unreachable, busy or electing; worth another try."""
    return isinstance(exc, KafkaUnavailableError) or is_transient(exc)


def call(fn: Callable[[], T], deadline: float) -> T:
    """Run blocking ``fn``, retrying transient Kafka errors until ``deadline``."""
    return _policy.call(fn, deadline, retryable)


async def acall(
    fn: Callable[[], Awaitable[T]], deadline: float, on_retry: Callable[[], None] | None = None
) -> T:
    """Await ``fn()``, retrying transient Kafka errors until ``deadline``."""
    return await _policy.acall(fn, deadline, retryable, on_retry)
