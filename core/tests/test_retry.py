"""The shared retry policy: what is retried, how often, and until when."""

from __future__ import annotations

import time

import pytest
from walstream import retry


class Flaky(Exception):
    pass


def _failing(times: int, exc: BaseException) -> tuple[list[int], object]:
    calls: list[int] = []

    async def fn() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise exc
        return "ok"

    return calls, fn


async def test_transient_errors_are_retried_and_on_retry_runs_before_each_new_attempt() -> None:
    calls, fn = _failing(3, Flaky())
    retries: list[int] = []
    result = await retry.acall(
        fn,  # type: ignore[arg-type]
        time.monotonic() + 10,
        lambda e: isinstance(e, Flaky),
        on_retry=lambda: retries.append(1),
    )
    assert result == "ok"
    assert len(calls) == 4 and len(retries) == 3


async def test_a_final_error_is_raised_at_once() -> None:
    calls, fn = _failing(5, ValueError("final"))
    with pytest.raises(ValueError, match="final"):
        await retry.acall(fn, time.monotonic() + 10, lambda e: isinstance(e, Flaky))  # type: ignore[arg-type]
    assert len(calls) == 1


async def test_retries_stop_at_the_deadline_with_the_last_error() -> None:
    calls, fn = _failing(10_000, Flaky("still down"))
    started = time.monotonic()
    with pytest.raises(Flaky, match="still down"):
        await retry.acall(fn, time.monotonic() + 0.3, lambda e: isinstance(e, Flaky))  # type: ignore[arg-type]
    assert 2 <= len(calls) <= retry.MAX_ATTEMPTS
    assert time.monotonic() - started < 0.3 + 3.0  # the deadline, one wait (<= 1 s), slack


async def test_an_expired_deadline_means_one_attempt() -> None:
    calls, fn = _failing(10_000, Flaky())
    with pytest.raises(Flaky):
        await retry.acall(fn, time.monotonic() - 1, lambda e: isinstance(e, Flaky))  # type: ignore[arg-type]
    assert len(calls) == 1
