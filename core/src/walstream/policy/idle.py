"""The ``idle`` policy: seal a segment that stopped receiving inserts while holding enough data."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from pydantic import Field, NonNegativeFloat, NonNegativeInt
from pydantic_settings import BaseSettings

from walstream.policy.spi import SealDecision, SealReason, SegmentPolicy
from walstream.policy.stats import GrowingSnapshot
from walstream.settings import WalstreamBaseSettings, driver_settings_config


class IdleSettings(WalstreamBaseSettings):
    """``[segment_policy.idle]`` / ``WALSTREAM_SEGMENT_POLICY_IDLE_*``."""

    toml_table: ClassVar[str] = "segment_policy.idle"
    model_config = driver_settings_config("segment_policy.idle")

    min_bytes: NonNegativeInt = Field(
        default=16 * 1024 * 1024,
        description="Only segments holding more than this are sealed when idle (minSizeFromIdleToSealed).",
    )
    max_idle_seconds: NonNegativeFloat = Field(
        default=600.0, description="Seal after no insert for longer than this (maxIdleTime)."
    )


class IdlePolicy(SegmentPolicy):
    """Seal when a segment holds more than ``min_bytes`` AND was idle longer than ``max_idle_seconds``.

    Both are needed: a small idle segment is cheaper kept growing than flushed as
    a tiny file; a busy large one is the capacity policy's business.
    """

    name: ClassVar[str] = "idle"
    settings_class: ClassVar[type[BaseSettings]] = IdleSettings
    settings: IdleSettings

    def check_periodic(self, snapshot: GrowingSnapshot) -> Iterable[SealDecision]:
        """Segments over ``min_bytes`` with no insert for more than ``max_idle_seconds``."""
        s = self.settings
        for seg in snapshot.segments:
            idle = seg.idle_for(snapshot.now)
            if seg.binary_bytes > s.min_bytes and idle > s.max_idle_seconds:
                yield SealDecision(
                    seg.segment_id,
                    SealReason.IDLE,
                    f"{seg.binary_bytes} bytes > {s.min_bytes}, idle {idle:.1f}s > {s.max_idle_seconds}s",
                )
