"""Which Kafka errors are retried, which are final, and what each final one asks you to fix.

librdkafka reports every failure as a ``KafkaError`` with a code. This module is the one
place that sorts codes: ``is_fenced`` (a newer writer took the pchannel), ``is_transient``
(the cluster is briefly unavailable: retry with back-off) and ``hint`` (for a final error,
what the operator should change). Nothing here catches broadly; callers retry only what
``is_transient`` says.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from walstream.errors import FencedError, WALError

_FENCED_CODES = frozenset(
    {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
)

_TRANSIENT_CODES = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError._RESOLVE,
        KafkaError._WAIT_COORD,
        KafkaError._IN_PROGRESS,
        KafkaError._PREV_IN_PROGRESS,
        KafkaError._NODE_UPDATE,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_CONTROLLER,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.BROKER_NOT_AVAILABLE,
        KafkaError.REPLICA_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.CONCURRENT_TRANSACTIONS,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.KAFKA_STORAGE_ERROR,
        KafkaError.THROTTLING_QUOTA_EXCEEDED,
        KafkaError.FENCED_LEADER_EPOCH,
        KafkaError.UNKNOWN_LEADER_EPOCH,
        KafkaError.OFFSET_NOT_AVAILABLE,
    }
)

# Final errors, with what to fix. Codes not listed and not transient are final too,
# with the broker's own message.
_HINTS: dict[int, str] = {
    KafkaError._AUTHENTICATION: (
        "authentication failed: check security_protocol, sasl_mechanism, sasl_username and "
        "sasl_password (WALSTREAM_KAFKA_SASL_*)"
    ),
    KafkaError.SASL_AUTHENTICATION_FAILED: (
        "SASL authentication failed: check sasl_mechanism, sasl_username and sasl_password"
    ),
    KafkaError._SSL: (
        "the TLS handshake failed: check ssl_ca_location, ssl_certificate_location and "
        "ssl_key_location, and that security_protocol matches the listener"
    ),
    KafkaError.TOPIC_AUTHORIZATION_FAILED: (
        "not authorized on the topic: grant this principal Describe, Read, Write and Create "
        "(and Delete for truncation) on the topics starting with topic_prefix"
    ),
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: (
        "not authorized on the cluster: grant this principal IdempotentWrite and Create on "
        "the cluster resource"
    ),
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: (
        "not authorized on the transactional id: grant this principal Write and Describe on "
        "transactional ids starting with 'walstream-wal:'"
    ),
    KafkaError.GROUP_AUTHORIZATION_FAILED: (
        "not authorized on a consumer group: grant this principal Read on groups starting "
        "with 'walstream-'"
    ),
    KafkaError.UNKNOWN_TOPIC_OR_PART: (
        "the topic does not exist: open the pchannel read-write once to create it, or check "
        "topic_prefix"
    ),
    KafkaError._UNKNOWN_TOPIC: (
        "the topic does not exist: open the pchannel read-write once to create it, or check "
        "topic_prefix"
    ),
    KafkaError._UNKNOWN_PARTITION: "partition 0 of the topic does not exist",
    KafkaError.INVALID_CONFIG: (
        "the broker refused a topic setting: check retention_ms, max_message_bytes and "
        "min_insync_replicas"
    ),
    KafkaError.POLICY_VIOLATION: (
        "the broker's create-topic policy refused the topic: create it yourself with one "
        "partition, or relax the policy"
    ),
    KafkaError.INVALID_REPLICATION_FACTOR: (
        "the replication factor is larger than the number of brokers: lower "
        "replication_factor (WALSTREAM_KAFKA_REPLICATION_FACTOR)"
    ),
    KafkaError.INVALID_TRANSACTION_TIMEOUT: (
        "transaction.timeout.ms is above the broker's transaction.max.timeout.ms: lower "
        "append_timeout_s or raise the broker limit"
    ),
    KafkaError.UNSUPPORTED_VERSION: (
        "the broker is too old: transactions and DeleteRecords need Kafka 2.5 or later"
    ),
    KafkaError._INVALID_ARG: "librdkafka refused a setting: check producer_overrides and consumer_overrides",
}


def kafka_error(exc: BaseException) -> KafkaError | None:
    """The ``KafkaError`` carried by ``exc``, if it is a ``KafkaException``."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def is_fenced(err: KafkaError | BaseException | None) -> bool:
    """A newer producer with the same transactional id took over."""
    if isinstance(err, BaseException):
        err = kafka_error(err)
    return err is not None and err.code() in _FENCED_CODES


def is_transient(err: KafkaError | BaseException | None) -> bool:
    """Worth retrying after a back-off: the cluster is unreachable or busy for now."""
    if isinstance(err, BaseException):
        err = kafka_error(err)
    if err is None or err.fatal() or err.code() in _FENCED_CODES or err.code() in _HINTS:
        return False
    return err.code() in _TRANSIENT_CODES or err.retriable()


def hint(err: KafkaError) -> str:
    """What to fix for a final error (the broker's message when there is no better one)."""
    return _HINTS.get(err.code(), err.str())


def describe(err: KafkaError) -> str:
    """``NAME (message)`` of a Kafka error."""
    return f"{err.name()} ({err.str()})"


class KafkaWALError(WALError):
    """A Kafka operation failed for good; the message says what to fix."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class KafkaUnavailableError(KafkaWALError):
    """The cluster did not answer within the configured time."""


def final_error(what: str, exc: BaseException) -> WALError:
    """The walstream error for ``exc`` raised while doing ``what``."""
    err = kafka_error(exc)
    if err is None:
        return KafkaWALError(f"{what} failed: {exc!r}")
    if is_fenced(err):
        return FencedError(
            f"{what}: a writer of a newer term took the pchannel ({describe(err)}); close this WAL"
        )
    if is_transient(err):
        return KafkaUnavailableError(
            f"{what}: the Kafka cluster did not answer in time: {describe(err)}; check that "
            f"the brokers in bootstrap_servers are running and reachable",
            err.code(),
        )
    return KafkaWALError(f"{what} failed: {describe(err)}: {hint(err)}", err.code())
