"""How a reader asks the streaming node's WAL for messages: vchannel, start, filters."""

from __future__ import annotations

from dataclasses import dataclass, field

from walstream.message.types import MessageType
from walstream.walimpls.options import DeliverAll, DeliverPolicy

DEFAULT_SCANNER_BUFFER_MESSAGES = 128
"""Messages a scanner holds ready for its consumer before it stops reading (back-pressure)."""


@dataclass(frozen=True, slots=True)
class DeliverFilter:
    """Which messages a scanner delivers, on top of its deliver policy.

    ``timetick_gt`` / ``timetick_gte`` drop messages at or below (below) a timetick;
    ``message_types`` keeps only those types, but system types (TimeTick, CreateSegment,
    Flush, transactions' control messages, ...) are never filtered out by type, since a
    consumer cannot keep its state right without them. ``None`` means no filter.
    """

    timetick_gt: int | None = None
    timetick_gte: int | None = None
    message_types: frozenset[MessageType] | None = None


@dataclass(frozen=True, slots=True)
class WALReadOption:
    """A scanner of the streaming node's WAL.

    ``vchannel`` restricts delivery to one vchannel (messages without a vchannel, such
    as TimeTicks, go to every scanner); ``None`` reads the whole pchannel.
    ``buffer_messages`` bounds what a slow consumer makes the scanner hold.
    """

    name: str = "scanner"
    vchannel: str | None = None
    deliver_policy: DeliverPolicy = field(default_factory=DeliverAll)
    deliver_filter: DeliverFilter = field(default_factory=DeliverFilter)
    buffer_messages: int = DEFAULT_SCANNER_BUFFER_MESSAGES
