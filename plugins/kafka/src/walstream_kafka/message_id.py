"""Kafka message ids: the record's offset in the pchannel's single partition."""

from __future__ import annotations

from typing import ClassVar, Self

from walstream.errors import MessageDecodeError, MessageError
from walstream.message import MessageID
from walstream.message.message_id import marshal_int_tuple, unmarshal_int_tuple

MAX_OFFSET = (1 << 63) - 1
"""Kafka offsets are non-negative signed 64-bit integers."""


class KafkaMessageID(MessageID):
    """Offset of a record in partition 0 of the pchannel's topic.

    Offsets of committed records only go up; transaction markers and the backend's
    own claim records take offsets too, so ids are increasing but not dense.
    Marshals to 8 bytes, big-endian, so byte order equals id order.
    """

    wal_name: ClassVar[str] = "kafka"
    __slots__ = ("_offset",)

    def __init__(self, offset: int) -> None:
        if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= MAX_OFFSET:
            raise MessageError(
                f"kafka message id must be an offset, an int in [0, 2**63), got {offset!r}"
            )
        self._offset = offset

    @property
    def offset(self) -> int:
        """The partition offset."""
        return self._offset

    def sort_key(self) -> tuple[int]:
        """``(offset,)``."""
        return (self._offset,)

    def marshal(self) -> bytes:
        """8 bytes: the offset as a big-endian u64."""
        return marshal_int_tuple((self._offset,))

    @classmethod
    def unmarshal(cls, data: bytes) -> Self:
        """Inverse of ``marshal``; ``MessageDecodeError`` on anything else."""
        (offset,) = unmarshal_int_tuple(cls, data, 1)
        if offset > MAX_OFFSET:
            raise MessageDecodeError(
                f"kafka message id {bytes(data)!r} decodes to {offset}, above the largest "
                f"Kafka offset 2**63-1; these bytes are not an id"
            )
        return cls(offset)
