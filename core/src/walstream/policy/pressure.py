"""Policies that relieve memory: ``growing_bytes_hwm`` and ``memory_pressure``.

Both seal the largest growing segments first (one flush frees the most memory)
and stop as soon as the figure they watch, counting the sealed segments as freed,
is at or below a low-water mark. The gap between the high and the low mark, and
a cooldown, keep them from sealing a little on every tick.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import ClassVar, Self

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveInt, model_validator
from pydantic_settings import BaseSettings

from walstream.policy.spi import SealDecision, SealReason, SegmentPolicy
from walstream.policy.stats import GrowingSnapshot
from walstream.settings import WalstreamBaseSettings, driver_settings_config


def seal_largest(
    snapshot: GrowingSnapshot, level: int, low: int, reason: str, what: str
) -> Iterator[SealDecision]:
    """Seal the largest segments, counting each as freed from ``level``, until ``level <= low``."""
    start = level
    for seg in snapshot.largest_first():
        if level <= low:
            return
        level -= seg.binary_bytes
        yield SealDecision(
            seg.segment_id,
            reason,
            f"{what} {start} bytes (above the high-water mark); sealing {seg.binary_bytes} bytes, "
            f"largest first, towards the low-water mark of {low} bytes",
        )


class GrowingBytesHwmSettings(WalstreamBaseSettings):
    """``[segment_policy.growing_bytes_hwm]`` / ``WALSTREAM_SEGMENT_POLICY_GROWING_BYTES_HWM_*``.

    The marks are absolute (``*_bytes``, both or neither) or, by default, shares
    of the machine's total memory as the memory probe reports it.
    """

    toml_table: ClassVar[str] = "segment_policy.growing_bytes_hwm"
    model_config = driver_settings_config("segment_policy.growing_bytes_hwm")

    high_watermark_bytes: PositiveInt | None = Field(
        default=None, description="Seal when growing bytes exceed this (overrides the ratio)."
    )
    low_watermark_bytes: NonNegativeInt | None = Field(
        default=None, description="Seal until growing bytes are at or below this."
    )
    high_watermark_ratio: float = Field(
        default=0.2, gt=0, le=1, description="High-water mark as a share of total memory."
    )
    low_watermark_ratio: float = Field(
        default=0.1, ge=0, lt=1, description="Low-water mark as a share of total memory."
    )
    cooldown_seconds: NonNegativeFloat = Field(
        default=5.0, description="After sealing, wait this long before checking again."
    )

    @model_validator(mode="after")
    def _marks_are_ordered(self) -> Self:
        high, low = self.high_watermark_bytes, self.low_watermark_bytes
        if (high is None) != (low is None):
            raise ValueError("set both high_watermark_bytes and low_watermark_bytes, or neither")
        if high is not None and low is not None and low >= high:
            raise ValueError("low_watermark_bytes must be below high_watermark_bytes")
        if self.low_watermark_ratio >= self.high_watermark_ratio:
            raise ValueError("low_watermark_ratio must be below high_watermark_ratio")
        return self


class GrowingBytesHwmPolicy(SegmentPolicy):
    """Total growing bytes above the high-water mark: seal the largest until at or below the low one."""

    name: ClassVar[str] = "growing_bytes_hwm"
    settings_class: ClassVar[type[BaseSettings]] = GrowingBytesHwmSettings
    settings: GrowingBytesHwmSettings

    def __init__(self, settings: BaseSettings | None = None) -> None:
        super().__init__(settings)
        self.cooldown_seconds = self.settings.cooldown_seconds

    def marks(self, snapshot: GrowingSnapshot) -> tuple[int, int] | None:
        """(high, low) in bytes for this snapshot; ``None`` if relative and memory is unknown."""
        s = self.settings
        if s.high_watermark_bytes is not None and s.low_watermark_bytes is not None:
            return s.high_watermark_bytes, s.low_watermark_bytes
        if snapshot.memory is None:
            return None
        total = snapshot.memory.total_bytes
        return int(total * s.high_watermark_ratio), int(total * s.low_watermark_ratio)

    def check_periodic(self, snapshot: GrowingSnapshot) -> Iterable[SealDecision]:
        """Largest segments first while the total is above the low mark, once it exceeded the high one."""
        marks = self.marks(snapshot)
        if marks is None or snapshot.total_bytes <= marks[0]:
            return ()
        return seal_largest(
            snapshot,
            snapshot.total_bytes,
            marks[1],
            SealReason.GROWING_BYTES_HWM,
            "growing segments hold",
        )


class MemoryPressureSettings(WalstreamBaseSettings):
    """``[segment_policy.memory_pressure]`` / ``WALSTREAM_SEGMENT_POLICY_MEMORY_PRESSURE_*``."""

    toml_table: ClassVar[str] = "segment_policy.memory_pressure"
    model_config = driver_settings_config("segment_policy.memory_pressure")

    high_watermark: float = Field(
        default=0.85, gt=0, le=1, description="Seal when the used-memory ratio exceeds this."
    )
    low_watermark: float = Field(
        default=0.75, ge=0, lt=1, description="Seal until the expected ratio is at or below this."
    )
    cooldown_seconds: NonNegativeFloat = Field(
        default=30.0,
        description="After sealing, wait this long: the flushes take time to free memory.",
    )

    @model_validator(mode="after")
    def _marks_are_ordered(self) -> Self:
        if self.low_watermark >= self.high_watermark:
            raise ValueError("low_watermark must be below high_watermark")
        return self


class MemoryPressurePolicy(SegmentPolicy):
    """Used memory above ``high_watermark``: seal the largest until the expected ratio is at or below ``low_watermark``.

    "Expected" counts each sealed segment's bytes as freed, since flushing it
    releases its growing data; the real figure is read again after the cooldown.
    """

    name: ClassVar[str] = "memory_pressure"
    settings_class: ClassVar[type[BaseSettings]] = MemoryPressureSettings
    settings: MemoryPressureSettings

    def __init__(self, settings: BaseSettings | None = None) -> None:
        super().__init__(settings)
        self.cooldown_seconds = self.settings.cooldown_seconds

    def check_periodic(self, snapshot: GrowingSnapshot) -> Iterable[SealDecision]:
        """Nothing without a memory reading or below the high-water mark."""
        memory = snapshot.memory
        if memory is None or memory.used_ratio <= self.settings.high_watermark:
            return ()
        low = int(memory.total_bytes * self.settings.low_watermark)
        return seal_largest(
            snapshot, memory.used_bytes, low, SealReason.MEMORY_PRESSURE, "memory in use is"
        )
