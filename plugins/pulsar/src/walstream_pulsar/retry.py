"""What is worth retrying against Pulsar; the policy itself is ``walstream.retry``.

Anything final (authentication, authorization, bad names or configuration, fencing)
is raised at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from walstream import retry as _policy
from walstream.retry import MAX_ATTEMPTS, left

from walstream_pulsar.errors import PulsarUnavailableError, is_transient

T = TypeVar("T")

__all__ = ["MAX_ATTEMPTS", "call", "left", "retryable"]


def retryable(exc: BaseException) -> bool:
    """Transient: the cluster is unreachable, busy or moving the topic."""
    return isinstance(exc, PulsarUnavailableError) or is_transient(exc)


def call(fn: Callable[[], T], deadline: float) -> T:
    """Run blocking ``fn``, retrying transient Pulsar errors until ``deadline``."""
    return _policy.call(fn, deadline, retryable)
