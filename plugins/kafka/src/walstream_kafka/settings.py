"""Settings of the Kafka backend: env ``WALSTREAM_KAFKA_*``, TOML ``[kafka]``."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from walstream.settings import WalstreamBaseSettings, driver_settings_config

from walstream_kafka.naming import MAX_PREFIX_LENGTH, check_topic_prefix

KiB = 1024
MiB = 1024 * KiB

OverrideValue = str | int | float | bool
"""What a librdkafka property may be set to."""

# The producer and consumer properties the backend's guarantees rest on: an override of
# one of these is refused instead of silently weakening durability, fencing or reads.
RESERVED_PRODUCER_KEYS = frozenset(
    {
        "acks",
        "request.required.acks",
        "enable.idempotence",
        "transactional.id",
        "bootstrap.servers",
        "message.max.bytes",
        "max.in.flight.requests.per.connection",
        "max.in.flight",
        "enable.gapless.guarantee",
    }
)
RESERVED_CONSUMER_KEYS = frozenset(
    {
        "isolation.level",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "group.id",
        "bootstrap.servers",
        "enable.partition.eof",
    }
)

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"]


class KafkaSettings(WalstreamBaseSettings):
    """Where the cluster is, how to authenticate, how topics are made, and write batching."""

    toml_table: ClassVar[str] = "kafka"
    model_config = driver_settings_config("kafka")

    # --- connection --------------------------------------------------------------
    bootstrap_servers: str = Field(
        default="localhost:9092",
        min_length=1,
        description="Comma-separated host:port list of brokers to bootstrap from.",
    )
    security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_mechanism: SaslMechanism | None = Field(
        default=None, description="SASL mechanism when security_protocol is SASL_*."
    )
    sasl_username: str | None = Field(default=None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password.")
    ssl_ca_location: Path | None = Field(
        default=None, description="CA certificate file (PEM) to verify the brokers."
    )
    ssl_certificate_location: Path | None = Field(
        default=None, description="Client certificate file (PEM) for mutual TLS."
    )
    ssl_key_location: Path | None = Field(
        default=None, description="Client private key file (PEM) for mutual TLS."
    )
    ssl_key_password: SecretStr | None = Field(
        default=None, description="Password of the client private key, if it has one."
    )

    # --- topics --------------------------------------------------------------------
    topic_prefix: str = Field(
        default="walstream-",
        max_length=MAX_PREFIX_LENGTH,
        description="Prepended to the pchannel name to form its topic name.",
    )
    replication_factor: int = Field(
        default=-1,
        ge=-1,
        le=32767,
        description="Replicas of a topic this backend creates; -1 means the broker's "
        "default.replication.factor.",
    )
    min_insync_replicas: int | None = Field(
        default=None,
        ge=1,
        le=32767,
        description="min.insync.replicas of a topic this backend creates; unset means the "
        "broker's default.",
    )
    retention_ms: int = Field(
        default=-1,
        ge=-1,
        description="retention.ms of a topic this backend creates; -1 keeps records until "
        "truncated.",
    )
    max_message_bytes: int = Field(
        default=1 * MiB,
        ge=1,
        le=512 * MiB,
        description="Largest Message.size an append accepts (Capabilities.max_message_bytes).",
    )
    record_overhead_bytes: int = Field(
        default=64 * KiB,
        ge=1 * KiB,
        le=64 * MiB,
        description="Room above max_message_bytes for Kafka's record and batch framing; "
        "topics get max.message.bytes = max_message_bytes + this.",
    )

    # --- writing ---------------------------------------------------------------------
    commit_interval_ms: float = Field(
        default=5.0,
        ge=0.0,
        le=10_000.0,
        description="Longest time a transaction stays open collecting appends before it "
        "is committed (group commit).",
    )
    commit_max_messages: int = Field(
        default=10_000,
        ge=1,
        le=10_000_000,
        description="Commit the open transaction as soon as it holds this many messages.",
    )
    commit_max_bytes: int = Field(
        default=16 * MiB,
        ge=1,
        le=1024 * MiB,
        description="Commit the open transaction as soon as it holds this many bytes.",
    )
    linger_ms: float = Field(
        default=5.0,
        ge=0.0,
        le=10_000.0,
        description="librdkafka linger.ms of the producer (records wait this long to form "
        "batches while a transaction is open).",
    )
    append_timeout_s: float = Field(
        default=30.0,
        gt=0.0,
        le=3600.0,
        description="How long an append waits for the brokers (for instance through a "
        "broker restart) before it fails with a WALError.",
    )

    # --- timeouts and reading ------------------------------------------------------------
    request_timeout_s: float = Field(
        default=10.0,
        gt=0.0,
        le=600.0,
        description="Timeout of one request to the cluster (admin calls, offset lookups).",
    )
    open_timeout_s: float = Field(
        default=30.0,
        gt=0.0,
        le=3600.0,
        description="Bound on opening a pchannel, retries included; with the cluster "
        "unreachable, open() fails after this long.",
    )
    fetch_wait_max_ms: int = Field(
        default=100,
        ge=1,
        le=60_000,
        description="Longest time a tailing scanner's fetch waits at the broker for new data.",
    )

    # --- escape hatches --------------------------------------------------------------------
    producer_overrides: dict[str, OverrideValue] = Field(
        default_factory=dict,
        description="Extra librdkafka producer properties (not those the guarantees rest on).",
    )
    consumer_overrides: dict[str, OverrideValue] = Field(
        default_factory=dict,
        description="Extra librdkafka consumer properties (not those the guarantees rest on).",
    )

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return check_topic_prefix(value)

    @field_validator("replication_factor")
    @classmethod
    def _replication(cls, value: int) -> int:
        if value == 0:
            raise ValueError("use -1 (the broker's default.replication.factor) or 1 and up")
        return value

    @field_validator("bootstrap_servers")
    @classmethod
    def _bootstrap(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",")]
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(
                    f"{server!r} is not host:port; give a comma-separated list such as "
                    f"'broker1:9092,broker2:9092'"
                )
        return ",".join(servers)

    @field_validator("producer_overrides")
    @classmethod
    def _producer_overrides(cls, value: dict[str, OverrideValue]) -> dict[str, OverrideValue]:
        return _check_overrides(value, RESERVED_PRODUCER_KEYS, "producer")

    @field_validator("consumer_overrides")
    @classmethod
    def _consumer_overrides(cls, value: dict[str, OverrideValue]) -> dict[str, OverrideValue]:
        return _check_overrides(value, RESERVED_CONSUMER_KEYS, "consumer")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and self.sasl_mechanism is None:
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_mechanism "
                f"(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER or GSSAPI)"
            )
        if not sasl and (self.sasl_mechanism or self.sasl_username or self.sasl_password):
            raise ValueError(
                f"sasl_* settings are given but security_protocol is {self.security_protocol}; "
                f"use SASL_PLAINTEXT or SASL_SSL"
            )
        if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and (
            not self.sasl_username or self.sasl_password is None
        ):
            raise ValueError(
                f"sasl_mechanism {self.sasl_mechanism} needs sasl_username and sasl_password"
            )
        if (self.ssl_certificate_location is None) != (self.ssl_key_location is None):
            raise ValueError(
                "ssl_certificate_location and ssl_key_location go together (mutual TLS needs both)"
            )
        if (
            self.min_insync_replicas is not None
            and self.replication_factor != -1
            and self.min_insync_replicas > self.replication_factor
        ):
            raise ValueError(
                f"min_insync_replicas {self.min_insync_replicas} is above replication_factor "
                f"{self.replication_factor}: no append could ever be acknowledged"
            )
        if self.commit_max_bytes < self.max_message_bytes:
            raise ValueError(
                f"commit_max_bytes {self.commit_max_bytes} is below max_message_bytes "
                f"{self.max_message_bytes}: raise it"
            )
        return self

    @property
    def record_limit_bytes(self) -> int:
        """max.message.bytes of our topics and message.max.bytes of the producer."""
        return self.max_message_bytes + self.record_overhead_bytes


def _check_overrides(
    value: dict[str, OverrideValue], reserved: frozenset[str], kind: str
) -> dict[str, OverrideValue]:
    bad = sorted(k for k in value if k in reserved)
    if bad:
        raise ValueError(
            f"{kind}_overrides may not set {', '.join(bad)}: the Kafka backend sets them itself "
            f"because its durability, fencing and read guarantees depend on them"
        )
    return dict(value)
