"""Helpers shared by the woodpecker unit tests (imported by name: conftest puts this
directory on ``sys.path``, as ``--import-mode=importlib`` does not)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from walstream.message import ImmutableMessage, MutableMessage
from walstream.testing.wal_contract import read_idle, read_n
from walstream.walimpls import AccessMode, PChannelInfo, ReadOption, WALImpl
from walstream_woodpecker import WoodpeckerOpener
from walstream_woodpecker.block import HEADER_SIZE, BlockHeader, decode_header
from walstream_woodpecker.layout import ChannelLayout

OpenerFactory = Callable[..., WoodpeckerOpener]


def msg(i: int | str, size: int = 0) -> MutableMessage:
    """A raw message tagged ``n=i``."""
    return MutableMessage.raw(f"payload {i}".encode() + b"x" * size, {"n": str(i)})


def rw(name: str = "ch", term: int = 1) -> PChannelInfo:
    """A read-write pchannel."""
    return PChannelInfo(name, term, AccessMode.RW)


def ro(name: str = "ch", term: int = 1) -> PChannelInfo:
    """A read-only pchannel."""
    return PChannelInfo(name, term, AccessMode.RO)


async def read_all(
    wal: WALImpl, option: ReadOption | None = None, quiet: float = 0.15
) -> list[ImmutableMessage]:
    """Open a scanner, read until idle, close it."""
    scanner = await wal.read(option or ReadOption("all"))
    try:
        return await read_idle(scanner, quiet)
    finally:
        await scanner.close()


def tags(messages: list[ImmutableMessage]) -> list[str]:
    """The ``n`` property of each message."""
    return [m.properties["n"] for m in messages]


def block_headers(path: Path) -> list[tuple[int, BlockHeader]]:
    """``(offset, header)`` of every block in a segment file (no CRC check)."""
    data = path.read_bytes()
    out = []
    pos = 0
    while pos + HEADER_SIZE <= len(data):
        header = decode_header(data[pos : pos + HEADER_SIZE])
        out.append((pos, header))
        pos += header.size
    return out


def segments(root: Path, name: str = "ch") -> list[int]:
    """Existing segment numbers of pchannel ``name``."""
    return ChannelLayout(root / name).list_segments()


# read_idle and read_n come from the contract suite; tests import every helper from here
__all__ = [
    "OpenerFactory",
    "block_headers",
    "msg",
    "read_all",
    "read_idle",
    "read_n",
    "ro",
    "rw",
    "segments",
    "tags",
]
