"""KafkaMessageID: order, marshal round trip, garbage refused."""

from __future__ import annotations

import pytest
from walstream.errors import MessageDecodeError, MessageError, MessageIDMismatchError
from walstream_kafka import KafkaMessageID
from walstream_kafka.message_id import MAX_OFFSET


def test_order_and_equality() -> None:
    ids = [KafkaMessageID(o) for o in (0, 1, 2, 255, 256, 2**32, MAX_OFFSET)]
    for i, a in enumerate(ids):
        for j, b in enumerate(ids):
            assert (a < b) == (i < j)
            assert (a <= b) == (i <= j)
            assert (a == b) == (i == j)
            assert a.lt(b) == (i < j) and a.lte(b) == (i <= j) and a.eq(b) == (i == j)


@pytest.mark.parametrize("offset", [0, 1, 7, 1 << 40, MAX_OFFSET])
def test_marshal_round_trip(offset: int) -> None:
    mid = KafkaMessageID(offset)
    raw = mid.marshal()
    assert len(raw) == 8 and raw == offset.to_bytes(8, "big")
    back = KafkaMessageID.unmarshal(raw)
    assert back == mid and hash(back) == hash(mid) and back.offset == offset
    assert KafkaMessageID.from_property(mid.to_property()) == mid


def test_marshalled_bytes_sort_like_ids() -> None:
    offsets = [0, 1, 255, 256, 65535, 1 << 33, MAX_OFFSET]
    assert sorted(KafkaMessageID(o).marshal() for o in offsets) == [
        KafkaMessageID(o).marshal() for o in offsets
    ]


@pytest.mark.parametrize(
    "garbage", [b"", b"\x00", b"\x00" * 7, b"\x00" * 9, b"\x80" + b"\x00" * 7, b"\xff" * 8, "text"]
)
def test_garbage_is_refused(garbage: object) -> None:
    with pytest.raises(MessageDecodeError):
        KafkaMessageID.unmarshal(garbage)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, MAX_OFFSET + 1, 1.5, True, "3"])
def test_invalid_offsets_are_refused(bad: object) -> None:
    with pytest.raises(MessageError):
        KafkaMessageID(bad)  # type: ignore[arg-type]


def test_no_comparison_across_backends() -> None:
    from walstream.message import MessageID

    class Other(MessageID):
        wal_name = "other"

        def sort_key(self) -> tuple[int, ...]:
            return (0,)

        def marshal(self) -> bytes:
            return b""

        @classmethod
        def unmarshal(cls, data: bytes) -> Other:
            return cls()

    with pytest.raises(MessageIDMismatchError):
        _ = KafkaMessageID(0) < Other()
