"""The ``capacity`` policy: a segment holds at most so many bytes and rows.

As in Milvus, a segment is sealed at ``jitter x max x seal_proportion`` with
``jitter`` drawn in ``[1 - seal_proportion_jitter, 1]`` when it is created, so
segments created together do not all fill up, seal and flush at the same moment.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import ClassVar

from pydantic import Field, PositiveInt
from pydantic_settings import BaseSettings

from walstream.policy.spi import InsertTooLargeError, SealDecision, SealReason, SegmentPolicy
from walstream.policy.stats import GrowingSnapshot, InsertStats, SegmentLimits, SegmentStats
from walstream.settings import WalstreamBaseSettings, driver_settings_config

MiB = 1024 * 1024


class CapacitySettings(WalstreamBaseSettings):
    """``[segment_policy.capacity]`` / ``WALSTREAM_SEGMENT_POLICY_CAPACITY_*``."""

    toml_table: ClassVar[str] = "segment_policy.capacity"
    model_config = driver_settings_config("segment_policy.capacity")

    max_bytes: PositiveInt = Field(
        default=1024 * MiB,
        description="Largest a segment may be; also the largest insert accepted (dataCoord.segment.maxSize).",
    )
    max_rows: PositiveInt = Field(
        default=10_000_000, description="Most rows a segment may hold; also the largest insert."
    )
    seal_proportion: float = Field(
        default=0.12, gt=0, le=1, description="Seal at this share of max_bytes / max_rows."
    )
    seal_proportion_jitter: float = Field(
        default=0.1, ge=0, lt=1, description="Each segment's limit is lowered by up to this share."
    )
    seed: int | None = Field(
        default=None, description="Seed of the jitter; set it to make limits reproducible."
    )


def _scaled(maximum: int, factor: float) -> int:
    # At least 1: a zero limit would make every segment full before its first row.
    return max(1, int(maximum * factor))


class CapacityPolicy(SegmentPolicy):
    """Seal a segment before an insert that would take it past its limits.

    An insert larger than ``max_bytes`` / ``max_rows`` is refused with
    ``InsertTooLargeError``. An empty segment takes any insert within those
    maxima, even one over its own (jittered) limit: whether an insert is accepted
    must not depend on the random draw, and a segment still never exceeds the maxima.
    """

    name: ClassVar[str] = "capacity"
    settings_class: ClassVar[type[BaseSettings]] = CapacitySettings
    settings: CapacitySettings

    def __init__(
        self, settings: BaseSettings | None = None, *, rng: random.Random | None = None
    ) -> None:
        super().__init__(settings)
        self._rng = rng if rng is not None else random.Random(self.settings.seed)

    def segment_limits(self) -> SegmentLimits:
        """Jittered limits for a new segment (one draw for bytes and rows alike)."""
        s = self.settings
        # random() is in [0, 1), so the factor is in (1 - jitter, 1]: never above the nominal limit.
        factor = (1.0 - self._rng.random() * s.seal_proportion_jitter) * s.seal_proportion
        return SegmentLimits(
            max_rows=_scaled(s.max_rows, factor), max_bytes=_scaled(s.max_bytes, factor)
        )

    def check_insert(self, segment: SegmentStats, insert: InsertStats) -> SealDecision | None:
        """Fits if the segment stays at or under its limits; an empty segment takes any legal insert."""
        s = self.settings
        if insert.binary_bytes > s.max_bytes or insert.rows > s.max_rows:
            raise InsertTooLargeError(
                insert_rows=insert.rows,
                insert_bytes=insert.binary_bytes,
                max_rows=s.max_rows,
                max_bytes=s.max_bytes,
                policy=self.name,
                hint="split it into smaller inserts, or raise segment_policy.capacity max_bytes / max_rows",
            )
        if segment.is_empty:
            return None
        rows = segment.rows + insert.rows
        size = segment.binary_bytes + insert.binary_bytes
        if rows <= segment.limits.max_rows and size <= segment.limits.max_bytes:
            return None
        return SealDecision(
            segment.segment_id,
            SealReason.CAPACITY,
            f"insert would bring it to {rows} rows / {size} bytes, "
            f"limits {segment.limits.max_rows} rows / {segment.limits.max_bytes} bytes",
        )

    def check_periodic(self, snapshot: GrowingSnapshot) -> Iterable[SealDecision]:
        """Seal segments already at their limit: they can take no further insert.

        Without this a full segment would wait for the next insert (or idle time) to be sealed.
        """
        for seg in snapshot.segments:
            if seg.is_empty:
                continue
            if seg.rows >= seg.limits.max_rows or seg.binary_bytes >= seg.limits.max_bytes:
                yield SealDecision(
                    seg.segment_id,
                    SealReason.CAPACITY,
                    f"full: {seg.rows} rows / {seg.binary_bytes} bytes, "
                    f"limits {seg.limits.max_rows} rows / {seg.limits.max_bytes} bytes",
                )
