"""The message model: types, properties, typed headers, ids and the byte codec.

This package is the leaf of walstream: it imports nothing else of it but errors
and the generated protobuf stubs.
"""

from walstream.message.codec import DEFAULT_MAX_MESSAGE_BYTES, check_size, decode, encode
from walstream.message.message import (
    ImmutableMessage,
    Message,
    MutableMessage,
    new_delete,
    new_insert,
    new_message,
)
from walstream.message.message_id import MessageID
from walstream.message.types import MessageType

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "ImmutableMessage",
    "Message",
    "MessageID",
    "MessageType",
    "MutableMessage",
    "check_size",
    "decode",
    "encode",
    "new_delete",
    "new_insert",
    "new_message",
]
