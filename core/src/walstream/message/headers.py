"""Typed headers: one protobuf class per message type, carried base64 in ``_h``."""

from __future__ import annotations

import binascii
from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

from walstream.errors import MessageDecodeError
from walstream.message.types import MessageType
from walstream.proto import messages_pb2 as pb

HEADER_CLASSES: dict[MessageType, type[ProtoMessage]] = {
    MessageType.TIME_TICK: pb.TimeTickMessageHeader,
    MessageType.INSERT: pb.InsertMessageHeader,
    MessageType.DELETE: pb.DeleteMessageHeader,
    MessageType.FLUSH: pb.FlushMessageHeader,
    MessageType.CREATE_COLLECTION: pb.CreateCollectionMessageHeader,
    MessageType.DROP_COLLECTION: pb.DropCollectionMessageHeader,
    MessageType.CREATE_PARTITION: pb.CreatePartitionMessageHeader,
    MessageType.DROP_PARTITION: pb.DropPartitionMessageHeader,
    MessageType.MANUAL_FLUSH: pb.ManualFlushMessageHeader,
    MessageType.CREATE_SEGMENT: pb.CreateSegmentMessageHeader,
    MessageType.IMPORT: pb.ImportMessageHeader,
    MessageType.SCHEMA_CHANGE: pb.SchemaChangeMessageHeader,
    MessageType.BEGIN_TXN: pb.BeginTxnMessageHeader,
    MessageType.COMMIT_TXN: pb.CommitTxnMessageHeader,
    MessageType.ROLLBACK_TXN: pb.RollbackTxnMessageHeader,
    MessageType.TXN: pb.TxnMessageHeader,
}

P = TypeVar("P", bound=ProtoMessage)


def encode_proto(message: ProtoMessage) -> str:
    """Serialize a protobuf message into property text (base64).

    Deterministic (map entries sorted), so equal messages give equal text; for a
    class without map fields every serialization is, and the slower mode is skipped.
    """
    deterministic = _has_maps(type(message))
    return binascii.b2a_base64(
        message.SerializeToString(deterministic=deterministic), newline=False
    ).decode("ascii")


_maps_by_class: dict[type[ProtoMessage], bool] = {}


def _has_maps(cls: type[ProtoMessage]) -> bool:
    found = _maps_by_class.get(cls)
    if found is None:
        found = _maps_by_class[cls] = _descriptor_has_maps(cls.DESCRIPTOR, set())
    return found


def _descriptor_has_maps(desc: Any, seen: set[str]) -> bool:
    if desc.full_name in seen:
        return False
    seen.add(desc.full_name)
    for field in desc.fields:
        nested = field.message_type
        if nested is not None and (
            nested.GetOptions().map_entry or _descriptor_has_maps(nested, seen)
        ):
            return True
    return False


def decode_proto(cls: type[P], text: str, what: str | Callable[[], str]) -> P:
    """Parse property text written by ``encode_proto``; one clear error on bad input.

    ``what`` names the text in that error (a callable is only called then: hot
    paths need not build the phrase for every message).
    """
    try:
        # a2b_base64 takes the ASCII str itself (a non-ASCII one raises ValueError).
        return cls.FromString(binascii.a2b_base64(text, strict_mode=True))
    except (binascii.Error, DecodeError, ValueError) as exc:
        name = what if isinstance(what, str) else what()
        raise MessageDecodeError(f"{name} is not a valid {cls.__name__}: {exc}") from exc
