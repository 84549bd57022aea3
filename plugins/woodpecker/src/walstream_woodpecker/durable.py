"""Small durable files: atomic replace with fsync, and CRC-checked fixed records.

The fence marker and the truncation point are tiny records that must never be seen
half-written: they are written to a temporary file, fsynced, renamed over the old
one and the directory is fsynced, so a crash leaves either the old or the new record.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from walstream.errors import WALError

_CRC = struct.Struct(">I")
TEMP_GLOB = ".*.tmp-*"
"""Names of ``atomic_write``'s temporary files."""


def fsync_dir(path: Path) -> None:
    """Make the directory entries of ``path`` (creations, renames, deletions) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new content."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


class Record:
    """A fixed-layout record: magic, integer fields, CRC32 over everything before it."""

    def __init__(self, magic: bytes, fields: str, what: str) -> None:
        self._body = struct.Struct(">4s" + fields)
        self._magic = magic
        self._what = what

    def pack(self, *values: int) -> bytes:
        """Encode ``values`` with magic and CRC."""
        body = self._body.pack(self._magic, *values)
        return body + _CRC.pack(zlib.crc32(body))

    def unpack(self, raw: bytes, path: Path) -> tuple[int, ...]:
        """Decode, raising ``WALError`` (naming ``path``) on any damage."""
        if len(raw) != self._body.size + _CRC.size:
            raise WALError(
                f"{self._what} {path} has {len(raw)} bytes, expected "
                f"{self._body.size + _CRC.size}: the file is damaged"
            )
        body = raw[: self._body.size]
        (crc,) = _CRC.unpack_from(raw, self._body.size)
        if crc != zlib.crc32(body) or body[:4] != self._magic:
            raise WALError(f"{self._what} {path} fails its checksum: the file is damaged")
        return tuple(self._body.unpack(body)[1:])

    def read(self, path: Path) -> tuple[int, ...] | None:
        """The record at ``path``, or None if there is none."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        return self.unpack(raw, path)

    def write(self, path: Path, *values: int) -> None:
        """Atomically replace the record at ``path``."""
        atomic_write(path, self.pack(*values))
