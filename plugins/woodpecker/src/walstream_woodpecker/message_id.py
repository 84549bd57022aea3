"""Woodpecker message ids: ``(segment, entry)``, entry ids restart at 0 in every segment."""

from __future__ import annotations

from typing import ClassVar, Self

from walstream.errors import MessageDecodeError, MessageError
from walstream.message import MessageID
from walstream.message.message_id import marshal_int_tuple, unmarshal_int_tuple

ID_BITS = 48
"""Segment and entry numbers are below ``2**48``.

Far beyond any real log (a segment per second for nine million years), and it keeps
the top two bytes of each marshalled word zero, which lets ``unmarshal`` reject most
bytes that were never an id instead of decoding them into a far-away position.
"""
_ID_LIMIT = 1 << ID_BITS


class WoodpeckerMessageID(MessageID):
    """Position of an entry: segment number, then entry number inside that segment.

    Ordered lexicographically; marshals to 16 bytes (two big-endian u64), so the
    byte order of marshalled ids equals their order.
    """

    wal_name: ClassVar[str] = "woodpecker"
    __slots__ = ("_entry", "_segment")

    def __init__(self, segment: int, entry: int) -> None:
        for label, value in (("segment", segment), ("entry", entry)):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < _ID_LIMIT:
                raise MessageError(
                    f"woodpecker message id {label} must be an int in [0, 2**{ID_BITS}), "
                    f"got {value!r}"
                )
        self._segment = segment
        self._entry = entry

    @property
    def segment(self) -> int:
        """The segment (file) number."""
        return self._segment

    @property
    def entry(self) -> int:
        """The entry number inside the segment."""
        return self._entry

    def sort_key(self) -> tuple[int, int]:
        """``(segment, entry)``."""
        return (self._segment, self._entry)

    def marshal(self) -> bytes:
        """16 bytes: segment and entry as big-endian u64."""
        return marshal_int_tuple((self._segment, self._entry))

    @classmethod
    def unmarshal(cls, data: bytes) -> Self:
        """Inverse of ``marshal``; ``MessageDecodeError`` on anything else."""
        segment, entry = unmarshal_int_tuple(cls, data, 2)
        if segment >= _ID_LIMIT or entry >= _ID_LIMIT:
            raise MessageDecodeError(
                f"woodpecker message id {bytes(data)!r} is out of range: segment {segment}, "
                f"entry {entry} (both must be below 2**{ID_BITS}); these bytes are not an id"
            )
        return cls(segment, entry)
