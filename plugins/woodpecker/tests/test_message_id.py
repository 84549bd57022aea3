import pytest
from walstream.errors import MessageDecodeError, MessageError
from walstream_woodpecker import WoodpeckerMessageID as ID


def test_order_is_lexicographic() -> None:
    ids = [ID(0, 0), ID(0, 1), ID(0, 500), ID(1, 0), ID(2, 3)]
    assert sorted(reversed(ids)) == ids
    assert ID(1, 0) > ID(0, 10**9)
    assert ID(3, 4) == ID(3, 4) and hash(ID(3, 4)) == hash(ID(3, 4))


def test_marshal_is_16_bytes_and_byte_order_is_id_order() -> None:
    ids = [ID(0, 0), ID(0, 255), ID(1, 0), ID(2**40, 7)]
    raw = [i.marshal() for i in ids]
    assert all(len(r) == 16 for r in raw)
    assert sorted(raw) == raw
    assert [ID.unmarshal(r) for r in raw] == ids
    assert ID(5, 6).marshal() == (5).to_bytes(8, "big") + (6).to_bytes(8, "big")


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\x00", b"x" * 15, b"x" * 17, b"not an id at all", b"\xff" * 16, "text"],
)
def test_unmarshal_garbage_raises(garbage: bytes) -> None:
    with pytest.raises(MessageDecodeError):
        ID.unmarshal(garbage)


@pytest.mark.parametrize("bad", [-1, 2**48, True, 1.5, "1"])
def test_constructor_validates(bad: object) -> None:
    with pytest.raises(MessageError):
        ID(bad, 0)  # type: ignore[arg-type]
    with pytest.raises(MessageError):
        ID(0, bad)  # type: ignore[arg-type]


def test_property_round_trip() -> None:
    assert ID.from_property(ID(9, 8).to_property()) == ID(9, 8)
