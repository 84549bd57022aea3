"""What segment policies look at: immutable figures about growing segments.

Every time here is float seconds on a monotonic clock chosen by the caller (the
WAL passes ``time.monotonic()``); policies never read a clock themselves, so the
same figures always give the same decisions and tests need no sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field

UNLIMITED = 2**63 - 1
"""A limit that is never reached (the largest signed 64-bit value, so it survives codecs)."""

PROSPECTIVE_SEGMENT_ID = -1
"""``segment_id`` of a segment the WAL has not created yet (see ``SealPolicyChain.assign``)."""


def _non_negative(owner: str, **values: float) -> None:
    for name, value in values.items():
        if value < 0:
            raise ValueError(f"{owner}.{name} must be >= 0, got {value}")


@dataclass(frozen=True, slots=True)
class SegmentLimits:
    """The capacity a growing segment was created with: seal it when either is reached.

    Fixed at creation (jitter included) and recorded with the segment, so a
    recovered segment keeps the limits it was given.
    """

    max_rows: int = UNLIMITED
    max_bytes: int = UNLIMITED

    def __post_init__(self) -> None:
        if self.max_rows < 0 or self.max_bytes < 0:  # cheap check first: built per insert
            _non_negative("SegmentLimits", max_rows=self.max_rows, max_bytes=self.max_bytes)

    def tighter(self, other: SegmentLimits) -> SegmentLimits:
        """The element-wise minimum: what both policies allow."""
        return SegmentLimits(
            min(self.max_rows, other.max_rows), min(self.max_bytes, other.max_bytes)
        )


@dataclass(frozen=True, slots=True)
class InsertStats:
    """One insert attempt for one partition: where it goes and how big it is.

    ``binary_bytes`` is the insert's encoded size (Milvus defaults it to the
    message size); ``rows`` its row count.
    """

    collection_id: int
    partition_id: int
    vchannel: str
    rows: int
    binary_bytes: int

    def __post_init__(self) -> None:
        if self.rows < 0 or self.binary_bytes < 0:  # cheap check first: built per insert
            _non_negative("InsertStats", rows=self.rows, binary_bytes=self.binary_bytes)


@dataclass(frozen=True, slots=True)
class SegmentStats:
    """A growing segment as the policies see it. Immutable: ``with_insert`` gives the next one."""

    segment_id: int
    collection_id: int
    partition_id: int
    vchannel: str
    limits: SegmentLimits
    created_at: float
    last_insert_at: float
    rows: int = 0
    binary_bytes: int = 0

    def __post_init__(self) -> None:
        if self.rows < 0 or self.binary_bytes < 0:  # cheap check first: built per insert
            _non_negative("SegmentStats", rows=self.rows, binary_bytes=self.binary_bytes)

    @classmethod
    def new(
        cls,
        segment_id: int,
        insert: InsertStats,
        limits: SegmentLimits,
        now: float,
    ) -> SegmentStats:
        """An empty segment for ``insert``'s collection, partition and vchannel, created at ``now``."""
        return cls(
            segment_id=segment_id,
            collection_id=insert.collection_id,
            partition_id=insert.partition_id,
            vchannel=insert.vchannel,
            limits=limits,
            created_at=now,
            last_insert_at=now,
        )

    @property
    def is_empty(self) -> bool:
        """No row was assigned yet."""
        return self.rows == 0 and self.binary_bytes == 0

    def age(self, now: float) -> float:
        """Seconds since creation."""
        return now - self.created_at

    def idle_for(self, now: float) -> float:
        """Seconds since the last assigned insert (or creation, if none)."""
        return now - self.last_insert_at

    def with_insert(self, insert: InsertStats, now: float) -> SegmentStats:
        """These stats after ``insert`` was assigned at ``now``."""
        # The constructor, not ``dataclasses.replace``: this runs once per insert.
        return SegmentStats(
            self.segment_id,
            self.collection_id,
            self.partition_id,
            self.vchannel,
            self.limits,
            self.created_at,
            now,
            self.rows + insert.rows,
            self.binary_bytes + insert.binary_bytes,
        )


@dataclass(frozen=True, slots=True)
class MemoryReading:
    """One reading of a memory probe: bytes in use out of bytes available in total."""

    used_bytes: int
    total_bytes: int

    def __post_init__(self) -> None:
        _non_negative("MemoryReading", used_bytes=self.used_bytes)
        if self.total_bytes <= 0:
            raise ValueError(f"MemoryReading.total_bytes must be > 0, got {self.total_bytes}")

    @property
    def used_ratio(self) -> float:
        """``used_bytes / total_bytes``."""
        return self.used_bytes / self.total_bytes


@dataclass(frozen=True, slots=True)
class GrowingSnapshot:
    """Every growing segment of one WAL at ``now``, plus a memory reading if one was taken.

    ``memory`` is ``None`` when the probe could not read anything; policies that
    need it then decide nothing.
    """

    now: float
    segments: tuple[SegmentStats, ...] = ()
    memory: MemoryReading | None = None
    _total: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_total", sum(s.binary_bytes for s in self.segments))

    @property
    def total_bytes(self) -> int:
        """Sum of the binary bytes of all growing segments."""
        return self._total

    def largest_first(self) -> list[SegmentStats]:
        """Non-empty segments, largest first; ties by segment id so the order is stable."""
        return sorted(
            (s for s in self.segments if s.binary_bytes > 0),
            key=lambda s: (-s.binary_bytes, s.segment_id),
        )
