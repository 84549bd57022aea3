"""Which messages a scanner keeps: its vchannel and its deliver filter.

Applied to every message except TimeTicks before the reorder buffer, as in
Milvus (filters first, then the vchannel). TimeTicks always go through the
pipeline, because they release the reorder buffer and expire transactions; only
their *delivery* is subject to the timetick filter (:func:`tick_visible`).
"""

from __future__ import annotations

from collections.abc import Callable

from walstream.message import ImmutableMessage, MessageType
from walstream.message import properties as P
from walstream.wal.options import DeliverFilter, WALReadOption

__all__ = ["MessagePredicate", "build_message_filter", "check_read_option", "tick_visible"]

MessagePredicate = Callable[[ImmutableMessage], bool]


def check_read_option(option: WALReadOption) -> None:
    """Raise ``ValueError`` for an option no scanner can serve.

    Naming a system type in the message-type filter is refused (Milvus panics):
    system types are always delivered, so the caller has misunderstood the filter.
    """
    if option.buffer_messages < 1:
        raise ValueError(f"buffer_messages must be at least 1, got {option.buffer_messages}")
    types = option.deliver_filter.message_types
    if types is not None:
        system = sorted(t.name for t in types if MessageType(t).is_system)
        if system:
            raise ValueError(
                f"the message-type filter cannot name system types {system}: they are "
                f"always delivered; name only the other types you want"
            )
    if option.vchannel == "":
        raise ValueError("vchannel must be a name or None (the whole pchannel), not ''")


def tick_visible(flt: DeliverFilter, timetick: int) -> bool:
    """Whether a message at ``timetick`` passes the timetick filters."""
    if flt.timetick_gt is not None and timetick <= flt.timetick_gt:
        return False
    return not (flt.timetick_gte is not None and timetick < flt.timetick_gte)


def _in_txn(message: ImmutableMessage) -> bool:
    # A property lookup, not txn_context: that would decode protobuf per message.
    return P.TXN_CONTEXT in message.properties


def _for_vchannel(message: ImmutableMessage, vchannel: str) -> bool:
    own = message.vchannel
    if own:
        return own == vchannel
    header = message.broadcast_header
    if header is not None and header.vchannels:
        return vchannel in header.vchannels
    return True  # an all-vchannel message goes to every scanner


def build_message_filter(option: WALReadOption) -> MessagePredicate:
    """The predicate a non-TimeTick message must pass to enter the reorder buffer.

    - Timetick filters: a transaction's parts other than its CommitTxn always
      pass, since the composite is delivered at the commit's timetick and only
      that one is compared (Milvus).
    - Message types: system types always pass, and so do a transaction's parts,
      because the committed transaction is delivered whole (all or nothing) as
      one ``TXN`` message, itself a system type.
    - VChannel: see :func:`_for_vchannel`; messages without one go everywhere.
    """
    flt = option.deliver_filter
    vchannel = option.vchannel
    types = flt.message_types
    has_tt = flt.timetick_gt is not None or flt.timetick_gte is not None

    def accept(message: ImmutableMessage) -> bool:
        in_txn = _in_txn(message)
        mtype = message.message_type
        if (
            has_tt
            and not (in_txn and mtype is not MessageType.COMMIT_TXN)
            and not tick_visible(flt, message.timetick)
        ):
            return False
        if types is not None and not (mtype.is_system or in_txn or mtype in types):
            return False
        return vchannel is None or _for_vchannel(message, vchannel)

    return accept
