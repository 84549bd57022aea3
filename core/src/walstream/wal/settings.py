"""Settings of the streaming node's WAL (TOML ``[wal]``, env ``WALSTREAM_WAL_*``)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from walstream.settings import WalstreamBaseSettings, driver_settings_config, load_driver_settings
from walstream.wal.txn_manager import MAX_TXN_KEEPALIVE_MS

__all__ = ["WALSettings", "load_wal_settings"]

_MIB = 1024 * 1024


class WALSettings(WalstreamBaseSettings):
    """Tunables of the RW WAL: time ticks, transactions, the write-ahead buffer, retries."""

    toml_table: ClassVar[str] = "wal"
    model_config = driver_settings_config("wal")

    timetick_interval_ms: int = Field(
        default=200, gt=0, description="Period of the time-tick sync (Milvus timeTickInterval)."
    )
    txn_default_keepalive_ms: int = Field(
        default=10_000,
        ge=1,
        le=MAX_TXN_KEEPALIVE_MS,
        description="Keepalive of a transaction begun with keepalive 0.",
    )
    txn_max_bytes: int = Field(
        default=64 * _MIB, gt=0, description="Largest sum of body sizes of one transaction."
    )
    wab_capacity_bytes: int = Field(
        default=64 * _MIB, gt=0, description="Write-ahead buffer size before eviction."
    )
    wab_keepalive_s: float = Field(
        default=30.0, gt=0, description="Write-ahead buffer: messages older than this are evicted."
    )
    append_retry_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="How long one backend append is retried on transient errors before failing.",
    )
    redo_max_attempts: int = Field(
        default=16, ge=1, description="Chain re-runs (fresh timetick) allowed for one append."
    )
    redo_ready_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="How long a redo waits for the work it needs (e.g. a new segment's CreateSegment).",
    )
    segment_assignment: bool = Field(
        default=True,
        description=(
            "Run the segment-assignment interceptor (growing segments, CreateSegment, Flush; "
            "policies from [segment_policy]). Off: inserts pass unassigned."
        ),
    )
    append_batch_max: int = Field(
        default=1024,
        ge=1,
        description=(
            "Most concurrent plain appends (no DDL, transaction or barrier) that go through "
            "the chain together as one batch; 1 runs every append on its own."
        ),
    )
    close_timeout_s: float = Field(
        default=10.0, gt=0, description="At close, how long to wait for in-flight appends."
    )


def load_wal_settings(overrides: dict[str, Any] | None = None) -> WALSettings:
    """``WALSettings`` from ``overrides``, env and ``walstream.toml``; ``SettingsError`` if bad."""
    return load_driver_settings(WALSettings, overrides or {})
