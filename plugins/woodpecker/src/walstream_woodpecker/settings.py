"""Settings of the woodpecker backend: env ``WALSTREAM_WOODPECKER_*``, TOML ``[woodpecker]``."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from walstream.settings import WalstreamBaseSettings, driver_settings_config

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# A block's data length is a u32 and one block holds at most flush_max_bytes plus one
# message, so both limits stay well under 4 GiB together.
_MAX_BLOCK_PART = 1 * GiB


class WoodpeckerSettings(WalstreamBaseSettings):
    """Where the log lives, when blocks are flushed, when segments roll, and limits."""

    toml_table: ClassVar[str] = "woodpecker"
    model_config = driver_settings_config("woodpecker")

    root: Path = Field(
        default=Path("walstream-data/woodpecker"),
        description="Directory holding one sub-directory per pchannel.",
    )
    flush_interval_ms: float = Field(
        default=10.0,
        ge=0.0,
        le=60_000.0,
        description="Longest time an append waits for its block to be flushed (group commit).",
    )
    flush_max_bytes: int = Field(
        default=2 * MiB,
        ge=1,
        le=_MAX_BLOCK_PART,
        description="Flush a block as soon as this many bytes of entries are pending.",
    )
    flush_max_entries: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="Flush a block as soon as this many entries are pending.",
    )
    segment_max_bytes: int = Field(
        default=256 * MiB,
        ge=1,
        le=1024 * GiB,
        description="Start a new segment file once the current one reaches this size.",
    )
    segment_max_age_s: float = Field(
        default=600.0,
        gt=0.0,
        le=365 * 24 * 3600.0,
        description="Start a new segment file once a non-empty one is this old.",
    )
    segment_max_blocks: int = Field(
        default=1000,
        ge=1,
        le=100_000_000,
        description="Start a new segment file once the current one holds this many blocks.",
    )
    max_message_bytes: int = Field(
        default=8 * MiB,
        ge=1,
        le=_MAX_BLOCK_PART,
        description="Largest Message.size an append accepts (Capabilities.max_message_bytes).",
    )
    fence_lock_timeout_s: float = Field(
        default=10.0,
        gt=0.0,
        le=3600.0,
        description="How long an open or a flush waits for the pchannel's lock file.",
    )
    reader_poll_interval_ms: float = Field(
        default=100.0,
        ge=1.0,
        le=60_000.0,
        description=(
            "How often a tailing reader re-checks the files when no writer of its pchannel "
            "lives in this process (otherwise readers are woken by the writer)."
        ),
    )
