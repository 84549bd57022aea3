"""The reorder buffer: log order in, strictly increasing timetick order out."""

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
from walstream.backends.memory import MemoryMessageID
from walstream.message import ImmutableMessage, MessageType, new_message
from walstream.wal import PushResult, ReorderBuffer


def msg(tt: int, mid: int, payload: bytes = b"x") -> ImmutableMessage:
    return (
        new_message(MessageType.INSERT, vchannel="v1", payload=payload)
        .with_timetick(tt)
        .into_immutable(MemoryMessageID(mid))
    )


def test_pops_in_timetick_order_up_to_the_bound() -> None:
    buf = ReorderBuffer()
    for tt, mid in [(30, 0), (10, 1), (20, 2), (50, 3)]:
        assert buf.push(msg(tt, mid)) is PushResult.ACCEPTED
    assert len(buf) == 4
    assert [m.timetick for m in buf.pop_until(30)] == [10, 20, 30]
    assert len(buf) == 1
    assert buf.pop_until(40) == []
    assert [m.timetick for m in buf.pop_until(50)] == [50]
    assert len(buf) == 0
    assert buf.bytes == 0


def test_bytes_track_what_is_held() -> None:
    buf = ReorderBuffer()
    a, b = msg(2, 0, b"a" * 100), msg(1, 1, b"b" * 7)
    buf.push(a)
    buf.push(b)
    assert buf.bytes == a.size + b.size
    buf.pop_until(1)
    assert buf.bytes == a.size


def test_duplicate_id_is_dropped_and_counted() -> None:
    buf = ReorderBuffer()
    assert buf.push(msg(5, 7)) is PushResult.ACCEPTED
    assert buf.push(msg(5, 7)) is PushResult.DUPLICATE
    assert buf.duplicates == 1
    assert len(buf) == 1
    assert [m.message_id for m in buf.pop_until(5)] == [MemoryMessageID(7)]


def test_message_below_the_released_timetick_is_a_violation() -> None:
    buf = ReorderBuffer()
    buf.push(msg(10, 0))
    buf.pop_until(20)
    assert buf.released_timetick == 20
    assert buf.push(msg(15, 1)) is PushResult.TIMETICK_VIOLATION
    assert buf.violations == 1
    assert len(buf) == 0
    # at the bound itself, nothing with that timetick was emitted yet: still deliverable
    assert buf.push(msg(20, 2)) is PushResult.ACCEPTED
    assert [m.timetick for m in buf.pop_until(20)] == [20]
    # but a second message at an already emitted timetick would repeat it
    assert buf.push(msg(20, 3)) is PushResult.TIMETICK_VIOLATION
    assert buf.violations == 2


def test_repushing_a_popped_message_is_refused() -> None:
    buf = ReorderBuffer()
    buf.push(msg(10, 0))
    assert len(buf.pop_until(10)) == 1
    assert buf.push(msg(10, 0)) is PushResult.TIMETICK_VIOLATION
    assert buf.pop_until(10) == []


def test_a_lower_bound_later_does_not_move_the_release_back() -> None:
    buf = ReorderBuffer()
    buf.pop_until(100)
    buf.pop_until(50)
    assert buf.released_timetick == 100
    assert buf.push(msg(60, 0)) is PushResult.TIMETICK_VIOLATION


@st.composite
def workloads(draw: st.DrawFn) -> tuple[list[int], list[list[int]], list[int]]:
    """Distinct timeticks split into tick windows, with the arrival order of each window.

    A message with timetick in window k may be written before any earlier tick
    (appends are concurrent) but always before tick k. Returns the tick values,
    the timeticks arriving in each segment (before each tick, shuffled) and the
    timeticks to re-send as duplicates.
    """
    tts = sorted(draw(st.sets(st.integers(1, 10_000), min_size=1, max_size=60)))
    n_windows = draw(st.integers(1, min(8, len(tts))))
    cuts = (
        sorted(draw(st.sets(st.integers(1, len(tts) - 1), max_size=n_windows - 1)))
        if len(tts) > 1
        else []
    )
    bounds = [*cuts, len(tts)]
    ticks = [tts[b - 1] for b in bounds]
    segments: list[list[int]] = [[] for _ in ticks]
    start = 0
    for k, b in enumerate(bounds):
        for tt in tts[start:b]:
            segments[draw(st.integers(0, k))].append(tt)
        start = b
    segments = [draw(st.permutations(s)) for s in segments]
    dups = draw(st.lists(st.sampled_from(tts), max_size=5))
    return ticks, segments, dups


@settings(max_examples=200, deadline=None)
@given(workloads())
def test_random_arrival_within_tick_windows(
    work: tuple[list[int], list[list[int]], list[int]],
) -> None:
    ticks, segments, dups = work
    buf = ReorderBuffer()
    ids = {tt: i for i, tt in enumerate(sorted(tt for s in segments for tt in s))}
    out: list[int] = []
    batches: list[list[int]] = []
    expected_dups = 0
    for tick, segment in zip(ticks, segments, strict=True):
        for tt in segment:
            assert buf.push(msg(tt, ids[tt])) is PushResult.ACCEPTED
            if tt in dups:  # a duplicate (same id) while the original is still held
                assert buf.push(msg(tt, ids[tt])) is PushResult.DUPLICATE
                expected_dups += 1
        batch = [m.timetick for m in buf.pop_until(tick)]
        batches.append(batch)
        out += batch
    assert out == sorted(ids), "nothing lost, nothing repeated, strictly increasing"
    assert all(a < b for a, b in itertools.pairwise(out))
    prev = 0
    for tick, batch in zip(ticks, batches, strict=True):
        assert all(prev < tt <= tick for tt in batch)
        prev = tick
    assert buf.duplicates == expected_dups
    assert buf.violations == 0
    assert len(buf) == 0
    assert buf.bytes == 0
    # one message that shows up after its window was released
    late = ticks[-1] - 1
    if late > 0:
        assert buf.push(msg(late, 10**6)) is PushResult.TIMETICK_VIOLATION
        assert buf.violations == 1
