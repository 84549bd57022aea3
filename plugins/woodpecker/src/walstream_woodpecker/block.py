"""The block: the unit a segment file is made of and the unit of one flush.

Layout (integers big-endian)::

    header (40 bytes)
      4s  magic b"WPB1"
      u64 segment number      (catches a block read from the wrong file)
      u64 block number        (0, 1, 2, ... inside the segment)
      u64 first entry id      (entry ids restart at 0 in every segment)
      u32 entry count         (>= 1)
      u32 data length
      u32 CRC32 over the 36 header bytes before it and the data
    data
      per entry: u32 length, then the ``walstream.message.codec.encode`` bytes

A block is valid only if it is complete, its CRC matches, its fields continue the
previous block (same segment, next block number, next entry id) and its data splits
exactly into ``entry count`` entries. Readers and recovery trust only the valid
prefix of a segment: whatever follows the first invalid block was never acknowledged.
"""

from __future__ import annotations

import enum
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

MAGIC = b"WPB1"
_HEADER = struct.Struct(">4sQQQII")
_CRC = struct.Struct(">I")
_LEN = struct.Struct(">I")
HEADER_SIZE = _HEADER.size + _CRC.size  # 40


class CorruptBlockError(ValueError):
    """Bytes are not a valid block (bad magic, CRC, framing or continuity)."""


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """The decoded fixed header of a block."""

    segment: int
    block_no: int
    first_entry: int
    entry_count: int
    data_length: int
    crc: int

    @property
    def size(self) -> int:
        """Header plus data, in bytes."""
        return HEADER_SIZE + self.data_length


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next block of a segment must start and what it must say."""

    segment: int
    offset: int = 0
    block_no: int = 0
    entry: int = 0

    def after(self, header: BlockHeader) -> Cursor:
        """The cursor just past ``header``'s block."""
        return Cursor(
            self.segment,
            self.offset + header.size,
            header.block_no + 1,
            header.first_entry + header.entry_count,
        )


def frame_entry(entry: bytes) -> bytes:
    """One entry as it sits inside a block's data: u32 length, then the bytes."""
    return _LEN.pack(len(entry)) + entry


def encode_framed_block(
    segment: int, block_no: int, first_entry: int, framed: Sequence[bytes]
) -> bytes:
    """One block of entries already passed through ``frame_entry``."""
    if not framed:
        raise ValueError("a block holds at least one entry")
    data = b"".join(framed)
    head = _HEADER.pack(MAGIC, segment, block_no, first_entry, len(framed), len(data))
    crc = zlib.crc32(data, zlib.crc32(head))
    return b"".join((head, _CRC.pack(crc), data))


def encode_block(segment: int, block_no: int, first_entry: int, entries: Sequence[bytes]) -> bytes:
    """Frame ``entries`` into one block."""
    return encode_framed_block(segment, block_no, first_entry, [frame_entry(e) for e in entries])


def decode_header(raw: bytes) -> BlockHeader:
    """Decode the 40 header bytes; the CRC is checked later, with the data."""
    if len(raw) < HEADER_SIZE:
        raise CorruptBlockError(f"block header needs {HEADER_SIZE} bytes, got {len(raw)}")
    magic, segment, block_no, first, count, length = _HEADER.unpack_from(raw, 0)
    if magic != MAGIC:
        raise CorruptBlockError(f"bad block magic {magic!r}")
    if count < 1:
        raise CorruptBlockError("block declares no entries")
    if length < 4 * count:
        raise CorruptBlockError(f"block data length {length} cannot hold {count} entries")
    (crc,) = _CRC.unpack_from(raw, _HEADER.size)
    return BlockHeader(segment, block_no, first, count, length, crc)


def check_block(header: BlockHeader, raw_header: bytes, data: bytes, expect: Cursor) -> list[bytes]:
    """Verify CRC, continuity and framing; return the entries' encoded bytes."""
    crc = zlib.crc32(data, zlib.crc32(raw_header[: _HEADER.size]))
    if crc != header.crc:
        raise CorruptBlockError(
            f"block CRC mismatch (stored {header.crc:#010x}, computed {crc:#010x})"
        )
    if (header.segment, header.block_no, header.first_entry) != (
        expect.segment,
        expect.block_no,
        expect.entry,
    ):
        raise CorruptBlockError(
            f"block says segment {header.segment} block {header.block_no} first entry "
            f"{header.first_entry}; expected segment {expect.segment} block {expect.block_no} "
            f"first entry {expect.entry}"
        )
    return split_entries(data, header.entry_count)


def split_entries(data: bytes, count: int) -> list[bytes]:
    """Cut block data into exactly ``count`` length-prefixed entries."""
    entries: list[bytes] = []
    pos = 0
    end = len(data)
    view = memoryview(data)
    for _ in range(count):
        if pos + 4 > end:
            raise CorruptBlockError(f"entry length at byte {pos} runs past the block data")
        (n,) = _LEN.unpack_from(view, pos)
        pos += 4
        if n > end - pos:
            raise CorruptBlockError(f"entry of {n} bytes at byte {pos} runs past the block data")
        entries.append(bytes(view[pos : pos + n]))
        pos += n
    if pos != end:
        raise CorruptBlockError(f"{end - pos} stray bytes after the last entry of the block")
    return entries


class ReadStatus(enum.Enum):
    """Outcome of reading the block at a cursor."""

    OK = "ok"
    END = "end"  # nothing (visible) at the cursor yet
    SHORT = "short"  # part of a block: being written, or torn by a crash
    BAD = "bad"  # complete but invalid: corrupt, or not the block that should come next


@dataclass(frozen=True, slots=True)
class BlockRead:
    """One block read from a file: its status, and header and entries when OK."""

    status: ReadStatus
    header: BlockHeader | None = None
    entries: tuple[bytes, ...] = ()
    reason: str = ""


def read_block(fd: int, at: Cursor, limit: int | None = None) -> BlockRead:
    """Read and verify the block at ``at.offset`` of the open file ``fd``.

    ``limit`` hides bytes at or past that offset (a writer in this process has not
    made them durable yet), so such a block reads as END or SHORT, never OK.
    """
    visible = os.fstat(fd).st_size
    if limit is not None:
        visible = min(visible, limit)
    remaining = visible - at.offset
    if remaining <= 0:
        return BlockRead(ReadStatus.END)
    if remaining < HEADER_SIZE:
        return BlockRead(ReadStatus.SHORT, reason=f"{remaining} bytes, less than a header")
    raw_header = os.pread(fd, HEADER_SIZE, at.offset)
    if len(raw_header) < HEADER_SIZE:
        return BlockRead(ReadStatus.SHORT, reason="header read came back short")
    try:
        header = decode_header(raw_header)
    except CorruptBlockError as exc:
        return BlockRead(ReadStatus.BAD, reason=str(exc))
    if header.size > remaining:
        return BlockRead(
            ReadStatus.SHORT, header, reason=f"block of {header.size} bytes, {remaining} present"
        )
    data = _pread_exact(fd, header.data_length, at.offset + HEADER_SIZE)
    if len(data) < header.data_length:
        return BlockRead(ReadStatus.SHORT, header, reason="data read came back short")
    try:
        entries = check_block(header, raw_header, data, at)
    except CorruptBlockError as exc:
        return BlockRead(ReadStatus.BAD, header, reason=str(exc))
    return BlockRead(ReadStatus.OK, header, tuple(entries))


def _pread_exact(fd: int, n: int, offset: int) -> bytes:
    # pread may return fewer bytes than asked for large reads; loop until EOF or done.
    chunks: list[bytes] = []
    got = 0
    while got < n:
        chunk = os.pread(fd, n - got, offset + got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def scan_valid_prefix(fd: int, start: Cursor, limit: int | None = None) -> tuple[Cursor, BlockRead]:
    """Walk blocks from ``start`` while they are valid; return the cursor past the last
    valid one and the read that stopped the walk (END, SHORT or BAD)."""
    cursor = start
    while True:
        result = read_block(fd, cursor, limit)
        if result.status is not ReadStatus.OK:
            return cursor, result
        assert result.header is not None
        cursor = cursor.after(result.header)
