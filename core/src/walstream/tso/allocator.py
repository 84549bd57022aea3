"""The timestamp oracle: hybrid timestamps that never go backwards.

A timestamp is ``(physical_ms << 18) | logical``: milliseconds since the Unix
epoch in the high bits, a counter within the millisecond in the low 18 bits
(as in Milvus/TiDB). It fits in an unsigned 64-bit integer.

Why timestamps survive restarts and clock steps:

- The oracle persists a *window end* in the metastore, an upper bound on the
  physical part of anything it will hand out, *before* handing out timestamps
  below it. A new oracle starts at ``max(now, window_end) + 1`` ms, so it is
  above everything a previous one (in this process or another) could have
  returned, even if that one crashed.
- Each allocation starts at ``max(last + 1, now)``, so a clock that jumps back
  just makes the logical counter run on (spilling into the next millisecond
  when it overflows) until real time catches up.
- The window key is written with compare-and-swap on its ``mod_revision``: a
  second oracle on the same key takes it over, and the first one's next
  extension fails with :class:`TSOFencedError` instead of both issuing
  timestamps in the same range.

Allocations are local and cheap; the metastore is written only to extend the
window, in the background when less than a third of it is left, so callers
rarely wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

from walstream.errors import MetastoreError
from walstream.metastore.spi import Metastore

__all__ = [
    "LOGICAL_BITS",
    "MAX_LOGICAL",
    "MAX_TIMESTAMP",
    "TSOClosedError",
    "TSOError",
    "TSOFencedError",
    "TimestampOracle",
    "compose",
    "now_ms",
    "parse",
]

log = logging.getLogger(__name__)

LOGICAL_BITS = 18
"""Bits of the logical counter."""
MAX_LOGICAL = (1 << LOGICAL_BITS) - 1
"""Largest logical value within one millisecond."""
MAX_TIMESTAMP = (1 << 64) - 1
"""Timestamps are unsigned 64-bit integers."""
MAX_PHYSICAL = MAX_TIMESTAMP >> LOGICAL_BITS
"""Largest physical part (milliseconds) a timestamp can hold."""


class TSOError(MetastoreError):
    """The timestamp oracle cannot hand out timestamps."""


class TSOFencedError(TSOError):
    """Another oracle took over the window key; this one must not allocate any more.

    Two oracles must never share a key: give each its own key or run one.
    """


class TSOClosedError(TSOError):
    """The oracle was used after ``close()``."""


def compose(physical_ms: int, logical: int) -> int:
    """The timestamp of ``logical`` within millisecond ``physical_ms``."""
    if not 0 <= physical_ms <= MAX_PHYSICAL:
        raise ValueError(f"physical_ms must be in [0, {MAX_PHYSICAL}], got {physical_ms}")
    if not 0 <= logical <= MAX_LOGICAL:
        raise ValueError(f"logical must be in [0, {MAX_LOGICAL}], got {logical}")
    return (physical_ms << LOGICAL_BITS) | logical


def parse(ts: int) -> tuple[int, int]:
    """``(physical_ms, logical)`` of a timestamp."""
    if not 0 <= ts <= MAX_TIMESTAMP:
        raise ValueError(f"timestamp must be in [0, 2**64), got {ts}")
    return ts >> LOGICAL_BITS, ts & MAX_LOGICAL


def now_ms() -> int:
    """The oracle's default clock: wall-clock milliseconds since the Unix epoch.

    Looked up at each call, so tests may monkeypatch it; or pass ``clock=``.
    """
    return time.time_ns() // 1_000_000


def _encode_window(end_ms: int) -> bytes:
    return str(end_ms).encode("ascii")


def _decode_window(key: str, raw: bytes) -> int:
    try:
        value = int(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        value = -1
    if value < 0:
        raise TSOError(
            f"metastore key {key!r} should hold the TSO window end in milliseconds, "
            f"found {raw[:40]!r}; refusing to guess a safe starting point"
        )
    return value


class TimestampOracle:
    """Hands out strictly increasing hybrid timestamps, persisted via a metastore.

    ``window_ms`` is how far ahead of the clock the persisted bound runs (a
    restart jumps at most that far ahead of real time). ``batch`` caps ``count``
    in one :meth:`allocate` call (default: one millisecond's worth of logical
    values), so a single caller cannot push the timestamps far past real time.
    ``clock`` returns milliseconds; default :func:`now_ms`.

    The oracle starts on first use, or explicitly with :meth:`start` /
    ``async with``. It does not own the metastore: ``close()`` leaves it open.
    """

    def __init__(
        self,
        metastore: Metastore,
        key: str = "tso/window",
        window_ms: int = 3000,
        batch: int = 1 << LOGICAL_BITS,
        clock: Callable[[], int] | None = None,
    ) -> None:
        if window_ms < 3:
            raise ValueError("window_ms must be >= 3")
        if batch < 1:
            raise ValueError("batch must be >= 1")
        self._ms = metastore
        self._key = key
        self._window_ms = window_ms
        self._batch = batch
        self._clock = clock
        # Guards _last and the start; held across a window extension only when an
        # allocation cannot proceed without it.
        self._lock = asyncio.Lock()
        self._started = False
        self._closed = False
        self._last = -1  # the last timestamp handed out
        self._first_after_start = 0  # the lowest timestamp this oracle may hand out
        self._window_end = 0  # persisted bound: every handed-out physical part is below it
        self._mod_revision: int | None = None  # of our last write to the window key
        self._extend_task: asyncio.Task[BaseException | None] | None = None
        self._fenced: TSOFencedError | None = None

    # --- inspection ------------------------------------------------------------

    @property
    def key(self) -> str:
        """The metastore key holding the window end."""
        return self._key

    @property
    def window_end_ms(self) -> int:
        """The persisted physical bound (0 before start)."""
        return self._window_end

    @property
    def last(self) -> int | None:
        """The last timestamp handed out by this oracle (None before any)."""
        return self._last if self._started and self._last >= self._first_after_start else None

    # --- lifecycle ----------------------------------------------------------------

    def _now(self) -> int:
        value = (self._clock or now_ms)()
        return min(max(value, 0), MAX_PHYSICAL)

    async def start(self) -> None:
        """Claim the window key and pick the starting point; idempotent."""
        async with self._lock:
            self._check_usable()
            if not self._started:
                await self._start_locked()

    async def _start_locked(self) -> None:
        kv = await self._ms.get(self._key)
        persisted = 0 if kv is None else _decode_window(self._key, kv.value)
        begin = max(self._now(), persisted) + 1
        end = begin + self._window_ms
        if end > MAX_PHYSICAL:
            raise TSOError(f"the timestamp space is exhausted (window end {persisted} ms)")
        revision = await self._ms.put_if(
            self._key, None if kv is None else kv.mod_revision, _encode_window(end)
        )
        if revision is None:
            raise TSOFencedError(
                f"another timestamp oracle changed {self._key!r} while this one was "
                f"starting; two oracles cannot share one key"
            )
        self._mod_revision = revision
        self._window_end = end
        self._first_after_start = compose(begin, 0)
        self._last = self._first_after_start - 1
        self._started = True

    async def close(self) -> None:
        """Stop allocating and wait for a window extension in flight; idempotent."""
        self._closed = True
        task = self._extend_task
        if task is not None:
            # Let the write finish rather than cancel it: a cancelled to_thread
            # call may still commit, leaving our mod_revision unknown.
            await asyncio.shield(task)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _check_usable(self) -> None:
        if self._closed:
            raise TSOClosedError("the timestamp oracle is closed")
        if self._fenced is not None:
            # A fresh exception per call: re-raising one instance grows its traceback.
            raise TSOFencedError(str(self._fenced))

    # --- allocation -----------------------------------------------------------

    async def allocate(self, count: int = 1) -> int:
        """The first of ``count`` consecutive timestamps ``[ts, ts + count)``.

        Every one is strictly greater than any timestamp allocated before on
        this key, by this oracle or an earlier one (any process).
        """
        if not isinstance(count, int) or not 1 <= count <= self._batch:
            raise ValueError(f"count must be an int in [1, {self._batch}], got {count!r}")
        return await self._allocate(count, 0)

    async def allocate_at_least(self, barrier: int) -> int:
        """One timestamp that is ``>= barrier`` (and above everything allocated before)."""
        if not isinstance(barrier, int) or not 0 <= barrier <= MAX_TIMESTAMP:
            raise ValueError(f"barrier must be a timestamp in [0, 2**64), got {barrier!r}")
        return await self._allocate(1, barrier)

    def allocate_many_nowait(self, count: int, barrier: int = 0) -> int | None:
        """``count`` consecutive timestamps (the first ``>= barrier``) without awaiting.

        Returns the first (the caller uses ``first .. first + count - 1``), or ``None``
        as :meth:`allocate_nowait` does: one clock read for the whole batch.
        """
        if self._lock.locked() or not self._started or count < 1:
            return None
        if not isinstance(barrier, int) or not 0 <= barrier <= MAX_TIMESTAMP:
            return None  # the async method raises the ValueError
        self._check_usable()
        first = max(self._last + 1, compose(self._now(), 0), barrier)
        last = first + count - 1
        physical = last >> LOGICAL_BITS
        if last > MAX_TIMESTAMP or physical >= self._window_end:
            return None
        self._last = last
        self._maybe_extend_early(physical)
        return first

    def allocate_nowait(self, barrier: int = 0) -> int | None:
        """:meth:`allocate_at_least` without awaiting, or ``None`` when it would have to wait.

        ``None``: the oracle is not started, an allocation holds the lock, or the
        window must be extended first (then call the async method). Raises as the
        async methods do when the oracle is closed or fenced. A window extension
        may start in the background, as after any allocation.
        """
        return self.allocate_many_nowait(1, barrier)

    async def _allocate(self, count: int, barrier: int) -> int:
        async with self._lock:
            self._check_usable()
            if not self._started:
                await self._start_locked()
            while True:
                # max(last + 1, now): never below what was handed out, whatever the
                # clock does; integer carry moves a logical overflow to the next ms.
                first = max(self._last + 1, compose(self._now(), 0), barrier)
                last = first + count - 1
                if last > MAX_TIMESTAMP:
                    raise TSOError("the timestamp space is exhausted")
                physical = last >> LOGICAL_BITS
                if physical < self._window_end:
                    break
                await self._extend_and_wait(physical)
                self._check_usable()
            self._last = last
            self._maybe_extend_early(physical)
            return first

    def _maybe_extend_early(self, physical: int) -> None:
        if self._extend_task is not None or self._closed:
            return
        ahead = max(self._now(), physical)
        if (self._window_end - ahead) * 3 < self._window_ms:
            self._start_extension(ahead)

    def _start_extension(self, min_physical: int) -> asyncio.Task[BaseException | None]:
        task = asyncio.get_running_loop().create_task(
            self._extend(min_physical), name=f"tso-extend:{self._key}"
        )
        self._extend_task = task
        return task

    async def _extend_and_wait(self, physical: int) -> None:
        """Extend the window past ``physical`` (or join the extension in flight)."""
        task = self._extend_task or self._start_extension(physical)
        # shield: a cancelled allocation must not cancel the write others wait for.
        error = await asyncio.shield(task)
        self._check_usable()
        if physical < self._window_end:
            return
        if error is not None:
            raise TSOError(f"cannot extend the TSO window in the metastore: {error}") from error
        if self._window_end >= MAX_PHYSICAL:
            raise TSOError("the timestamp space is exhausted")

    async def _extend(self, min_physical: int) -> BaseException | None:
        """Persist a new window end; returns the failure instead of raising it.

        Returning it lets the allocation waiting on this task raise it, and
        keeps a background extension that nobody awaits from leaving an
        unretrieved task exception.
        """
        try:
            target = min(max(self._now(), min_physical) + self._window_ms, MAX_PHYSICAL)
            if target <= self._window_end:
                return None
            revision = await self._ms.put_if(self._key, self._mod_revision, _encode_window(target))
            if revision is None:
                self._fenced = TSOFencedError(
                    f"another timestamp oracle took over {self._key!r}; this one stops "
                    f"allocating (two oracles cannot share one key)"
                )
                log.error("%s", self._fenced)
                return self._fenced
            self._mod_revision = revision
            self._window_end = target
            return None
        except Exception as exc:  # handed to the waiting caller, see docstring
            log.warning("extending the TSO window %r failed: %s", self._key, exc)
            return exc
        finally:
            self._extend_task = None
