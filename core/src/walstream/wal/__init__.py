"""The WAL a streaming node runs over a backend (``WALImpl``).

Read-side building blocks so far: the committed-transaction composite, the
reorder buffer, the consume-side transaction buffer and the write-ahead buffer.
Write-side ones: the ack manager (timeticks, confirmed watermark, last-confirmed
message id) and the transaction manager.
"""

from walstream.wal.ack import AckDetail, Acker, AckManager, SyncResult, TimestampAllocator
from walstream.wal.backend_append import BackendAppender, is_final_append_error
from walstream.wal.chain import AppendResult, Interceptor, RedoError
from walstream.wal.errors import (
    AlreadyAckedError,
    CollectionNotFoundError,
    EvictedError,
    InvalidInsertError,
    InvalidTransactionRequestError,
    InvalidTransactionStateError,
    PartitionNotFoundError,
    RedoLimitError,
    ScannerBackendEndedError,
    SegmentAssignmentError,
    SelfControlledMessageError,
    TransactionAbortedError,
    TransactionError,
    TransactionExpiredError,
    TransactionNotFoundError,
    TransactionTooLargeError,
    VChannelDroppedError,
    VChannelError,
    VChannelExistsError,
    VChannelNotFoundError,
    WALInvariantError,
    WriteAheadBufferClosedError,
)
from walstream.wal.last_confirmed import LastConfirmedManager, TxnResolution
from walstream.wal.options import DeliverFilter, WALReadOption
from walstream.wal.reorder import PushResult, ReorderBuffer
from walstream.wal.scanner import ScanMode, ScannerStats, WALScanner, open_scanner
from walstream.wal.segments import SegmentAssignInterceptor, SegmentIdAllocator, TimetickSeededIds
from walstream.wal.settings import WALSettings, load_wal_settings
from walstream.wal.streaming_wal import (
    InterceptorBuildParam,
    InterceptorFactory,
    StreamingWAL,
    open_wal,
)
from walstream.wal.timetick_sync import TimeTickSync
from walstream.wal.txn_buffer import DEFAULT_TXN_KEEPALIVE_MS, TxnBuffer, expiry_timetick
from walstream.wal.txn_handle import TxnHandle
from walstream.wal.txn_manager import DEFAULT_ENDED_TXNS_KEPT, MAX_TXN_KEEPALIVE_MS, TxnManager
from walstream.wal.txn_message import TXN_BODY_TYPES, ImmutableTxnMessage
from walstream.wal.txn_session import FINAL_TXN_STATES, TxnSession, TxnState
from walstream.wal.vchannels import VChannelRegistry, VChannelState, recover_vchannels
from walstream.wal.wab import (
    DEFAULT_CAPACITY_BYTES,
    DEFAULT_KEEPALIVE_SECONDS,
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
    "AppendResult",
    "BackendAppender",
    "CollectionNotFoundError",
    "DeliverFilter",
    "EvictedError",
    "ImmutableTxnMessage",
    "Interceptor",
    "InterceptorBuildParam",
    "InterceptorFactory",
    "InvalidInsertError",
    "InvalidTransactionRequestError",
    "InvalidTransactionStateError",
    "LastConfirmedManager",
    "PartitionNotFoundError",
    "PushResult",
    "RedoError",
    "RedoLimitError",
    "ReorderBuffer",
    "ScanMode",
    "ScannerBackendEndedError",
    "ScannerStats",
    "SegmentAssignInterceptor",
    "SegmentAssignmentError",
    "SegmentIdAllocator",
    "SelfControlledMessageError",
    "StreamingWAL",
    "SyncResult",
    "TimeTickSync",
    "TimestampAllocator",
    "TimetickSeededIds",
    "TransactionAbortedError",
    "TransactionError",
    "TransactionExpiredError",
    "TransactionNotFoundError",
    "TransactionTooLargeError",
    "TxnBuffer",
    "TxnHandle",
    "TxnManager",
    "TxnResolution",
    "TxnSession",
    "TxnState",
    "VChannelDroppedError",
    "VChannelError",
    "VChannelExistsError",
    "VChannelNotFoundError",
    "VChannelRegistry",
    "VChannelState",
    "WALInvariantError",
    "WALReadOption",
    "WALScanner",
    "WALSettings",
    "WriteAheadBuffer",
    "WriteAheadBufferClosedError",
    "WriteAheadBufferCursor",
    "expiry_timetick",
    "is_final_append_error",
    "load_wal_settings",
    "open_scanner",
    "open_wal",
    "recover_vchannels",
]
