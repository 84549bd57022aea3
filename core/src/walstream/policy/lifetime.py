"""The ``lifetime`` policy: no segment stays growing forever.

A growing segment pins the WAL: nothing before its CreateSegment can be
truncated until it is flushed, so even a quiet or empty segment is sealed at
the end of its life.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from pydantic import Field, NonNegativeFloat
from pydantic_settings import BaseSettings

from walstream.policy.spi import SealDecision, SealReason, SegmentPolicy
from walstream.policy.stats import GrowingSnapshot
from walstream.settings import WalstreamBaseSettings, driver_settings_config


class LifetimeSettings(WalstreamBaseSettings):
    """``[segment_policy.lifetime]`` / ``WALSTREAM_SEGMENT_POLICY_LIFETIME_*``."""

    toml_table: ClassVar[str] = "segment_policy.lifetime"
    model_config = driver_settings_config("segment_policy.lifetime")

    max_lifetime_seconds: NonNegativeFloat = Field(
        default=86_400.0, description="Seal a segment older than this (dataCoord.segment.maxLife)."
    )


class LifetimePolicy(SegmentPolicy):
    """Seal every segment whose age exceeds ``max_lifetime_seconds``."""

    name: ClassVar[str] = "lifetime"
    settings_class: ClassVar[type[BaseSettings]] = LifetimeSettings
    settings: LifetimeSettings

    def check_periodic(self, snapshot: GrowingSnapshot) -> Iterable[SealDecision]:
        """Segments created more than ``max_lifetime_seconds`` before ``snapshot.now``."""
        limit = self.settings.max_lifetime_seconds
        for seg in snapshot.segments:
            age = seg.age(snapshot.now)
            if age > limit:
                yield SealDecision(
                    seg.segment_id, SealReason.LIFETIME, f"age {age:.1f}s > {limit}s"
                )
