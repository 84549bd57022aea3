"""Which Pulsar errors are retried, which are final, and what each final one asks you to fix.

pulsar-client raises one exception class per ``pulsar.Result`` (``pulsar.exceptions``) and
reports asynchronous sends with a ``pulsar.Result``; both are sorted here by *name*, the
one place that decides: ``is_fenced`` (a newer writer took the topic), ``is_transient``
(the cluster is briefly unavailable: retry with back-off) and ``hint`` (for a final
error, what the operator should change). Nothing here catches broadly.
"""

from __future__ import annotations

import pulsar  # type: ignore[import-untyped]
from walstream.errors import FencedError, WALError

_FENCED = frozenset({"ProducerFenced"})

_TRANSIENT = frozenset(
    {
        "Timeout",
        "ConnectError",
        "LookupError",
        "NotConnected",
        "ReadError",
        "ServiceUnitNotReady",
        "TooManyLookupRequestException",
        "BrokerPersistenceError",
        "BrokerMetadataError",
        "ProducerQueueIsFull",
        "MemoryBufferIsFull",
        "ProducerBusy",
        "ConsumerBusy",
        "UnknownError",
    }
)

_HINTS: dict[str, str] = {
    "AuthenticationError": (
        "authentication failed: check auth_token (WALSTREAM_PULSAR_AUTH_TOKEN) and the TLS "
        "client certificate settings"
    ),
    "ErrorGettingAuthenticationData": (
        "the client could not build its credentials: check auth_token and the tls_* files"
    ),
    "AuthorizationError": (
        "not authorized: grant this role produce and consume on the namespace "
        "(pulsar-admin namespaces grant-permission <tenant>/<namespace> --role <role> "
        "--actions produce,consume)"
    ),
    "InvalidConfiguration": "pulsar-client refused a setting: check producer_overrides and reader_overrides",
    "InvalidTopicName": "the topic name is invalid: check tenant, namespace and topic_prefix",
    "InvalidUrl": "service_url is not a valid Pulsar URL (pulsar://host:6650 or pulsar+ssl://host:6651)",
    "TopicNotFound": (
        "the topic does not exist and the broker does not create topics automatically: "
        "create it (non-partitioned) or enable allowAutoTopicCreation"
    ),
    "NotAllowedError": (
        "the broker refused the operation: check that the namespace exists and allows "
        "topic creation, and the broker's maxProducersPerTopic / policies"
    ),
    "OperationNotSupported": "the broker does not support this operation: Pulsar 2.8 or later is needed",
    "UnsupportedVersionError": "the broker is too old: exclusive-with-fencing producers need Pulsar 2.8 or later",
    "TopicTerminated": "the topic was terminated (pulsar-admin topics terminate); it cannot take writes",
    "MessageTooBig": "the message is over the broker's maxMessageSize: lower max_message_bytes",
    "ProducerBlockedQuotaExceededError": "the namespace backlog quota is exceeded: truncate or raise the quota",
    "ProducerBlockedQuotaExceededException": "the namespace backlog quota is exceeded: truncate or raise the quota",
    "SubscriptionNotFound": "the truncation subscription is missing: reopen the pchannel read-write",
    "AlreadyClosed": "the Pulsar client was closed",
}


def error_name(err: BaseException | pulsar.Result | None) -> str | None:
    """The Pulsar error name (``Timeout``, ``ProducerFenced``, …) of an exception or result."""
    if err is None:
        return None
    if isinstance(err, pulsar.Result):
        return str(err.name)
    if isinstance(err, pulsar.PulsarException):
        return type(err).__name__
    return None


def is_fenced(err: BaseException | pulsar.Result | None) -> bool:
    """A producer of a newer writer fenced this one."""
    return error_name(err) in _FENCED


def is_transient(err: BaseException | pulsar.Result | None) -> bool:
    """Worth retrying after a back-off: the cluster is unreachable or busy for now."""
    return error_name(err) in _TRANSIENT


def hint(name: str | None, fallback: str = "") -> str:
    """What to fix for a final error."""
    return _HINTS.get(name or "", fallback or "see the broker log")


class PulsarWALError(WALError):
    """A Pulsar operation failed for good; the message says what to fix."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class PulsarUnavailableError(PulsarWALError):
    """The cluster did not answer within the configured time."""


def final_error(what: str, err: BaseException | pulsar.Result) -> WALError:
    """The walstream error for ``err`` met while doing ``what``."""
    name = error_name(err)
    if name is None:
        return PulsarWALError(f"{what} failed: {err!r}")
    if name in _FENCED:
        return FencedError(
            f"{what}: a writer of a newer term took the pchannel ({name}); close this WAL"
        )
    if name in _TRANSIENT:
        return PulsarUnavailableError(
            f"{what}: the Pulsar cluster did not answer in time ({name}: {err}); check that "
            f"the brokers at service_url are running and reachable",
            name,
        )
    return PulsarWALError(f"{what} failed: {name} ({err}): {hint(name, str(err))}", name)
