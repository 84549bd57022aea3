"""Idle, lifetime, growing-bytes high-water mark and memory pressure, with fixed clocks and readings."""

from collections.abc import Iterable
from typing import Any

import pytest
from walstream.errors import SettingsError
from walstream.policy import (
    GrowingBytesHwmPolicy,
    GrowingBytesHwmSettings,
    GrowingSnapshot,
    IdlePolicy,
    IdleSettings,
    LifetimePolicy,
    LifetimeSettings,
    MemoryPressurePolicy,
    MemoryPressureSettings,
    MemoryReading,
    SealDecision,
    SealReason,
    SegmentLimits,
    SegmentStats,
)

pytestmark = pytest.mark.usefixtures("no_config")  # conftest.py: no user config file


def seg(
    segment_id: int, size: int = 0, *, created: float = 0.0, last: float | None = None
) -> SegmentStats:
    return SegmentStats(
        segment_id=segment_id,
        collection_id=1,
        partition_id=1,
        vchannel="v",
        limits=SegmentLimits(),
        created_at=created,
        last_insert_at=created if last is None else last,
        rows=1 if size else 0,
        binary_bytes=size,
    )


def ids(decisions: Iterable[SealDecision]) -> list[int]:
    return [d.segment_id for d in decisions]


# --- idle -------------------------------------------------------------------------


def test_idle_needs_both_enough_bytes_and_enough_idle_time() -> None:
    p = IdlePolicy(IdleSettings(min_bytes=100, max_idle_seconds=60))
    snap = GrowingSnapshot(
        now=1000.0,
        segments=(
            seg(1, 101, last=939.0),  # 101 > 100 bytes, idle 61 > 60: sealed
            seg(2, 100, last=0.0),  # idle for ages but only exactly min_bytes
            seg(3, 10_000, last=940.0),  # big, idle exactly 60 s: not yet
            seg(4, 10_000, last=999.0),  # big and busy
            seg(5, 0, last=0.0),  # empty and idle
        ),
    )
    decisions = list(p.check_periodic(snap))
    assert ids(decisions) == [1]
    assert decisions[0].reason == SealReason.IDLE and "idle 61.0s" in decisions[0].detail


def test_idle_uses_the_clock_it_is_given() -> None:
    p = IdlePolicy(IdleSettings(min_bytes=0, max_idle_seconds=5))
    s = seg(1, 10, last=100.0)
    assert ids(p.check_periodic(GrowingSnapshot(105.0, (s,)))) == []
    assert ids(p.check_periodic(GrowingSnapshot(105.001, (s,)))) == [1]


# --- lifetime -----------------------------------------------------------------------


def test_lifetime_seals_only_segments_older_than_the_maximum_even_empty_ones() -> None:
    p = LifetimePolicy(LifetimeSettings(max_lifetime_seconds=3600))
    snap = GrowingSnapshot(
        now=4000.0,
        segments=(
            seg(1, 10, created=400.0, last=3999.0),  # age exactly 3600: kept
            seg(2, 10, created=399.0, last=3999.0),  # age 3601, though busy
            seg(3, 0, created=0.0),  # empty and old: still pins the WAL
        ),
    )
    decisions = list(p.check_periodic(snap))
    assert ids(decisions) == [2, 3]
    assert {d.reason for d in decisions} == {SealReason.LIFETIME}


# --- growing bytes high-water mark ---------------------------------------------------


def hwm(**kw: Any) -> GrowingBytesHwmPolicy:
    return GrowingBytesHwmPolicy(GrowingBytesHwmSettings(**kw))


def test_hwm_seals_largest_first_and_stops_at_the_low_water_mark() -> None:
    p = hwm(high_watermark_bytes=100, low_watermark_bytes=40)
    snap = GrowingSnapshot(0.0, (seg(1, 10), seg(2, 30), seg(3, 50), seg(4, 20), seg(5, 0)))
    # total 110 > 100: seal 50 (-> 60, still > 40), then 30 (-> 30 <= 40): stop
    decisions = list(p.check_periodic(snap))
    assert ids(decisions) == [3, 2]
    assert {d.reason for d in decisions} == {SealReason.GROWING_BYTES_HWM}


def test_hwm_exactly_at_the_high_mark_does_nothing_and_stops_exactly_at_low() -> None:
    p = hwm(high_watermark_bytes=100, low_watermark_bytes=50)
    assert ids(p.check_periodic(GrowingSnapshot(0.0, (seg(1, 60), seg(2, 40))))) == []
    # 101 -> sealing 51 leaves exactly 50: at the low mark, so no second seal
    assert ids(p.check_periodic(GrowingSnapshot(0.0, (seg(1, 51), seg(2, 50))))) == [1]


def test_hwm_ties_are_broken_by_segment_id() -> None:
    p = hwm(high_watermark_bytes=10, low_watermark_bytes=5)
    assert ids(p.check_periodic(GrowingSnapshot(0.0, (seg(9, 8), seg(4, 8))))) == [4, 9]


def test_hwm_ratio_marks_use_total_memory_and_need_a_reading() -> None:
    p = hwm(high_watermark_ratio=0.2, low_watermark_ratio=0.1)
    segments = (seg(1, 150), seg(2, 100))  # 250 bytes
    assert list(p.check_periodic(GrowingSnapshot(0.0, segments, None))) == []
    roomy = MemoryReading(used_bytes=500, total_bytes=2000)  # marks 400 / 200
    assert list(p.check_periodic(GrowingSnapshot(0.0, segments, roomy))) == []
    tight = MemoryReading(used_bytes=500, total_bytes=1000)  # marks 200 / 100
    # 250 > 200: sealing 150 leaves 100, at the low mark
    assert ids(p.check_periodic(GrowingSnapshot(0.0, segments, tight))) == [1]
    tighter = MemoryReading(used_bytes=500, total_bytes=900)  # marks 180 / 90
    assert ids(p.check_periodic(GrowingSnapshot(0.0, segments, tighter))) == [1, 2]


@pytest.mark.parametrize(
    ("bad", "text"),
    [
        ({"high_watermark_bytes": 100}, "both"),
        ({"high_watermark_bytes": 100, "low_watermark_bytes": 100}, "below"),
        ({"high_watermark_ratio": 0.1, "low_watermark_ratio": 0.2}, "below"),
        ({"cooldown_seconds": -1}, "cooldown_seconds"),
    ],
)
def test_hwm_settings_errors(bad: dict[str, object], text: str) -> None:
    with pytest.raises(SettingsError, match=text):
        GrowingBytesHwmPolicy.load_settings(bad)


# --- memory pressure ----------------------------------------------------------------


def test_memory_pressure_seals_largest_until_expected_ratio_is_at_or_below_low() -> None:
    p = MemoryPressurePolicy(MemoryPressureSettings(high_watermark=0.8, low_watermark=0.6))
    segments = (seg(1, 50), seg(2, 150), seg(3, 100), seg(4, 10))
    # 900 of 1000 used: 900 -150 = 750, -100 = 650, -50 = 600 <= 600: stop
    decisions = list(p.check_periodic(GrowingSnapshot(0.0, segments, MemoryReading(900, 1000))))
    assert ids(decisions) == [2, 3, 1]
    assert {d.reason for d in decisions} == {SealReason.MEMORY_PRESSURE}


def test_memory_pressure_threshold_is_exclusive_and_needs_a_reading() -> None:
    p = MemoryPressurePolicy(MemoryPressureSettings(high_watermark=0.8, low_watermark=0.6))
    segments = (seg(1, 500),)
    assert list(p.check_periodic(GrowingSnapshot(0.0, segments, MemoryReading(800, 1000)))) == []
    assert list(p.check_periodic(GrowingSnapshot(0.0, segments, None))) == []
    assert ids(p.check_periodic(GrowingSnapshot(0.0, segments, MemoryReading(801, 1000)))) == [1]


def test_memory_pressure_seals_everything_non_empty_when_it_cannot_reach_low() -> None:
    p = MemoryPressurePolicy(MemoryPressureSettings(high_watermark=0.5, low_watermark=0.1))
    segments = (seg(1, 10), seg(2, 20), seg(3, 0))
    decided = p.check_periodic(GrowingSnapshot(0.0, segments, MemoryReading(990, 1000)))
    assert ids(decided) == [2, 1]


def test_memory_pressure_settings_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="low_watermark must be below"):
        MemoryPressurePolicy.load_settings({"high_watermark": 0.5, "low_watermark": 0.5})
    monkeypatch.setenv("WALSTREAM_SEGMENT_POLICY_MEMORY_PRESSURE_HIGH_WATERMARK", "1.5")
    with pytest.raises(
        SettingsError, match="WALSTREAM_SEGMENT_POLICY_MEMORY_PRESSURE_HIGH_WATERMARK"
    ):
        MemoryPressurePolicy.load_settings()


def test_idle_and_lifetime_settings_refuse_negatives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WALSTREAM_SEGMENT_POLICY_IDLE_MAX_IDLE_SECONDS", "-1")
    with pytest.raises(SettingsError, match="WALSTREAM_SEGMENT_POLICY_IDLE_MAX_IDLE_SECONDS"):
        IdlePolicy.load_settings()
    with pytest.raises(SettingsError, match="max_lifetime_seconds"):
        LifetimePolicy.load_settings({"max_lifetime_seconds": -0.5})
    with pytest.raises(SettingsError, match="min_bytes"):
        IdlePolicy.load_settings({"min_bytes": -1})
