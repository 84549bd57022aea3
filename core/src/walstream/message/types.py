"""Message types and the classes they belong to."""

from __future__ import annotations

import enum


class MessageType(enum.IntEnum):
    """The kind of a message; values follow Milvus's ``MessageType`` enum."""

    UNKNOWN = 0
    TIME_TICK = 1
    INSERT = 2
    DELETE = 3
    FLUSH = 4
    CREATE_COLLECTION = 5
    DROP_COLLECTION = 6
    CREATE_PARTITION = 7
    DROP_PARTITION = 8
    MANUAL_FLUSH = 9
    CREATE_SEGMENT = 10
    IMPORT = 11
    SCHEMA_CHANGE = 12
    BEGIN_TXN = 900
    COMMIT_TXN = 901
    ROLLBACK_TXN = 902
    TXN = 999

    @property
    def is_system(self) -> bool:
        """System messages drive the WAL itself: never filtered out, never appended by clients."""
        return self in SYSTEM_TYPES

    @property
    def is_self_controlled(self) -> bool:
        """Only the WAL generates these; a client append of one is refused."""
        return self in SELF_CONTROLLED_TYPES

    @property
    def is_exclusive_required(self) -> bool:
        """These take the vchannel's write lock so their timetick order equals log order."""
        return self in EXCLUSIVE_REQUIRED_TYPES

    @property
    def version(self) -> int:
        """The message-format version written in ``_v`` for this type."""
        return 2 if self in _V2_TYPES else 1


SYSTEM_TYPES = frozenset(
    {
        MessageType.TIME_TICK,
        MessageType.BEGIN_TXN,
        MessageType.COMMIT_TXN,
        MessageType.ROLLBACK_TXN,
        MessageType.TXN,
    }
)
SELF_CONTROLLED_TYPES = frozenset(
    {MessageType.TIME_TICK, MessageType.CREATE_SEGMENT, MessageType.FLUSH}
)
EXCLUSIVE_REQUIRED_TYPES = frozenset(
    {
        MessageType.CREATE_COLLECTION,
        MessageType.DROP_COLLECTION,
        MessageType.CREATE_PARTITION,
        MessageType.DROP_PARTITION,
        MessageType.MANUAL_FLUSH,
        MessageType.SCHEMA_CHANGE,
    }
)
_V2_TYPES = frozenset(
    {
        MessageType.FLUSH,
        MessageType.MANUAL_FLUSH,
        MessageType.CREATE_SEGMENT,
        MessageType.SCHEMA_CHANGE,
        MessageType.BEGIN_TXN,
        MessageType.COMMIT_TXN,
        MessageType.ROLLBACK_TXN,
        MessageType.TXN,
    }
)
