"""The WAL a streaming node runs over a backend (``WALImpl``).

Read-side building blocks so far: the committed-transaction composite, the
reorder buffer, the consume-side transaction buffer and the write-ahead buffer.
Write-side ones: the ack manager (timeticks, confirmed watermark, last-confirmed
message id) and the transaction manager.
"""

from walstream.wal.ack import AckDetail, Acker, AckManager, SyncResult, TimestampAllocator
from walstream.wal.errors import (
    AlreadyAckedError,
    EvictedError,
    InvalidTransactionRequestError,
    InvalidTransactionStateError,
    TransactionAbortedError,
    TransactionError,
    TransactionExpiredError,
    TransactionNotFoundError,
    WALInvariantError,
    WriteAheadBufferClosedError,
)
from walstream.wal.last_confirmed import LastConfirmedManager, TxnResolution
from walstream.wal.reorder import PushResult, ReorderBuffer
from walstream.wal.txn_buffer import DEFAULT_TXN_KEEPALIVE_MS, TxnBuffer, expiry_timetick
from walstream.wal.txn_manager import DEFAULT_ENDED_TXNS_KEPT, MAX_TXN_KEEPALIVE_MS, TxnManager
from walstream.wal.txn_message import TXN_BODY_TYPES, ImmutableTxnMessage
from walstream.wal.txn_session import FINAL_TXN_STATES, TxnSession, TxnState
from walstream.wal.wab import (
    DEFAULT_CAPACITY_BYTES,
    DEFAULT_KEEPALIVE_SECONDS,
    BufferedMessage,
    WriteAheadBuffer,
    WriteAheadBufferCursor,
)

__all__ = [
    "DEFAULT_CAPACITY_BYTES",
    "DEFAULT_ENDED_TXNS_KEPT",
    "DEFAULT_KEEPALIVE_SECONDS",
    "DEFAULT_TXN_KEEPALIVE_MS",
    "FINAL_TXN_STATES",
    "MAX_TXN_KEEPALIVE_MS",
    "TXN_BODY_TYPES",
    "AckDetail",
    "AckManager",
    "Acker",
    "AlreadyAckedError",
    "BufferedMessage",
    "EvictedError",
    "ImmutableTxnMessage",
    "InvalidTransactionRequestError",
    "InvalidTransactionStateError",
    "LastConfirmedManager",
    "PushResult",
    "ReorderBuffer",
    "SyncResult",
    "TimestampAllocator",
    "TransactionAbortedError",
    "TransactionError",
    "TransactionExpiredError",
    "TransactionNotFoundError",
    "TxnBuffer",
    "TxnManager",
    "TxnResolution",
    "TxnSession",
    "TxnState",
    "WALInvariantError",
    "WriteAheadBuffer",
    "WriteAheadBufferClosedError",
    "WriteAheadBufferCursor",
    "expiry_timetick",
]
