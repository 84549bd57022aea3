"""The MessageID protocol every backend implements.

A MessageID names one message in one pchannel of one backend. Ids of a backend
are totally ordered within a pchannel; ids of two backends are not comparable,
and comparing them is an error rather than a silent ``False``.
"""

from __future__ import annotations

import base64
import binascii
from abc import ABC, abstractmethod
from typing import ClassVar, Self

from walstream.errors import MessageDecodeError, MessageIDMismatchError


class MessageID(ABC):
    """Position of a message in a pchannel; ordered, hashable, marshallable."""

    wal_name: ClassVar[str]
    __slots__ = ()

    @abstractmethod
    def sort_key(self) -> tuple[int, ...]:
        """The tuple that orders ids of this backend."""

    @abstractmethod
    def marshal(self) -> bytes:
        """Encode to bytes; ``unmarshal`` gives back an equal id."""

    @classmethod
    @abstractmethod
    def unmarshal(cls, data: bytes) -> Self:
        """Decode bytes from ``marshal``; raise ``MessageDecodeError`` on anything else."""

    def _same_backend(self, other: object) -> MessageID | None:
        if not isinstance(other, MessageID):
            return None
        if type(other) is not type(self) or other.wal_name != self.wal_name:
            raise MessageIDMismatchError(
                f"cannot compare {type(self).__name__} ({self.wal_name!r}) with "
                f"{type(other).__name__} ({other.wal_name!r}): ids are only ordered within one backend"
            )
        return other

    def __lt__(self, other: object) -> bool:
        o = self._same_backend(other)
        if o is None:
            return NotImplemented
        return self.sort_key() < o.sort_key()

    def __le__(self, other: object) -> bool:
        o = self._same_backend(other)
        if o is None:
            return NotImplemented
        return self.sort_key() <= o.sort_key()

    def __gt__(self, other: object) -> bool:
        o = self._same_backend(other)
        if o is None:
            return NotImplemented
        return self.sort_key() > o.sort_key()

    def __ge__(self, other: object) -> bool:
        o = self._same_backend(other)
        if o is None:
            return NotImplemented
        return self.sort_key() >= o.sort_key()

    def __eq__(self, other: object) -> bool:
        o = self._same_backend(other)
        if o is None:
            return NotImplemented
        return self.sort_key() == o.sort_key()

    def __hash__(self) -> int:
        return hash((self.wal_name, self.sort_key()))

    def lt(self, other: MessageID) -> bool:
        """Strictly before ``other`` (Milvus ``LT``)."""
        return self < other

    def lte(self, other: MessageID) -> bool:
        """Before or equal to ``other`` (Milvus ``LTE``)."""
        return self <= other

    def eq(self, other: MessageID) -> bool:
        """Same position as ``other`` (Milvus ``EQ``)."""
        return self == other

    def to_property(self) -> str:
        """Text form for a message property: base64 of ``marshal()``."""
        return base64.b64encode(self.marshal()).decode("ascii")

    @classmethod
    def from_property(cls, text: str) -> Self:
        """Inverse of ``to_property``."""
        try:
            raw = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise MessageDecodeError(
                f"{cls.wal_name} message id property {text[:40]!r} is not base64: {exc}"
            ) from exc
        return cls.unmarshal(raw)

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self.sort_key()}"


def unmarshal_int_tuple(
    cls: type[MessageID], data: bytes, width: int, *, signed: bool = False
) -> tuple[int, ...]:
    """Decode ``width`` big-endian 8-byte integers, with a clear error on bad input.

    A helper for backends whose ids are fixed tuples of integers.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MessageDecodeError(
            f"{cls.wal_name} message id must be bytes, got {type(data).__name__}"
        )
    raw = bytes(data)
    if len(raw) != 8 * width:
        raise MessageDecodeError(
            f"{cls.wal_name} message id must be {8 * width} bytes, got {len(raw)}: {raw[:16]!r}"
        )
    return tuple(
        int.from_bytes(raw[i * 8 : (i + 1) * 8], "big", signed=signed) for i in range(width)
    )


def marshal_int_tuple(values: tuple[int, ...], *, signed: bool = False) -> bytes:
    """Encode integers as big-endian 8-byte words, so byte order equals numeric order."""
    return b"".join(v.to_bytes(8, "big", signed=signed) for v in values)
