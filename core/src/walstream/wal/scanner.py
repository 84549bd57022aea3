"""Scanners of the streaming node's WAL: ``open_scanner`` and ``WALScanner``.

A scanner reads one pchannel (optionally one vchannel of it) from the backend
until it reaches the write-ahead buffer, then tails the buffer, going back to
the backend whenever it falls out of the buffer; it delivers messages strictly
increasing by timetick, committed transactions as one ``TXN`` message, and
holds at most ``buffer_messages`` ready messages for a slow reader. The pieces
live in :mod:`walstream.wal.scan`.
"""

from walstream.wal.scan.backoff import (
    DEFAULT_RETRY_INITIAL_SECONDS,
    DEFAULT_RETRY_MAX_SECONDS,
    is_transient_read_error,
)
from walstream.wal.scan.pipeline import DeliveryPipeline, PipelineStats
from walstream.wal.scan.scanner import ScannerStats, WALScanner, open_scanner
from walstream.wal.scan.source import LatestStart, ScanMode, SwitchableSource

__all__ = [
    "DEFAULT_RETRY_INITIAL_SECONDS",
    "DEFAULT_RETRY_MAX_SECONDS",
    "DeliveryPipeline",
    "LatestStart",
    "PipelineStats",
    "ScanMode",
    "ScannerStats",
    "SwitchableSource",
    "WALScanner",
    "is_transient_read_error",
    "open_scanner",
]
