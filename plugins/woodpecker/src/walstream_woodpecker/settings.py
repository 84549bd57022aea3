"""Settings of the woodpecker backend: env ``WALSTREAM_WOODPECKER_*``, TOML ``[woodpecker]``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, model_validator
from walstream.settings import WalstreamBaseSettings, driver_settings_config

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# A block's data length is a u32 and one block holds at most flush_max_bytes plus one
# message, so both limits stay well under 4 GiB together.
_MAX_BLOCK_PART = 1 * GiB


# Settings only the zero-disk (object-storage) mode reads; setting one in local mode is
# a configuration mistake worth refusing.
OBJECT_ONLY_FIELDS = (
    "object_store_url",
    "object_store",
    "metastore_url",
    "metastore_prefix",
    "object_flush_interval_ms",
    "object_flush_max_bytes",
    "object_max_parallel_uploads",
    "object_upload_retry_deadline_s",
    "object_request_timeout_s",
    "object_reader_poll_interval_ms",
)


# Settings only local mode reads; object mode has its own (object_*) or none, so setting
# one with storage='object' would be silently ignored: refused the same way.
LOCAL_ONLY_FIELDS = (
    "flush_interval_ms",
    "flush_max_bytes",
    "reader_poll_interval_ms",
    "fence_lock_timeout_s",
)


class WoodpeckerSettings(WalstreamBaseSettings):
    """Where the log lives, when blocks are flushed, when segments roll, and limits.

    ``storage`` picks the mode: ``local`` (segment files under ``root``, the default) or
    ``object`` (zero-disk: block objects in an object store, metadata in a metastore).
    The ``object_*`` fields apply to object mode only; the shared ones (``flush_max_entries``,
    ``segment_*``, ``max_message_bytes``) apply to both. ``flush_interval_ms``,
    ``flush_max_bytes`` and ``reader_poll_interval_ms`` are local mode's; object mode has
    its own (``object_flush_interval_ms`` ...) with Woodpecker's object-storage defaults.
    """

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
    storage: Literal["local", "object"] = Field(
        default="local",
        description=(
            "local: segment files under root (fsync per flush); object: zero-disk mode, "
            "one immutable object per block in object_store_url, metadata in metastore_url."
        ),
    )
    object_store_url: str | None = Field(
        default=None,
        description=(
            "Object mode: where the blocks go (memory://ns, file:///abs/dir, s3://bucket/prefix); "
            "opened through the walstream.objectstore registry. Required when storage=object."
        ),
    )
    object_store: dict[str, Any] = Field(
        default_factory=dict,
        repr=False,  # may hold credentials
        description=(
            "Object mode: extra settings of the object-store driver (e.g. S3 endpoint, region, "
            "credentials); never logged."
        ),
    )
    metastore_url: str | None = Field(
        default=None,
        description=(
            "Object mode: the metastore holding owner, segment and truncation records "
            "(default: the SQLite file <root>/meta.sqlite3)."
        ),
    )
    metastore_prefix: str = Field(
        default="woodpecker",
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Object mode: key prefix of this backend's records in the metastore.",
    )
    object_flush_interval_ms: float = Field(
        default=200.0,
        ge=0.0,
        le=60_000.0,
        description="Object mode: longest time an append waits before its block is uploaded.",
    )
    object_flush_max_bytes: int = Field(
        default=2 * MiB,
        ge=1,
        le=_MAX_BLOCK_PART,
        description="Object mode: cut a block (one object) once this many bytes are pending.",
    )
    object_max_parallel_uploads: int = Field(
        default=8,
        ge=1,
        le=1024,
        description="Object mode: block uploads in flight at once (acks stay in entry order).",
    )
    object_upload_retry_deadline_s: float = Field(
        default=30.0,
        gt=0.0,
        le=24 * 3600.0,
        description=(
            "Object mode: how long one block upload (or footer/fence write) retries transient "
            "errors before the writer fails for good (appends then fail; reopen to recover)."
        ),
    )
    object_request_timeout_s: float = Field(
        default=10.0,
        gt=0.0,
        le=3600.0,
        description="Object mode: timeout of one object-store request (a timeout is retried).",
    )
    object_reader_poll_interval_ms: float = Field(
        default=200.0,
        ge=1.0,
        le=60_000.0,
        description=(
            "Object mode: how often a tailing reader with no writer of its pchannel in this "
            "process looks for the next block."
        ),
    )

    @model_validator(mode="after")
    def _check_mode(self) -> Self:
        if self.storage == "object":
            if not self.object_store_url:
                raise ValueError(
                    "storage='object' needs object_store_url (e.g. memory://ns, "
                    "file:///abs/dir or s3://bucket/prefix)"
                )
            if "://" not in self.object_store_url:
                raise ValueError(
                    "object_store_url must be a URL with a scheme (memory://ns, "
                    "file:///abs/dir, s3://bucket/prefix)"
                )
            stray = sorted(f for f in LOCAL_ONLY_FIELDS if f in self.model_fields_set)
            if stray:
                counterpart = {
                    "flush_interval_ms": "object_flush_interval_ms",
                    "flush_max_bytes": "object_flush_max_bytes",
                    "reader_poll_interval_ms": "object_reader_poll_interval_ms",
                }
                hints = [f"{f} -> {counterpart[f]}" for f in stray if f in counterpart]
                raise ValueError(
                    f"{', '.join(stray)} only appl{'ies' if len(stray) == 1 else 'y'} to "
                    f"storage='local', but storage is 'object'; remove "
                    f"{'it' if len(stray) == 1 else 'them'}"
                    + (f" (object mode's own: {', '.join(hints)})" if hints else "")
                )
        else:
            stray = sorted(f for f in OBJECT_ONLY_FIELDS if f in self.model_fields_set)
            if stray:
                raise ValueError(
                    f"{', '.join(stray)} only appl{'ies' if len(stray) == 1 else 'y'} to "
                    f"storage='object', but storage is 'local'; set storage='object' or "
                    f"remove {'it' if len(stray) == 1 else 'them'}"
                )
        return self
