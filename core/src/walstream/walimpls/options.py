"""What a WAL is opened on and how a scanner starts: PChannelInfo and ReadOption."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from walstream.errors import InvalidPChannelError
from walstream.message.message_id import MessageID

_PCHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")


class AccessMode(enum.Enum):
    """RW: the one writer of a term. RO: a reader-only view (a replica on another node)."""

    RW = "rw"
    RO = "ro"


@dataclass(frozen=True, slots=True)
class PChannelInfo:
    """A physical channel at a term, opened in an access mode."""

    name: str
    term: int
    access_mode: AccessMode = AccessMode.RW

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _PCHANNEL_NAME.match(self.name):
            raise InvalidPChannelError(
                f"pchannel name {self.name!r} is not valid: use 1-200 characters of letters, "
                f"digits, '_', '.', '-', starting with a letter or digit"
            )
        if not isinstance(self.term, int) or isinstance(self.term, bool) or self.term < 0:
            raise InvalidPChannelError(f"term {self.term!r} is not valid: use an integer >= 0")
        if not isinstance(self.access_mode, AccessMode):
            raise InvalidPChannelError(
                f"access mode {self.access_mode!r} is not AccessMode.RW or RO"
            )


@dataclass(frozen=True, slots=True)
class DeliverAll:
    """Every message from the earliest retained one."""


@dataclass(frozen=True, slots=True)
class DeliverLatest:
    """Only messages appended after the scanner starts."""


@dataclass(frozen=True, slots=True)
class DeliverStartFrom:
    """Messages from ``message_id`` on, inclusive."""

    message_id: MessageID


@dataclass(frozen=True, slots=True)
class DeliverStartAfter:
    """Messages after ``message_id``, exclusive."""

    message_id: MessageID


DeliverPolicy = DeliverAll | DeliverLatest | DeliverStartFrom | DeliverStartAfter


@dataclass(frozen=True, slots=True)
class ReadOption:
    """How a scanner starts: its name, deliver policy and read-ahead hint (0 = backend default)."""

    name: str = "scanner"
    deliver_policy: DeliverPolicy = field(default_factory=DeliverAll)
    read_ahead_buffer_size: int = 0
