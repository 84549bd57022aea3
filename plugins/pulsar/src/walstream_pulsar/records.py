"""How a message is laid out as a Pulsar message, and back.

- payload: the payload;
- properties: the message's properties, as Pulsar message properties (str to str);
- key (``partition_key``): ``D:<term>`` for a message, ``C:<term>`` for a writer's
  *claim*, the empty message a writer sends when it takes the pchannel (see
  ``takeover``). Scanners skip claims. The key never routes anything (the topic has no
  partitions); it is how an opener learns the highest term that wrote to the topic.
"""

from __future__ import annotations

from collections.abc import Mapping

from walstream.errors import MessageDecodeError
from walstream.message import ImmutableMessage

from walstream_pulsar.message_id import PulsarMessageID

DATA = "D"
CLAIM = "C"


def record_key(kind: str, term: int) -> str:
    """The key of a message of ``kind`` written at ``term``."""
    return f"{kind}:{term}"


def parse_key(key: str | None) -> tuple[str, int] | None:
    """``(kind, term)`` of a key this backend wrote; None for anything else."""
    if not key or len(key) < 3 or key[1] != ":" or key[0] not in (DATA, CLAIM):
        return None
    digits = key[2:]
    if not digits.isdigit() or not digits.isascii():
        return None
    return key[0], int(digits)


def to_message(
    mid: PulsarMessageID, payload: bytes | None, properties: Mapping[str, str] | None
) -> ImmutableMessage:
    """Rebuild the stored message at ``mid``."""
    props: dict[str, str] = {}
    for key, value in (properties or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise MessageDecodeError(f"property {key!r} of the message at {mid!r} is not text")
        props[key] = value
    return ImmutableMessage(payload or b"", props, mid)
