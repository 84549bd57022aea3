"""``PeriodicSealer``: the periodic check of the seal policies (idle, lifetime, hwm, memory)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from walstream.policy import SealDecision, SealPolicyChain
from walstream.wal.segments.emitter import FlushEmitter
from walstream.wal.segments.manager import SegmentManager

log = logging.getLogger(__name__)


class PeriodicSealer:
    """Runs ``chain.tick`` every ``interval`` seconds and flushes what it decides."""

    def __init__(
        self,
        manager: SegmentManager,
        chain: SealPolicyChain,
        emitter: FlushEmitter,
        clock: Callable[[], float],
    ) -> None:
        self._manager = manager
        self._chain = chain
        self._emitter = emitter
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the periodic task runs."""
        return self._task is not None and not self._task.done()

    async def tick(self) -> list[SealDecision]:
        """One check now: retry failed Flushes, then seal and flush what the policies decide."""
        await self._emitter.retry()
        decisions = self._chain.tick(self._manager.growing(), self._clock())
        sealed = []
        for decision in decisions:
            # Sealed right away (no await since the snapshot), so no insert lands in it meanwhile.
            segment = self._manager.seal(decision.segment_id)
            if segment is not None:
                sealed.append((segment, decision.reason))
        await self._emitter.flush_all(sealed)
        return decisions

    def start(self, interval: float) -> None:
        """Start the periodic task on the running loop (``interval`` seconds between checks)."""
        if interval <= 0:
            raise ValueError(f"the seal check interval must be > 0 seconds, got {interval}")
        if self.running:
            raise RuntimeError("the periodic seal check is already running")
        self._task = asyncio.get_running_loop().create_task(
            self._run(interval), name="walstream-segment-seal-check"
        )

    async def close(self) -> None:
        """Stop the periodic task and wait for it to end."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.tick()
            except Exception:
                # One bad tick (a failing third-party policy) must not stop sealing for good.
                log.exception("periodic segment seal check failed; next try in %.1fs", interval)
