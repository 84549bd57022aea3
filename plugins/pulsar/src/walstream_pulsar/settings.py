"""Settings of the Pulsar backend: env ``WALSTREAM_PULSAR_*``, TOML ``[pulsar]``."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from walstream.settings import WalstreamBaseSettings, driver_settings_config

from walstream_pulsar.naming import (
    MAX_PREFIX_LENGTH,
    TRUNCATION_SUBSCRIPTION,
    check_tenant_or_namespace,
    check_topic_prefix,
)

KiB = 1024
MiB = 1024 * KiB
PULSAR_DEFAULT_MAX_MESSAGE = 5 * MiB
"""The broker's default ``maxMessageSize``."""
METADATA_ALLOWANCE = 64 * KiB
"""Room under the broker's limit for Pulsar's message metadata."""

OverrideValue = str | int | float | bool

# create_producer / create_reader arguments the backend's guarantees rest on.
RESERVED_PRODUCER_KEYS = frozenset(
    {
        "topic",
        "access_mode",
        "producer_name",
        "schema",
        "initial_sequence_id",
        "send_timeout_millis",
        "block_if_queue_full",
        "max_pending_messages",
        "chunking_enabled",
        "message_router",
        "batching_enabled",
        "batching_max_messages",
        "batching_max_allowed_size_in_bytes",
        "batching_max_publish_delay_ms",
        "encryption_key",
        "crypto_key_reader",
    }
)
RESERVED_READER_KEYS = frozenset(
    {
        "topic",
        "start_message_id",
        "start_message_id_inclusive",
        "schema",
        "reader_listener",
        "is_read_compacted",
        "receiver_queue_size",
    }
)


class PulsarSettings(WalstreamBaseSettings):
    """Where the cluster is, how to authenticate, topic naming, batching and timeouts."""

    toml_table: ClassVar[str] = "pulsar"
    model_config = driver_settings_config("pulsar")

    # --- connection ----------------------------------------------------------------
    service_url: str = Field(
        default="pulsar://localhost:6650",
        description="Binary protocol URL: pulsar://host:port or pulsar+ssl://host:port.",
    )
    admin_url: str | None = Field(
        default=None,
        description="HTTP admin URL (http://host:8080); not needed for appends and reads, "
        "recorded for tools and tests.",
    )
    auth_token: SecretStr | None = Field(
        default=None, description="JWT for token authentication (AuthenticationToken)."
    )
    tls_trust_certs_file_path: Path | None = Field(
        default=None, description="CA bundle (PEM) to verify the brokers with pulsar+ssl://."
    )
    tls_certificate_file_path: Path | None = Field(
        default=None, description="Client certificate (PEM) for mutual TLS."
    )
    tls_private_key_file_path: Path | None = Field(
        default=None, description="Client private key (PEM) for mutual TLS."
    )
    tls_allow_insecure_connection: bool = Field(
        default=False, description="Accept an untrusted broker certificate (testing only)."
    )
    tls_validate_hostname: bool = Field(
        default=True, description="Check the broker certificate's host name."
    )

    # --- topics ----------------------------------------------------------------------
    tenant: str = Field(default="public", description="Pulsar tenant of the topics.")
    namespace: str = Field(default="default", description="Pulsar namespace of the topics.")
    topic_prefix: str = Field(
        default="walstream-",
        max_length=MAX_PREFIX_LENGTH,
        description="Prepended to the pchannel name to form the local topic name.",
    )
    truncation_subscription: str = Field(
        default=TRUNCATION_SUBSCRIPTION,
        min_length=1,
        description="Durable subscription whose cursor truncate() moves.",
    )
    max_message_bytes: int = Field(
        default=1 * MiB,
        ge=1,
        le=PULSAR_DEFAULT_MAX_MESSAGE - METADATA_ALLOWANCE,
        description="Largest Message.size an append accepts (within the broker's 5 MB "
        "default maxMessageSize).",
    )

    # --- writing ---------------------------------------------------------------------
    batching_enabled: bool = Field(default=True, description="Producer batching.")
    batching_max_messages: int = Field(default=1000, ge=1, le=1_000_000)
    batching_max_bytes: int = Field(default=128 * KiB, ge=1, le=64 * MiB)
    batching_max_publish_delay_ms: int = Field(
        default=1, ge=0, le=10_000, description="Longest a batch waits to fill."
    )
    max_pending_messages: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="Appends in flight at once per WAL; further appends wait their turn.",
    )
    append_timeout_s: float = Field(
        default=30.0,
        gt=0.0,
        le=3600.0,
        description="How long an append waits for the broker (through a restart) before it "
        "fails (the producer's send timeout).",
    )

    # --- timeouts and reading --------------------------------------------------------
    operation_timeout_s: int = Field(
        default=10, ge=1, le=600, description="One client operation (lookup, create, seek)."
    )
    connection_timeout_ms: int = Field(default=5_000, ge=100, le=600_000)
    open_timeout_s: float = Field(
        default=30.0,
        gt=0.0,
        le=3600.0,
        description="Bound on opening a pchannel, retries included.",
    )
    receiver_queue_size: int = Field(default=1000, ge=1, le=1_000_000)
    client_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="WARNING", description="Level of pulsar-client's own log (to stderr)."
    )

    # --- escape hatches --------------------------------------------------------------
    producer_overrides: dict[str, OverrideValue] = Field(
        default_factory=dict, description="Extra create_producer keyword arguments."
    )
    reader_overrides: dict[str, OverrideValue] = Field(
        default_factory=dict, description="Extra create_reader keyword arguments."
    )

    @field_validator("service_url")
    @classmethod
    def _service_url(cls, value: str) -> str:
        if not value.startswith(("pulsar://", "pulsar+ssl://")) or value[-3:] == "://":
            raise ValueError(
                f"{value!r} is not a Pulsar service URL: use pulsar://host:6650 or "
                f"pulsar+ssl://host:6651"
            )
        return value

    @field_validator("admin_url")
    @classmethod
    def _admin_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an HTTP URL such as http://host:8080")
        return value

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, value: str) -> str:
        return check_tenant_or_namespace(value, "tenant")

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return check_tenant_or_namespace(value, "namespace")

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return check_topic_prefix(value)

    @field_validator("producer_overrides")
    @classmethod
    def _producer_overrides(cls, value: dict[str, OverrideValue]) -> dict[str, OverrideValue]:
        return _check_overrides(value, RESERVED_PRODUCER_KEYS, "producer")

    @field_validator("reader_overrides")
    @classmethod
    def _reader_overrides(cls, value: dict[str, OverrideValue]) -> dict[str, OverrideValue]:
        return _check_overrides(value, RESERVED_READER_KEYS, "reader")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.tls_certificate_file_path is None) != (self.tls_private_key_file_path is None):
            raise ValueError(
                "tls_certificate_file_path and tls_private_key_file_path go together "
                "(mutual TLS needs both)"
            )
        if self.batching_max_bytes < 1:
            raise ValueError("batching_max_bytes must be positive")
        return self


def _check_overrides(
    value: dict[str, OverrideValue], reserved: frozenset[str], kind: str
) -> dict[str, OverrideValue]:
    bad = sorted(k for k in value if k in reserved)
    if bad:
        raise ValueError(
            f"{kind}_overrides may not set {', '.join(bad)}: the Pulsar backend sets them "
            f"itself (or through its own settings) because its fencing, ordering and timeout "
            f"guarantees depend on them"
        )
    return dict(value)
