"""The interceptors of the streaming node's append chain, outermost first.

redo -> lock -> vchannel -> timetick (with transactions) -> [extra, e.g. segment
assignment] -> the backend append (:mod:`walstream.wal.backend_append`).
"""

from walstream.wal.interceptors.lock import LockInterceptor
from walstream.wal.interceptors.redo import RedoInterceptor
from walstream.wal.interceptors.rwlock import RWLock
from walstream.wal.interceptors.timetick import TimeTickInterceptor
from walstream.wal.interceptors.txn import TxnDispatcher, TxnStep
from walstream.wal.interceptors.vchannel import VChannelInterceptor

__all__ = [
    "LockInterceptor",
    "RWLock",
    "RedoInterceptor",
    "TimeTickInterceptor",
    "TxnDispatcher",
    "TxnStep",
    "VChannelInterceptor",
]
