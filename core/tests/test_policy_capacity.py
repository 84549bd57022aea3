"""The capacity policy: limits with jitter, sealing before an insert that does not fit, oversize inserts."""

import random
from pathlib import Path
from typing import Any

import pytest
from walstream.errors import SettingsError
from walstream.policy import (
    CapacityPolicy,
    CapacitySettings,
    GrowingSnapshot,
    InsertStats,
    InsertTooLargeError,
    SealPolicyChain,
    SealReason,
    SegmentLimits,
    SegmentStats,
)

pytestmark = pytest.mark.usefixtures("no_config")  # conftest.py: no user config file


def insert(rows: int = 1, size: int = 10) -> InsertStats:
    return InsertStats(collection_id=1, partition_id=2, vchannel="v0", rows=rows, binary_bytes=size)


def segment(
    segment_id: int = 7, rows: int = 0, size: int = 0, limits: SegmentLimits | None = None
) -> SegmentStats:
    return SegmentStats(
        segment_id=segment_id,
        collection_id=1,
        partition_id=2,
        vchannel="v0",
        limits=limits or SegmentLimits(max_rows=100, max_bytes=1000),
        created_at=0.0,
        last_insert_at=0.0,
        rows=rows,
        binary_bytes=size,
    )


def policy(**settings: Any) -> CapacityPolicy:
    base: dict[str, Any] = {"max_bytes": 10_000, "max_rows": 1_000, "seal_proportion": 0.1}
    return CapacityPolicy(CapacitySettings(**{**base, **settings}), rng=random.Random(1))


def test_insert_exactly_reaching_the_byte_limit_fits_one_more_byte_seals() -> None:
    p = policy()
    assert p.check_insert(segment(rows=1, size=990), insert(size=10)) is None
    decision = p.check_insert(segment(rows=1, size=990), insert(size=11))
    assert decision is not None
    assert decision.segment_id == 7 and decision.reason == SealReason.CAPACITY
    assert "1001 bytes" in decision.detail


def test_insert_exactly_reaching_the_row_limit_fits_one_more_row_seals() -> None:
    p = policy()
    assert p.check_insert(segment(rows=99, size=1), insert(rows=1, size=1)) is None
    decision = p.check_insert(segment(rows=99, size=1), insert(rows=2, size=1))
    assert decision is not None and decision.reason == "capacity"


def test_empty_segment_takes_an_insert_over_its_jittered_limit_but_within_the_maximum() -> None:
    p = policy()  # seal limit is <= 1000 bytes, maximum 10_000
    assert p.check_insert(segment(), insert(size=5_000)) is None
    assert p.check_insert(segment(rows=1, size=1), insert(size=5_000)) is not None


@pytest.mark.parametrize(
    ("rows", "size", "text"),
    [(1, 10_001, "10001 bytes"), (1_001, 5, "1001 rows")],
)
def test_insert_larger_than_a_whole_segment_is_refused_with_the_sizes(
    rows: int, size: int, text: str
) -> None:
    p = policy()
    with pytest.raises(InsertTooLargeError) as info:
        p.check_insert(segment(), insert(rows=rows, size=size))
    message = str(info.value)
    assert text in message and "at most 1000 rows / 10000 bytes" in message
    assert "'capacity'" in message and "split it" in message
    err = info.value
    assert (err.insert_rows, err.insert_bytes, err.max_rows, err.max_bytes) == (
        rows,
        size,
        1_000,
        10_000,
    )
    assert isinstance(err, ValueError)


def test_insert_exactly_the_maximum_is_accepted() -> None:
    assert policy().check_insert(segment(), insert(rows=1_000, size=10_000)) is None


def test_chain_refuses_an_oversize_insert_before_creating_a_segment() -> None:
    chain = SealPolicyChain([policy()])
    with pytest.raises(InsertTooLargeError):
        chain.assign([], insert(size=20_000), now=1.0)


def test_jittered_limits_stay_in_range_and_spread() -> None:
    p = policy(seal_proportion_jitter=0.2)
    drawn = [p.segment_limits() for _ in range(2_000)]
    sizes = [lim.max_bytes for lim in drawn]
    rows = [lim.max_rows for lim in drawn]
    # limit = jitter x max x proportion with jitter in [0.8, 1]: 800..1000 bytes, 80..100 rows
    assert min(sizes) >= 800 and max(sizes) <= 1000
    assert min(rows) >= 80 and max(rows) <= 100
    # a real spread over the whole range, not one value
    assert min(sizes) < 810 and max(sizes) > 990
    assert len(set(sizes)) > 100


def test_same_seed_same_limits_and_no_jitter_means_the_nominal_limit() -> None:
    a = CapacityPolicy(CapacitySettings(seed=42, max_bytes=10_000, seal_proportion=0.5))
    b = CapacityPolicy(CapacitySettings(seed=42, max_bytes=10_000, seal_proportion=0.5))
    assert [a.segment_limits() for _ in range(5)] == [b.segment_limits() for _ in range(5)]
    exact = policy(seal_proportion_jitter=0.0)
    assert {exact.segment_limits() for _ in range(20)} == {
        SegmentLimits(max_rows=100, max_bytes=1000)
    }


def test_periodic_seals_segments_at_their_limit_only() -> None:
    snap = GrowingSnapshot(
        now=10.0,
        segments=(
            segment(1, rows=5, size=1000),  # at the byte limit
            segment(2, rows=100, size=5),  # at the row limit
            segment(3, rows=99, size=999),  # just under both
            segment(4),  # empty
        ),
    )
    decided = list(policy().check_periodic(snap))
    assert [d.segment_id for d in decided] == [1, 2]
    assert {d.reason for d in decided} == {SealReason.CAPACITY}


@pytest.mark.parametrize(
    "bad",
    [
        {"seal_proportion": 0},
        {"seal_proportion": 1.5},
        {"seal_proportion_jitter": 1.0},
        {"seal_proportion_jitter": -0.1},
        {"max_bytes": 0},
        {"max_rows": -5},
    ],
)
def test_invalid_capacity_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(SettingsError, match=next(iter(bad))):
        CapacityPolicy.load_settings(bad)


def test_negative_env_and_misspelt_toml_name_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WALSTREAM_SEGMENT_POLICY_CAPACITY_MAX_BYTES", "-1")
    with pytest.raises(SettingsError, match=r"WALSTREAM_SEGMENT_POLICY_CAPACITY_MAX_BYTES"):
        CapacityPolicy.load_settings()
    monkeypatch.delenv("WALSTREAM_SEGMENT_POLICY_CAPACITY_MAX_BYTES")
    (tmp_path / "walstream.toml").write_text("[segment_policy.capacity]\nmax_byte = 5\n")
    with pytest.raises(SettingsError, match=r"max_byte: unknown setting.*known: .*max_bytes"):
        CapacityPolicy.load_settings()
    (tmp_path / "walstream.toml").write_text("[segment_policy.capacity]\nmax_bytes = 4096\n")
    assert CapacityPolicy().settings.max_bytes == 4096
