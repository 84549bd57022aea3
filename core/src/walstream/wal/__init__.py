"""The WAL a streaming node runs over a backend (``WALImpl``).

Read-side building blocks so far: the committed-transaction composite, the
reorder buffer, the consume-side transaction buffer and the write-ahead buffer.
"""

from walstream.wal.errors import EvictedError, WALInvariantError, WriteAheadBufferClosedError
from walstream.wal.reorder import PushResult, ReorderBuffer
from walstream.wal.txn_buffer import DEFAULT_TXN_KEEPALIVE_MS, TxnBuffer, expiry_timetick
from walstream.wal.txn_message import TXN_BODY_TYPES, ImmutableTxnMessage
from walstream.wal.wab import (
    DEFAULT_CAPACITY_BYTES,
    DEFAULT_KEEPALIVE_SECONDS,
    BufferedMessage,
    WriteAheadBuffer,
    WriteAheadBufferCursor,
)

__all__ = [
    "DEFAULT_CAPACITY_BYTES",
    "DEFAULT_KEEPALIVE_SECONDS",
    "DEFAULT_TXN_KEEPALIVE_MS",
    "TXN_BODY_TYPES",
    "BufferedMessage",
    "EvictedError",
    "ImmutableTxnMessage",
    "PushResult",
    "ReorderBuffer",
    "TxnBuffer",
    "WALInvariantError",
    "WriteAheadBuffer",
    "WriteAheadBufferClosedError",
    "WriteAheadBufferCursor",
    "expiry_timetick",
]
