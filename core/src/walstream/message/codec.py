"""Byte encoding of a message for backends that store opaque entries.

Layout (all integers big-endian)::

    b"WSM1"                         magic and format version
    u32 property count
    per property: u32 key length, key UTF-8, u32 value length, value UTF-8
    u32 payload length, payload

Decoding checks every length against the bytes that remain, so malformed input
raises ``MessageDecodeError`` quickly and never allocates more than it was given.
"""

from __future__ import annotations

import struct

from walstream.errors import MessageDecodeError, MessageTooLargeError
from walstream.message.message import Message

MAGIC = b"WSM1"
_U32 = struct.Struct(">I")
DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024


_key_parts: dict[str, bytes] = {}
"""Length prefix and UTF-8 of each property key seen (a few dozen names in a process)."""
_KEY_PARTS_MAX = 1024


def encode(message: Message, limit: int | None = None, where: str = "the WAL") -> bytes:
    """Encode payload and properties into one entry.

    With ``limit``, refuse a message whose ``size`` is over it (``MessageTooLargeError``
    naming ``where``); checking here costs nothing extra, the bytes are counted anyway.
    """
    pack = _U32.pack
    props = message._properties  # the dict itself: no read-only view per message
    payload = message.payload
    parts: list[bytes] = [MAGIC, pack(len(props))]
    append = parts.append
    key_parts = _key_parts
    size = len(payload)
    for key, value in props.items():
        # Every message repeats the same few keys: their bytes are made once.
        kp = key_parts.get(key)
        if kp is None:
            kb = key.encode()
            kp = pack(len(kb)) + kb
            if len(key_parts) < _KEY_PARTS_MAX:
                key_parts[key] = kp
        vb = value.encode()
        size += len(kp) - 4 + len(vb)
        append(kp)
        append(pack(len(vb)))
        append(vb)
    if limit is not None and size > limit:
        raise MessageTooLargeError(size, limit, where)
    message._size = size  # counted anyway: spares the next reader of ``size`` a second pass
    append(pack(len(payload)))
    append(payload)
    return b"".join(parts)


def decode(data: bytes | memoryview) -> tuple[bytes, dict[str, str]]:
    """Decode an entry into ``(payload, properties)``."""
    view = memoryview(data)
    end = len(view)
    if end < 12 or view[:4] != MAGIC:
        raise MessageDecodeError(
            f"not a walstream message: expected magic {MAGIC!r}, got {bytes(view[:4])!r} ({end} bytes)"
        )
    pos = 4

    def take_len() -> int:
        nonlocal pos
        if pos + 4 > end:
            raise MessageDecodeError(f"message truncated at byte {pos} of {end}")
        (n,) = _U32.unpack_from(view, pos)
        pos += 4
        if n > end - pos:
            raise MessageDecodeError(
                f"length {n} at byte {pos - 4} runs past the end ({end} bytes)"
            )
        return int(n)

    def take_text() -> str:
        nonlocal pos
        n = take_len()
        raw = view[pos : pos + n]
        pos += n
        try:
            return str(raw, "utf-8")
        except UnicodeDecodeError as exc:
            raise MessageDecodeError(
                f"property text at byte {pos - n} is not UTF-8: {exc.reason}"
            ) from exc

    if pos + 4 > end:
        raise MessageDecodeError("message truncated before the property count")
    (nprops,) = _U32.unpack_from(view, pos)
    pos += 4
    if nprops * 8 > end - pos:
        raise MessageDecodeError(
            f"property count {nprops} cannot fit in {end - pos} remaining bytes"
        )
    props: dict[str, str] = {}
    for _ in range(nprops):
        key = take_text()
        value = take_text()
        if key in props:
            raise MessageDecodeError(f"property {key!r} appears twice")
        props[key] = value
    n = take_len()
    payload = bytes(view[pos : pos + n])
    pos += n
    if pos != end:
        raise MessageDecodeError(f"{end - pos} trailing bytes after the payload")
    return payload, props


def check_size(message: Message, limit: int, where: str) -> None:
    """Refuse a message whose ``size`` is over ``limit``, naming the limit."""
    size = message.size
    if size > limit:
        raise MessageTooLargeError(size, limit, where)
