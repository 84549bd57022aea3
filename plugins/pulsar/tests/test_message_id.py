"""PulsarMessageID: order, marshal round trip with Pulsar's own serialization, garbage refused."""

from __future__ import annotations

import pulsar  # type: ignore[import-untyped]
import pytest
from walstream.errors import MessageDecodeError, MessageError, MessageIDMismatchError
from walstream.message import MessageID
from walstream_pulsar import PulsarMessageID

ORDERED = [
    (0, 0, -1),
    (0, 0, 0),
    (0, 0, 1),
    (0, 1, -1),
    (5, 0, 3),
    (5, 1, -1),
    (6, 0, 0),
    (1 << 40, 7, 2),
]


def test_order_and_equality() -> None:
    ids = [PulsarMessageID(*t) for t in ORDERED]
    for i, a in enumerate(ids):
        for j, b in enumerate(ids):
            assert (a < b) == (i < j)
            assert (a <= b) == (i <= j)
            assert (a == b) == (i == j)
            assert a.lt(b) == (i < j) and a.lte(b) == (i <= j) and a.eq(b) == (i == j)


@pytest.mark.parametrize("fields", ORDERED)
def test_marshal_is_pulsars_serialize(fields: tuple[int, int, int]) -> None:
    mid = PulsarMessageID(*fields)
    raw = mid.marshal()
    ledger, entry, batch = fields
    assert raw == pulsar.MessageId(-1, ledger, entry, batch).serialize()
    back = PulsarMessageID.unmarshal(raw)
    assert back == mid and hash(back) == hash(mid)
    assert (back.ledger_id, back.entry_id, back.batch_index, back.partition) == (
        ledger,
        entry,
        batch,
        -1,
    )
    assert PulsarMessageID.from_property(mid.to_property()) == mid


def test_from_and_to_pulsar() -> None:
    native = pulsar.MessageId(-1, 12, 34, 5)
    mid = PulsarMessageID.from_pulsar(native)
    assert mid.sort_key() == (-1, 12, 34, 5)
    assert PulsarMessageID.from_pulsar(mid.to_pulsar()) == mid
    assert PulsarMessageID.from_receipt(native._msg_id) == mid
    with pytest.raises(MessageDecodeError):
        PulsarMessageID.from_receipt(pulsar.MessageId.latest)


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\x00",
        b"\x08\x05",
        b"not a message id!",
        b"\xff" * 33,
        pulsar.MessageId.earliest.serialize(),
        pulsar.MessageId.latest.serialize(),
        "text",
    ],
)
def test_garbage_is_refused(garbage: object) -> None:
    with pytest.raises(MessageDecodeError):
        PulsarMessageID.unmarshal(garbage)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad", [(-1, 0, -1), (0, -1, -1), (0, 0, -2), (1.5, 0, -1), (True, 0, -1), (1 << 63, 0, -1)]
)
def test_invalid_fields_are_refused(bad: tuple[object, object, object]) -> None:
    with pytest.raises(MessageError):
        PulsarMessageID(*bad)  # type: ignore[arg-type]


def test_no_comparison_across_backends() -> None:
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
        _ = PulsarMessageID(0, 0) < Other()
