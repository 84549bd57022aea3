import os
import struct
from pathlib import Path

import pytest
from walstream_woodpecker.block import (
    HEADER_SIZE,
    CorruptBlockError,
    Cursor,
    ReadStatus,
    check_block,
    decode_header,
    encode_block,
    read_block,
    scan_valid_prefix,
    split_entries,
)

ENTRIES = [b"", b"a", b"hello world", bytes(range(256)) * 3]


def _decode(raw: bytes, expect: Cursor) -> list[bytes]:
    header = decode_header(raw[:HEADER_SIZE])
    assert header.size == len(raw)
    return check_block(header, raw[:HEADER_SIZE], raw[HEADER_SIZE:], expect)


def test_round_trip() -> None:
    raw = encode_block(3, 7, 41, ENTRIES)
    header = decode_header(raw[:HEADER_SIZE])
    assert (header.segment, header.block_no, header.first_entry, header.entry_count) == (
        3,
        7,
        41,
        4,
    )
    assert _decode(raw, Cursor(3, 0, 7, 41)) == ENTRIES


def test_empty_block_refused() -> None:
    with pytest.raises(ValueError):
        encode_block(0, 0, 0, [])


@pytest.mark.parametrize("position", [0, 5, 12, 20, 28, 32, 35, 36, 39, 40, 45, -1])
def test_any_flipped_byte_is_rejected(tmp_path: Path, position: int) -> None:
    raw = bytearray(encode_block(1, 2, 3, ENTRIES))
    raw[position] ^= 0x01
    path = tmp_path / "seg"
    path.write_bytes(bytes(raw))
    fd = os.open(path, os.O_RDONLY)
    try:
        result = read_block(fd, Cursor(1, 0, 2, 3))
    finally:
        os.close(fd)
    # a damaged length makes the block look longer (SHORT) or shorter (BAD): never OK
    assert result.status in (ReadStatus.BAD, ReadStatus.SHORT)
    assert result.entries == ()


@pytest.mark.parametrize(
    "expect", [Cursor(0, 0, 2, 3), Cursor(1, 0, 1, 3), Cursor(1, 0, 2, 4)], ids=str
)
def test_discontinuous_block_is_rejected(expect: Cursor) -> None:
    raw = encode_block(1, 2, 3, ENTRIES)
    with pytest.raises(CorruptBlockError, match="expected"):
        _decode(raw, expect)


def test_framing_must_match_count() -> None:
    data = struct.pack(">I", 1) + b"a"
    assert split_entries(data, 1) == [b"a"]
    with pytest.raises(CorruptBlockError):
        split_entries(data + b"z", 1)
    with pytest.raises(CorruptBlockError):
        split_entries(data, 2)
    with pytest.raises(CorruptBlockError):
        split_entries(struct.pack(">I", 5) + b"a", 1)


def test_header_sanity() -> None:
    raw = encode_block(0, 0, 0, [b"x"])
    with pytest.raises(CorruptBlockError, match="magic"):
        decode_header(b"XXXX" + raw[4:HEADER_SIZE])
    with pytest.raises(CorruptBlockError):
        decode_header(raw[: HEADER_SIZE - 1])


def test_read_block_statuses(tmp_path: Path) -> None:
    a = encode_block(0, 0, 0, [b"one", b"two"])
    b = encode_block(0, 1, 2, [b"three"])
    path = tmp_path / "seg"
    path.write_bytes(a + b)
    fd = os.open(path, os.O_RDONLY)
    try:
        first = read_block(fd, Cursor(0))
        assert first.status is ReadStatus.OK and first.entries == (b"one", b"two")
        assert first.header is not None
        second = read_block(fd, Cursor(0).after(first.header))
        assert second.status is ReadStatus.OK and second.entries == (b"three",)
        assert read_block(fd, Cursor(0, len(a) + len(b), 2, 3)).status is ReadStatus.END
        # a limit hides bytes not yet durable
        assert read_block(fd, Cursor(0, len(a), 1, 2), limit=len(a)).status is ReadStatus.END
        assert read_block(fd, Cursor(0, len(a), 1, 2), limit=len(a) + 10).status is ReadStatus.SHORT
        # a block at the wrong place is BAD
        assert read_block(fd, Cursor(0, len(a), 5, 2)).status is ReadStatus.BAD
        end, stop = scan_valid_prefix(fd, Cursor(0))
        assert end == Cursor(0, len(a) + len(b), 2, 3) and stop.status is ReadStatus.END
    finally:
        os.close(fd)
