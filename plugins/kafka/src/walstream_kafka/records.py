"""How a message is laid out as a Kafka record, and back.

- value: the payload;
- headers: the properties, one header per property, key as is, value UTF-8;
- key: 9 bytes, a kind byte and the writer's term as a big-endian u64. ``D`` marks a
  message; ``C`` marks a *claim*, the record a writer commits when it opens, which
  scanners skip (see ``fencing``). The key is how an opener learns the highest term
  that ever wrote to the topic from its last committed record.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

from walstream.errors import MessageDecodeError, MessageError
from walstream.message import ImmutableMessage, Message

from walstream_kafka.message_id import KafkaMessageID

_KEY = struct.Struct(">cQ")
DATA = b"D"
CLAIM = b"C"
KEY_BYTES = _KEY.size

Headers = list[tuple[str, str | bytes | None]]
"""Record headers as confluent-kafka takes and returns them."""

# Kafka's per-record framing (length, attributes, deltas, key and value lengths) and
# per-header framing (two varint lengths), upper bounds.
_RECORD_FRAMING = 32
_HEADER_FRAMING = 10


def record_key(kind: bytes, term: int) -> bytes:
    """The key of a record of ``kind`` written at ``term``."""
    return _KEY.pack(kind, term)


def parse_key(key: bytes | None) -> tuple[bytes, int] | None:
    """``(kind, term)`` of a key this backend wrote; None for anything else."""
    if key is None or len(key) != KEY_BYTES:
        return None
    kind, term = _KEY.unpack(key)
    if kind not in (DATA, CLAIM):
        return None
    return kind, int(term)


def to_headers(message: Message) -> Headers:
    """The message's properties as record headers.

    Raises ``MessageError`` for a property name holding NUL: librdkafka takes header
    names as C strings and would cut it there.
    """
    headers: Headers = []
    for key, value in message.properties.items():
        if "\x00" in key:
            raise MessageError(
                f"property name {key!r} contains a NUL character, which a Kafka record "
                f"header name cannot hold (librdkafka takes it as a C string)"
            )
        headers.append((key, value.encode()))
    return headers


def record_size(message_size: int, header_count: int) -> int:
    """An upper bound of the bytes a message of ``Message.size`` ``message_size`` with
    ``header_count`` properties takes as one record in a batch."""
    return message_size + KEY_BYTES + _RECORD_FRAMING + _HEADER_FRAMING * header_count


def to_message(
    offset: int,
    value: bytes | None,
    headers: Sequence[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None] | None,
) -> ImmutableMessage:
    """Rebuild the stored message at ``offset``."""
    properties: dict[str, str] = {}
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    for key, raw in pairs:
        if key in properties:
            raise MessageDecodeError(f"record at offset {offset} repeats header {key!r}")
        try:
            properties[key] = raw if isinstance(raw, str) else (raw or b"").decode()
        except UnicodeDecodeError as exc:
            raise MessageDecodeError(
                f"header {key!r} of the record at offset {offset} is not UTF-8: {exc.reason}"
            ) from exc
    return ImmutableMessage(value or b"", properties, KafkaMessageID(offset))
