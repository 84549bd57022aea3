"""The three object formats of zero-disk mode: block, fence and footer.

All integers big-endian; every object carries CRC32s so damage is detected, never
delivered.

Block object (``<block>.blk``)::

    header (56 bytes)
      4s  magic b"WPO1"
      u16 format version (1)      u16 flags (0)
      u64 segment                 u64 block number
      u64 first entry id          u32 entry count (>= 1)
      u64 writer term             u32 payload length
      u32 CRC32 of the payload    u32 CRC32 of the 52 header bytes before it
    payload: the entries, each a u32 length then the encoded message
             (the framing of local mode's blocks, ``walstream_woodpecker.block``)

Fence object, put at the first block number a fenced writer has not stored (28 bytes,
always smaller than any block object; a short object must still decode as a fence,
or it is a damaged block)::

    4s magic b"WPF1"  u16 version  u16 flags  u64 term  u64 generation  u32 CRC32

Footer object (``footer.blk``), written when a segment is completed::

    4s magic b"WPT1"  u16 version  u16 flags  u64 segment  u64 writer term
    u64 block count   i64 last entry id (-1: none)  u64 entry count
    per block: u64 number  u64 first entry  u32 entry count  u32 object size  u32 payload CRC
    u32 CRC32 of everything before it
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from walstream.errors import WALError

from walstream_woodpecker.block import CorruptBlockError, split_entries

FORMAT_VERSION = 1
BLOCK_MAGIC = b"WPO1"
FENCE_MAGIC = b"WPF1"
FOOTER_MAGIC = b"WPT1"

_BLOCK_HEAD = struct.Struct(">4sHHQQQIQII")
_U32 = struct.Struct(">I")
BLOCK_HEADER_SIZE = _BLOCK_HEAD.size + _U32.size  # 56
_FENCE = struct.Struct(">4sHHQQ")
FENCE_SIZE = _FENCE.size + _U32.size  # 28
_FOOTER_HEAD = struct.Struct(">4sHHQQQqQ")
_INDEX = struct.Struct(">QQIII")

assert FENCE_SIZE < BLOCK_HEADER_SIZE  # the size alone tells a fence from a block


class CorruptObjectError(WALError):
    """An object of the log fails its checks; the message names its key."""


@dataclass(frozen=True, slots=True)
class BlockInfo:
    """What a block's header says (and the object's size): also one footer index entry."""

    segment: int
    block: int
    first_entry: int
    entry_count: int
    term: int
    size: int
    payload_crc: int

    @property
    def next_entry(self) -> int:
        """The first entry id of the following block."""
        return self.first_entry + self.entry_count


@dataclass(frozen=True, slots=True)
class Fence:
    """A fence object's content: who fenced."""

    term: int
    generation: int


@dataclass(frozen=True, slots=True)
class Footer:
    """A completed segment's footer."""

    segment: int
    term: int
    blocks: tuple[BlockInfo, ...]

    @property
    def block_count(self) -> int:
        """Blocks in the segment."""
        return len(self.blocks)

    @property
    def last_entry(self) -> int:
        """The last entry id, -1 for an empty segment."""
        return self.blocks[-1].next_entry - 1 if self.blocks else -1


# --- blocks -------------------------------------------------------------------------


def encode_block(
    segment: int, block: int, first_entry: int, term: int, framed: Sequence[bytes]
) -> tuple[bytes, BlockInfo]:
    """A block object of entries already framed by ``block.frame_entry``, and its info."""
    if not framed:
        raise ValueError("a block holds at least one entry")
    payload = b"".join(framed)
    payload_crc = zlib.crc32(payload)
    head = _BLOCK_HEAD.pack(
        BLOCK_MAGIC,
        FORMAT_VERSION,
        0,
        segment,
        block,
        first_entry,
        len(framed),
        term,
        len(payload),
        payload_crc,
    )
    data = b"".join((head, _U32.pack(zlib.crc32(head)), payload))
    info = BlockInfo(segment, block, first_entry, len(framed), term, len(data), payload_crc)
    return data, info


def decode_block_header(key: str, raw: bytes, size: int | None = None) -> BlockInfo:
    """Check and decode the first ``BLOCK_HEADER_SIZE`` bytes of a block object."""
    if len(raw) < BLOCK_HEADER_SIZE:
        raise CorruptObjectError(
            f"block object {key!r}: {len(raw)} bytes, shorter than a block header"
        )
    (crc,) = _U32.unpack_from(raw, _BLOCK_HEAD.size)
    if zlib.crc32(raw[: _BLOCK_HEAD.size]) != crc:
        raise CorruptObjectError(f"block object {key!r}: the header fails its CRC32")
    magic, version, _flags, segment, block, first, count, term, length, payload_crc = (
        _BLOCK_HEAD.unpack_from(raw, 0)
    )
    if magic != BLOCK_MAGIC:
        raise CorruptObjectError(f"block object {key!r}: bad magic {magic!r}")
    if version != FORMAT_VERSION:
        raise CorruptObjectError(
            f"block object {key!r}: format version {version}, this reader knows {FORMAT_VERSION}"
        )
    if count < 1:
        raise CorruptObjectError(f"block object {key!r}: declares no entries")
    total = BLOCK_HEADER_SIZE + length
    if size is not None and size != total:
        raise CorruptObjectError(f"block object {key!r}: {size} bytes, but its header says {total}")
    return BlockInfo(segment, block, first, count, term, total, payload_crc)


def decode_block(
    key: str, raw: bytes, segment: int, block: int, first_entry: int | None
) -> tuple[BlockInfo, list[bytes]]:
    """Verify a whole block object (CRCs, position, framing); its info and entries.

    ``first_entry`` is the entry id the block must start at (None: not known yet)."""
    info = decode_block_header(key, raw, len(raw))
    payload = raw[BLOCK_HEADER_SIZE:]
    if zlib.crc32(payload) != info.payload_crc:
        raise CorruptObjectError(f"block object {key!r}: the payload fails its CRC32")
    if (info.segment, info.block) != (segment, block) or (
        first_entry is not None and info.first_entry != first_entry
    ):
        raise CorruptObjectError(
            f"block object {key!r} says segment {info.segment} block {info.block} first "
            f"entry {info.first_entry}; expected segment {segment} block {block}"
            + (f" first entry {first_entry}" if first_entry is not None else "")
        )
    try:
        entries = split_entries(payload, info.entry_count)
    except CorruptBlockError as exc:
        raise CorruptObjectError(f"block object {key!r}: {exc}") from None
    return info, entries


# --- fences ---------------------------------------------------------------------------


def encode_fence(term: int, generation: int) -> bytes:
    """The fence object of the owner ``(term, generation)``."""
    body = _FENCE.pack(FENCE_MAGIC, FORMAT_VERSION, 0, term, generation)
    return body + _U32.pack(zlib.crc32(body))


def decode_fence(raw: bytes) -> Fence | None:
    """The fence in ``raw``, or None if ``raw`` is not a (valid) fence object."""
    if len(raw) != FENCE_SIZE or raw[:4] != FENCE_MAGIC:
        return None
    (crc,) = _U32.unpack_from(raw, _FENCE.size)
    if zlib.crc32(raw[: _FENCE.size]) != crc:
        return None
    _magic, _version, _flags, term, generation = _FENCE.unpack_from(raw, 0)
    return Fence(term, generation)


def is_fence_size(size: int) -> bool:
    """Whether an object of ``size`` bytes is too short for a block: a fence, or damaged."""
    return size < BLOCK_HEADER_SIZE


# --- footers ------------------------------------------------------------------------------


def encode_footer(segment: int, term: int, blocks: Sequence[BlockInfo]) -> bytes:
    """The footer of ``segment`` holding ``blocks`` (in order, numbered from 0)."""
    last = blocks[-1].next_entry - 1 if blocks else -1
    entries = sum(b.entry_count for b in blocks)
    parts = [
        _FOOTER_HEAD.pack(
            FOOTER_MAGIC, FORMAT_VERSION, 0, segment, term, len(blocks), last, entries
        )
    ]
    parts.extend(
        _INDEX.pack(b.block, b.first_entry, b.entry_count, b.size, b.payload_crc) for b in blocks
    )
    body = b"".join(parts)
    return body + _U32.pack(zlib.crc32(body))


def decode_footer(key: str, raw: bytes, segment: int) -> Footer:
    """Check and decode a footer object."""
    if len(raw) < _FOOTER_HEAD.size + _U32.size:
        raise CorruptObjectError(f"footer {key!r}: {len(raw)} bytes, too short")
    (crc,) = _U32.unpack_from(raw, len(raw) - _U32.size)
    body = raw[: -_U32.size]
    if zlib.crc32(body) != crc:
        raise CorruptObjectError(f"footer {key!r} fails its CRC32")
    magic, version, _flags, seg, term, count, last, entries = _FOOTER_HEAD.unpack_from(body, 0)
    if magic != FOOTER_MAGIC or version != FORMAT_VERSION:
        raise CorruptObjectError(f"footer {key!r}: bad magic {magic!r} or version {version}")
    if seg != segment or len(body) != _FOOTER_HEAD.size + count * _INDEX.size:
        raise CorruptObjectError(
            f"footer {key!r}: says segment {seg} with {count} blocks in {len(body)} bytes"
        )
    blocks: list[BlockInfo] = []
    expect = 0
    for i in range(count):
        number, first, n, size, pcrc = _INDEX.unpack_from(body, _FOOTER_HEAD.size + i * _INDEX.size)
        if number != i or first != expect or n < 1:
            raise CorruptObjectError(f"footer {key!r}: index entry {i} is inconsistent")
        blocks.append(BlockInfo(seg, number, first, n, term, size, pcrc))
        expect = first + n
    if expect - 1 != last or expect != entries:
        raise CorruptObjectError(f"footer {key!r}: last entry {last} disagrees with its index")
    return Footer(seg, term, tuple(blocks))
