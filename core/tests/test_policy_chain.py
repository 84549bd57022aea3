"""SealPolicyChain: assignment, de-duplication (first reason wins), cooldowns, probes."""

import random
from collections.abc import Iterable
from typing import ClassVar

import pytest
from pydantic_settings import BaseSettings
from walstream.policy import (
    PROSPECTIVE_SEGMENT_ID,
    CapacityPolicy,
    CapacitySettings,
    GrowingBytesHwmPolicy,
    GrowingBytesHwmSettings,
    GrowingSnapshot,
    IdlePolicy,
    IdleSettings,
    InsertStats,
    InsertTooLargeError,
    LifetimePolicy,
    LifetimeSettings,
    MemoryPressurePolicy,
    MemoryPressureSettings,
    MemoryReading,
    SealDecision,
    SealPolicyChain,
    SealReason,
    SegmentLimits,
    SegmentPolicy,
    SegmentStats,
)
from walstream.settings import WalstreamBaseSettings, driver_settings_config

pytestmark = pytest.mark.usefixtures("no_config")  # conftest.py: no user config file


INSERT = InsertStats(collection_id=1, partition_id=2, vchannel="v", rows=1, binary_bytes=100)


def seg(segment_id: int, size: int, *, created: float = 0.0, last: float = 0.0) -> SegmentStats:
    return SegmentStats(
        segment_id=segment_id,
        collection_id=1,
        partition_id=2,
        vchannel="v",
        limits=SegmentLimits(max_rows=1_000, max_bytes=1_000),
        created_at=created,
        last_insert_at=last,
        rows=1 if size else 0,
        binary_bytes=size,
    )


def capacity() -> CapacityPolicy:
    settings = CapacitySettings(max_bytes=10_000, max_rows=10_000, seal_proportion=0.1)
    return CapacityPolicy(settings, rng=random.Random(3))


# --- assignment -----------------------------------------------------------------------


def test_assign_picks_the_first_candidate_that_fits_and_seals_the_full_ones() -> None:
    chain = SealPolicyChain([capacity()])
    a = chain.assign([seg(1, 950), seg(2, 100), seg(3, 0)], INSERT, now=5.0)
    assert a.segment_id == 2 and a.new_limits is None
    assert a.seals == (SealDecision(1, SealReason.CAPACITY),)


def test_assign_asks_for_a_new_segment_with_fresh_limits_when_none_fits() -> None:
    chain = SealPolicyChain([capacity()])
    a = chain.assign([seg(1, 950)], INSERT, now=5.0)
    assert a.segment_id is None and [d.segment_id for d in a.seals] == [1]
    assert a.new_limits is not None and 900 <= a.new_limits.max_bytes <= 1000
    assert chain.assign([], INSERT, now=5.0).segment_id is None


def test_new_limits_are_the_tightest_asked_for_and_unlimited_without_opinion() -> None:
    class Small(SegmentPolicy):
        name: ClassVar[str] = "small"
        settings_class: ClassVar[type[BaseSettings]] = IdleSettings

        def segment_limits(self) -> SegmentLimits:
            return SegmentLimits(max_rows=5_000, max_bytes=10)

    limits = SealPolicyChain([capacity(), Small()]).new_segment_limits()
    assert limits.max_bytes == 10 and 900 <= limits.max_rows <= 1000
    assert SealPolicyChain([]).new_segment_limits() == SegmentLimits()


class NoEmpty(SegmentPolicy):
    """Refuses every segment, even an empty one: such an insert can never be placed."""

    name: ClassVar[str] = "no_empty"
    settings_class: ClassVar[type[BaseSettings]] = IdleSettings
    seen: ClassVar[list[int]] = []

    def check_insert(self, segment: SegmentStats, insert: InsertStats) -> SealDecision:
        self.seen.append(segment.segment_id)
        return SealDecision(segment.segment_id, "no_empty")


def test_a_policy_refusing_an_empty_segment_makes_the_insert_too_large() -> None:
    chain = SealPolicyChain([NoEmpty()])
    with pytest.raises(InsertTooLargeError, match=r"'no_empty'.*even in an empty segment"):
        chain.assign([], INSERT, now=1.0)
    assert NoEmpty.seen[-1] == PROSPECTIVE_SEGMENT_ID


def test_policies_are_selected_once() -> None:
    with pytest.raises(ValueError, match="twice"):
        SealPolicyChain([capacity(), capacity()])


# --- periodic -------------------------------------------------------------------------


def test_first_reason_wins_in_configured_order() -> None:
    idle = IdlePolicy(IdleSettings(min_bytes=0, max_idle_seconds=10))
    life = LifetimePolicy(LifetimeSettings(max_lifetime_seconds=10))
    segments = [seg(1, 5, created=0, last=0), seg(2, 5, created=0, last=95)]
    first = SealPolicyChain([idle, life]).tick(segments, now=100.0)
    assert [(d.segment_id, d.reason) for d in first] == [(1, "idle"), (2, "lifetime")]
    second = SealPolicyChain([life, idle]).tick(segments, now=100.0)
    assert [(d.segment_id, d.reason) for d in second] == [(1, "lifetime"), (2, "lifetime")]


def test_cooldown_holds_a_policy_back_until_it_has_passed() -> None:
    hwm = GrowingBytesHwmPolicy(
        GrowingBytesHwmSettings(
            high_watermark_bytes=100, low_watermark_bytes=50, cooldown_seconds=5
        )
    )
    life = LifetimePolicy(LifetimeSettings(max_lifetime_seconds=1_000))
    chain = SealPolicyChain([hwm, life])
    big = [seg(1, 80), seg(2, 70)]
    assert [d.segment_id for d in chain.tick(big, now=10.0)] == [1, 2]
    # still above the mark, but cooling down; the other policies keep working meanwhile
    assert chain.tick(big, now=14.999) == []
    old = [*big, seg(3, 1, created=-1_000.0)]
    assert [(d.segment_id, d.reason) for d in chain.tick(old, now=12.0)] == [(3, "lifetime")]
    chain2 = SealPolicyChain([hwm])
    chain2.tick(big, now=10.0)
    assert chain2.tick(big, now=14.9) == []
    assert [d.segment_id for d in chain2.tick(big, now=15.0)] == [1, 2]  # exactly at the end


def test_cooldown_starts_only_when_the_policy_sealed_something() -> None:
    hwm = GrowingBytesHwmPolicy(
        GrowingBytesHwmSettings(
            high_watermark_bytes=100, low_watermark_bytes=50, cooldown_seconds=5
        )
    )
    chain = SealPolicyChain([hwm])
    assert chain.tick([seg(1, 10)], now=10.0) == []
    assert [d.segment_id for d in chain.tick([seg(1, 101)], now=11.0)] == [1]


def test_tick_reads_the_probe_and_a_failing_probe_skips_only_memory_policies() -> None:
    pressure = MemoryPressurePolicy(MemoryPressureSettings(high_watermark=0.5, low_watermark=0.4))
    life = LifetimePolicy(LifetimeSettings(max_lifetime_seconds=10))
    readings = [MemoryReading(900, 1000)]
    chain = SealPolicyChain([pressure, life], memory_probe=lambda: readings[-1])
    assert [d.reason for d in chain.tick([seg(1, 600, created=99)], now=100.0)] == [
        "memory_pressure"
    ]

    def broken() -> MemoryReading:
        raise OSError("no /proc here")

    chain = SealPolicyChain([pressure, life], memory_probe=broken)
    decided = chain.tick([seg(1, 600, created=99), seg(2, 5, created=0)], now=100.0)
    assert [(d.segment_id, d.reason) for d in decided] == [(2, "lifetime")]


class Rogue(SegmentPolicy):
    name: ClassVar[str] = "rogue"
    settings_class: ClassVar[type[BaseSettings]] = IdleSettings

    def check_periodic(self, snapshot: GrowingSnapshot) -> Iterable[SealDecision]:
        return [SealDecision(999, "rogue"), SealDecision(1, "rogue")]


def test_decisions_for_segments_that_are_not_growing_are_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    decided = SealPolicyChain([Rogue()]).tick([seg(1, 1)], now=0.0)
    assert decided == [SealDecision(1, "rogue")]
    assert "999" in caplog.text and "not growing" in caplog.text


class OwnSettings(WalstreamBaseSettings):
    toml_table: ClassVar[str] = "segment_policy.own"
    model_config = driver_settings_config("segment_policy.own")
    limit: int = 3


def test_policy_settings_must_be_its_own_class() -> None:
    class Own(SegmentPolicy):
        name: ClassVar[str] = "own"
        settings_class: ClassVar[type[BaseSettings]] = OwnSettings

    assert isinstance(Own().settings, OwnSettings)
    with pytest.raises(TypeError, match="expected OwnSettings"):
        Own(IdleSettings())
