"""Pulsar message ids: (ledger, entry, batch index, partition), marshalled by Pulsar itself."""

from __future__ import annotations

from typing import ClassVar, Self

import pulsar  # type: ignore[import-untyped]
from walstream.errors import MessageDecodeError, MessageError
from walstream.message import MessageID

_HIGH = (1 << 63) - 1
"""INT64_MAX: the ledger and entry of Pulsar's ``MessageId.latest``, never a stored message."""


def _int(value: object, low: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value < _HIGH:
        raise MessageError(
            f"pulsar message id {what} must be an int in [{low}, 2**63-1), got {value!r}"
        )
    return value


class PulsarMessageID(MessageID):
    """Position of a message in the pchannel's (non-partitioned) topic.

    Ordered by ``(partition, ledger, entry, batch_index)``; ``batch_index`` is -1 for a
    message sent outside a batch and ``partition`` is -1 for a non-partitioned topic.
    ``marshal()`` is Pulsar's own ``MessageId.serialize()`` (a ``MessageIdData`` protobuf).
    """

    wal_name: ClassVar[str] = "pulsar"
    __slots__ = ("_batch", "_entry", "_ledger", "_partition")

    def __init__(self, ledger: int, entry: int, batch_index: int = -1, partition: int = -1) -> None:
        self._ledger = _int(ledger, 0, "ledger id")
        self._entry = _int(entry, 0, "entry id")
        self._batch = _int(batch_index, -1, "batch index")
        self._partition = _int(partition, -1, "partition")

    @classmethod
    def from_pulsar(cls, mid: pulsar.MessageId | object) -> Self:
        """From a ``pulsar.MessageId`` or ``_pulsar.MessageId``."""
        m: object = getattr(mid, "_msg_id", mid)
        try:
            return cls(
                m.ledger_id(),  # type: ignore[attr-defined]
                m.entry_id(),  # type: ignore[attr-defined]
                m.batch_index(),  # type: ignore[attr-defined]
                m.partition(),  # type: ignore[attr-defined]
            )
        except MessageError as exc:
            raise MessageDecodeError(f"not a stored pulsar message id: {m}: {exc}") from exc

    @classmethod
    def from_receipt(cls, mid: object) -> Self:
        """From the id in a send receipt: the checks of ``from_pulsar`` without its
        per-field type checks (the client hands out ints), on the append hot path."""
        ledger = mid.ledger_id()  # type: ignore[attr-defined]
        entry = mid.entry_id()  # type: ignore[attr-defined]
        if not (0 <= ledger < _HIGH and 0 <= entry < _HIGH):
            raise MessageDecodeError(f"not a stored pulsar message id: {mid}")
        out = object.__new__(cls)
        out._ledger = ledger
        out._entry = entry
        out._batch = mid.batch_index()  # type: ignore[attr-defined]
        out._partition = mid.partition()  # type: ignore[attr-defined]
        return out

    def to_pulsar(self) -> pulsar.MessageId:
        """The ``pulsar.MessageId`` of this position."""
        return pulsar.MessageId(self._partition, self._ledger, self._entry, self._batch)

    @property
    def ledger_id(self) -> int:
        """BookKeeper ledger."""
        return self._ledger

    @property
    def entry_id(self) -> int:
        """Entry in the ledger."""
        return self._entry

    @property
    def batch_index(self) -> int:
        """Index in the batch entry, -1 outside a batch."""
        return self._batch

    @property
    def partition(self) -> int:
        """Partition, -1 for a non-partitioned topic."""
        return self._partition

    def sort_key(self) -> tuple[int, int, int, int]:
        """``(partition, ledger, entry, batch_index)``."""
        return (self._partition, self._ledger, self._entry, self._batch)

    def marshal(self) -> bytes:
        """Pulsar's ``MessageId.serialize()``."""
        return bytes(self.to_pulsar().serialize())

    @classmethod
    def unmarshal(cls, data: bytes) -> Self:
        """Inverse of ``marshal`` (``MessageId.deserialize``); ``MessageDecodeError`` on
        anything that is not a serialized id of a stored message."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise MessageDecodeError(f"pulsar message id must be bytes, got {type(data).__name__}")
        raw = bytes(data)
        try:
            mid = pulsar.MessageId.deserialize(raw)
        except (ValueError, RuntimeError) as exc:
            raise MessageDecodeError(
                f"{raw[:40]!r} is not a serialized pulsar message id: {exc}"
            ) from exc
        return cls.from_pulsar(mid)

    def __repr__(self) -> str:
        return f"PulsarMessageID({self._ledger}:{self._entry}:{self._batch}:{self._partition})"
