"""Messages: payload bytes plus string properties.

``MutableMessage`` is what a producer builds and the WAL stamps (timetick,
last-confirmed id, term); ``ImmutableMessage`` is what a reader gets back, with
its message id fixed.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Self

from google.protobuf.message import Message as ProtoMessage

from walstream.errors import MessageDecodeError, MessageError
from walstream.message import properties as P
from walstream.message.headers import HEADER_CLASSES, decode_proto, encode_proto
from walstream.message.message_id import MessageID
from walstream.message.types import MessageType
from walstream.proto import messages_pb2 as pb

if TYPE_CHECKING:
    import pyarrow as pa


def _int_property(props: Mapping[str, str], key: str) -> int | None:
    text = props.get(key)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError as exc:
        raise MessageDecodeError(f"property {key}={text[:40]!r} is not an integer") from exc


def _non_negative_int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MessageError(f"{what} must be a non-negative int, got {value!r}")
    return value


_TYPE_BY_TEXT: dict[str, MessageType] = {str(int(t)): t for t in MessageType}
"""Each type by the text of its ``_t`` property."""

_term_text: dict[int, str] = {}
"""Property text of the WAL terms stamped so far (a handful per process)."""

_last_confirmed_text: tuple[MessageID | None, str] = (None, "")
"""The last id ``with_last_confirmed`` encoded, and its property text (ids are immutable)."""


class Message:
    """Fields and accessors shared by mutable and immutable messages."""

    # ``_size`` and ``_mtype`` cache ``size`` and ``message_type`` (read several times per
    # append); every change of ``_properties`` goes through ``MutableMessage._set`` or
    # ``_pop``, which drop the size cache. The type property is never changed in place.
    __slots__ = ("_mtype", "_payload", "_properties", "_size", "_timetick")

    def __init__(self, payload: bytes, properties: dict[str, str]) -> None:
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise MessageError(f"payload must be bytes, got {type(payload).__name__}")
        self._payload = bytes(payload)
        self._properties = properties
        self._size = -1
        self._mtype: MessageType | None = None
        self._timetick = -1  # cached ``timetick``; -1: not read yet (only with_timetick sets it)

    @property
    def payload(self) -> bytes:
        """The message body as stored."""
        return self._payload

    @property
    def properties(self) -> Mapping[str, str]:
        """All properties, system and user, read-only."""
        return MappingProxyType(self._properties)

    @property
    def user_properties(self) -> dict[str, str]:
        """Only the properties the producer set (no ``_`` prefix)."""
        return {k: v for k, v in self._properties.items() if not k.startswith(P.RESERVED_PREFIX)}

    @property
    def size(self) -> int:
        """Payload plus UTF-8 properties: the figure size limits apply to."""
        size = self._size
        if size < 0:
            size = self._size = len(self._payload) + P.properties_size(self._properties)
        return size

    @property
    def message_type(self) -> MessageType:
        """The type from ``_t``; ``UNKNOWN`` for raw messages without one."""
        mtype = self._mtype
        if mtype is not None:
            return mtype
        mtype = _TYPE_BY_TEXT.get(self._properties.get(P.TYPE, ""))
        if mtype is not None:  # the text new_message writes: no int() and enum lookup
            self._mtype = mtype
            return mtype
        value = _int_property(self._properties, P.TYPE)
        if value is None:
            mtype = MessageType.UNKNOWN
        else:
            try:
                mtype = MessageType(value)
            except ValueError as exc:
                raise MessageDecodeError(
                    f"unknown message type {value} in property {P.TYPE}"
                ) from exc
        self._mtype = mtype
        return mtype

    @property
    def version(self) -> int:
        """Message-format version from ``_v`` (0 when absent)."""
        return _int_property(self._properties, P.VERSION) or 0

    @property
    def vchannel(self) -> str:
        """The vchannel this message belongs to; empty for all-vchannel messages."""
        return self._properties.get(P.VCHANNEL, "")

    def header(self) -> ProtoMessage:
        """Decode the typed protobuf header of this message's type."""
        mtype = self.message_type
        cls = HEADER_CLASSES.get(mtype)
        if cls is None:
            raise MessageError(f"message type {mtype.name} has no typed header")
        text = self._properties.get(P.HEADER)
        if text is None:
            return cls()
        return decode_proto(cls, text, lambda: f"header of a {mtype.name} message")

    @property
    def has_timetick(self) -> bool:
        """Whether the WAL layer stamped a timetick."""
        return P.TIMETICK in self._properties

    @property
    def timetick(self) -> int:
        """The TSO timetick; raises if the message never went through the WAL layer."""
        value: int | None = self._timetick
        if value is not None and value >= 0:
            return value
        value = _int_property(self._properties, P.TIMETICK)
        if value is None:
            raise MessageError(
                "message has no timetick: only messages appended through the WAL layer carry one"
            )
        self._timetick = value
        return value

    @property
    def has_txn_context(self) -> bool:
        """Whether the message belongs to a transaction (cheaper than ``txn_context``)."""
        return P.TXN_CONTEXT in self._properties

    @property
    def has_barrier_timetick(self) -> bool:
        """Whether the producer asked for a barrier timetick."""
        return P.BARRIER_TIMETICK in self._properties

    @property
    def barrier_timetick(self) -> int | None:
        """The minimum timetick the producer asked for, if any."""
        return _int_property(self._properties, P.BARRIER_TIMETICK)

    @property
    def wal_term(self) -> int | None:
        """The term of the WAL that wrote this message, if stamped."""
        return _int_property(self._properties, P.WAL_TERM)

    @property
    def txn_context(self) -> pb.TxnContext | None:
        """The transaction this message belongs to, if any."""
        text = self._properties.get(P.TXN_CONTEXT)
        return None if text is None else decode_proto(pb.TxnContext, text, "txn context")

    @property
    def broadcast_header(self) -> pb.BroadcastHeader | None:
        """The broadcast header of a multi-vchannel message, if any."""
        text = self._properties.get(P.BROADCAST_HEADER)
        return None if text is None else decode_proto(pb.BroadcastHeader, text, "broadcast header")

    @property
    def is_persisted(self) -> bool:
        """False for TimeTicks that only advance readers in memory."""
        return P.NOT_PERSISTED not in self._properties

    def body_batch(self) -> pa.RecordBatch:
        """Decode the Arrow body of an Insert or Delete message."""
        from walstream.message.arrow_body import decode_batch

        if self.message_type not in (MessageType.INSERT, MessageType.DELETE):
            raise MessageError(f"{self.message_type.name} messages have no Arrow body")
        return decode_batch(self._payload)

    def _same_content(self, other: Message) -> bool:
        return self._payload == other._payload and self._properties == other._properties

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(type={self.message_type.name}, vchannel={self.vchannel!r}, "
            f"payload={len(self._payload)}B, properties={len(self._properties)})"
        )


class MutableMessage(Message):
    """A message before it is appended; the WAL layer stamps its system fields."""

    __slots__ = ()

    def _set(self, key: str, value: str) -> None:
        """Set one system property (drops the cached figures it affects)."""
        self._properties[key] = value
        self._forget(key)

    def _pop(self, key: str) -> None:
        """Remove one system property if present (drops the cached figures it affects)."""
        if self._properties.pop(key, None) is not None:
            self._forget(key)

    def _forget(self, key: str) -> None:
        self._size = -1
        if key == P.TIMETICK:
            self._timetick = -1
        elif key == P.TYPE:
            self._mtype = None

    def _set_header_text(self, text: str) -> None:
        """Replace the encoded typed header (``walstream.wal.segments.messages.set_header``)."""
        self._properties[P.HEADER] = text  # ``_set`` inlined: only the size cache goes
        self._size = -1

    @classmethod
    def raw(cls, payload: bytes, properties: Mapping[str, str] | None = None) -> Self:
        """A message of only payload and user properties (no type, no vchannel)."""
        return cls(payload, P.validate_user_properties(properties or {}))

    def with_timetick(self, timetick: int) -> Self:
        """Stamp the TSO timetick."""
        # ``_set`` inlined (every append stamps three properties): the size cache goes,
        # the timetick cache takes the new value.
        self._properties[P.TIMETICK] = str(_non_negative_int(timetick, "timetick"))
        self._size = -1
        self._timetick = timetick
        return self

    def with_barrier_timetick(self, timetick: int) -> Self:
        """Ask for a timetick of at least ``timetick``."""
        self._set(P.BARRIER_TIMETICK, str(_non_negative_int(timetick, "barrier timetick")))
        return self

    def with_last_confirmed(self, message_id: MessageID) -> Self:
        """Stamp the id a reader can start from to see every later timetick."""
        global _last_confirmed_text
        cached = _last_confirmed_text
        if cached[0] is not message_id:
            # Consecutive appends mostly carry the very same id object: encode it once.
            cached = _last_confirmed_text = (message_id, message_id.to_property())
        props = self._properties
        props.pop(P.LAST_CONFIRMED_USE_SELF, None)
        props[P.LAST_CONFIRMED] = cached[1]  # ``_set`` inlined: only the size cache goes
        self._size = -1
        return self

    def with_last_confirmed_use_self(self) -> Self:
        """Mark that this message's own id is its last-confirmed id."""
        self._pop(P.LAST_CONFIRMED)
        self._set(P.LAST_CONFIRMED_USE_SELF, "1")
        return self

    def with_wal_term(self, term: int) -> Self:
        """Stamp the term of the writing WAL."""
        text = _term_text.get(term)
        if text is None:
            # Every append stamps the term, and a process writes few terms: text once each.
            text = str(_non_negative_int(term, "term"))
            if len(_term_text) < 64:
                _term_text[term] = text
        self._properties[P.WAL_TERM] = text  # ``_set`` inlined: only the size cache goes
        self._size = -1
        return self

    def with_txn_context(self, txn: pb.TxnContext) -> Self:
        """Attach the transaction context."""
        self._set(P.TXN_CONTEXT, encode_proto(txn))
        return self

    def with_not_persisted(self) -> Self:
        """Mark a TimeTick that only advances readers in memory."""
        if self.message_type is not MessageType.TIME_TICK:
            raise MessageError("only TimeTick messages can be marked not-persisted")
        self._set(P.NOT_PERSISTED, "1")
        return self

    def into_immutable(self, message_id: MessageID) -> ImmutableMessage:
        """Freeze this message at ``message_id`` (a copy; this one stays usable)."""
        # Not through __init__: the payload was checked when this message was built.
        frozen = ImmutableMessage.__new__(ImmutableMessage)
        frozen._payload = self._payload
        frozen._properties = dict(self._properties)
        frozen._message_id = message_id
        frozen._size = self._size  # same payload and properties: same figures
        frozen._mtype = self._mtype
        frozen._timetick = self._timetick
        return frozen


class ImmutableMessage(Message):
    """A message as stored in a pchannel: its id and stamped fields are fixed."""

    __slots__ = ("_message_id",)

    def __init__(self, payload: bytes, properties: dict[str, str], message_id: MessageID) -> None:
        super().__init__(payload, properties)
        self._message_id = message_id

    @property
    def message_id(self) -> MessageID:
        """Where this message is stored."""
        return self._message_id

    @property
    def wal_name(self) -> str:
        """Name of the backend that stored it."""
        return self._message_id.wal_name

    @property
    def last_confirmed_message_id(self) -> MessageID | None:
        """Reading from this id sees every message with a larger timetick; None if unstamped."""
        if P.LAST_CONFIRMED_USE_SELF in self._properties:
            return self._message_id
        text = self._properties.get(P.LAST_CONFIRMED)
        if text is None:
            return None
        return type(self._message_id).from_property(text)

    def content_equals(self, other: Message) -> bool:
        """Byte-equal payload and equal properties (ids are not compared)."""
        return self._same_content(other)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImmutableMessage):
            return NotImplemented
        return self._message_id == other._message_id and self._same_content(other)

    def __hash__(self) -> int:
        return hash(self._message_id)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, id={self._message_id!r})"


def new_message(
    message_type: MessageType,
    *,
    vchannel: str | None,
    header: ProtoMessage | None = None,
    payload: bytes = b"",
    properties: Mapping[str, str] | None = None,
    broadcast: pb.BroadcastHeader | None = None,
) -> MutableMessage:
    """Build a typed message.

    ``vchannel`` is required except for all-vchannel messages (TimeTick) and
    broadcasts; the header must be the protobuf class of ``message_type``.
    """
    mtype = MessageType(message_type)
    if mtype is MessageType.UNKNOWN:
        raise MessageError("cannot build a message of type UNKNOWN")
    props = P.validate_user_properties(properties or {})
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise MessageError(f"payload must be bytes, got {type(payload).__name__}")
    if vchannel is not None and not isinstance(vchannel, str):
        raise MessageError(f"vchannel must be a str, got {type(vchannel).__name__}")
    expected = HEADER_CLASSES[mtype]
    if header is None:
        header = expected()
    if type(header) is not expected:
        raise MessageError(
            f"a {mtype.name} message takes a {expected.__name__} header, got {type(header).__name__}"
        )
    props[P.VERSION] = str(mtype.version)
    props[P.TYPE] = str(int(mtype))
    props[P.HEADER] = encode_proto(header)
    if broadcast is not None:
        props[P.BROADCAST_HEADER] = encode_proto(broadcast)
    elif vchannel:
        props[P.VCHANNEL] = vchannel
    elif mtype is not MessageType.TIME_TICK:
        raise MessageError(
            f"a {mtype.name} message needs a vchannel (only TimeTick and broadcasts go to all vchannels)"
        )
    message = MutableMessage(bytes(payload), props)
    message._mtype = mtype  # known: spares the first reader of message_type parsing it
    return message


def new_insert(
    vchannel: str,
    header: pb.InsertMessageHeader,
    batch: Any,
    properties: Mapping[str, str] | None = None,
) -> MutableMessage:
    """An Insert whose body is the Arrow record batch ``batch``."""
    from walstream.message.arrow_body import encode_batch

    return new_message(
        MessageType.INSERT,
        vchannel=vchannel,
        header=header,
        payload=encode_batch(batch),
        properties=properties,
    )


def new_delete(
    vchannel: str,
    header: pb.DeleteMessageHeader,
    batch: Any,
    properties: Mapping[str, str] | None = None,
) -> MutableMessage:
    """A Delete whose body is the Arrow record batch ``batch`` (primary keys and timestamps)."""
    from walstream.message.arrow_body import encode_batch

    return new_message(
        MessageType.DELETE,
        vchannel=vchannel,
        header=header,
        payload=encode_batch(batch),
        properties=properties,
    )
