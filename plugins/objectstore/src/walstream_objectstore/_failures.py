"""What an obstore error from a remote store means: transient, refused credentials, or final.

obstore raises a few typed errors (``FileNotFoundError``, ``AlreadyExistsError``,
``PreconditionError``, ``PermissionDeniedError``, ``UnauthenticatedError``) and a
``GenericError`` for everything else, whose text carries the HTTP status
(``Server returned non-2xx status code: 503 ...``) or the transport failure
(``HttpError { kind: Connect ...``). The predicates here read those; they decide
per error class, never by a blanket ``except``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from obstore.exceptions import (
    AlreadyExistsError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)

_STATUS = re.compile(r"non-2xx status code: (\d{3})|\bstatus: (\d{3})\b")
_CODE = re.compile(r"<Code>([A-Za-z]+)</Code>")
# object_store's HttpErrorKind values that mean "no complete answer arrived" (not Unknown:
# that is a client-side builder error such as an http:// URL with allow_http off).
_TRANSPORT = re.compile(r"kind: (Connect|Request|Timeout|Interrupted|Decode)\b")
_TRANSPORT_TEXT = (
    "error sending request",
    "connection refused",
    "connection reset",
    "connection closed",
    "broken pipe",
    "operation timed out",
    "timed out",
)
# Server error codes that ask for another attempt, whatever the HTTP status: AWS sends
# RequestTimeout as 400, and ConditionalRequestConflict / OperationAborted as 409 (another
# conditional write to the key is in flight; it may still fail, so the key is not taken).
_RETRY_CODES = frozenset(
    {
        "SlowDown",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "ConditionalRequestConflict",
        "OperationAborted",
    }
)
# A TLS handshake that failed for a reason that will not change on retry: an https:// endpoint
# that speaks plain http, an untrusted, expired or mismatched certificate (rustls' errors).
_TLS = re.compile(
    r"InvalidCertificate|InvalidMessage\(|AlertReceived|PeerIncompatible|PeerMisbehaved|"
    r"NoCertificatesPresented|HandshakeFailure|certificate verify failed|invalid peer certificate"
)
_REQUEST_URL = re.compile(r"Error performing [A-Z]+ (\S+)")
# Paths of credential providers' endpoints (AWS instance metadata and ECS/EKS container
# credentials, GCE metadata, Azure managed identity and Entra ID tokens) and their hosts.
_CREDENTIAL_PATHS = (
    "/latest/api/token",
    "/latest/meta-data/",
    "/computeMetadata/",
    "/metadata/identity/",
    "/v2/credentials",
    "/v1/credentials",
)
_CREDENTIAL_HOSTS = re.compile(
    r"^(169\.254\.170\.2[3]?|sts(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?|metadata\.google\.internal|"
    r"oauth2\.googleapis\.com|login\.microsoftonline\.com)$"
)
_AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AuthenticationFailed",
        "AuthorizationFailure",
        "InvalidAuthenticationInfo",
    }
)
_FINAL_TYPES = (
    NotFoundError,
    FileNotFoundError,
    AlreadyExistsError,
    PreconditionError,
    PermissionDeniedError,
    UnauthenticatedError,
)


def http_status(exc: BaseException) -> int | None:
    """The HTTP status an obstore error reports, if any."""
    match = _STATUS.search(str(exc))
    if match is None:
        return None
    return int(match.group(1) or match.group(2))


def error_code(exc: BaseException) -> str | None:
    """The S3-style ``<Code>`` of the server's error body (``NoSuchBucket``, ``SlowDown``...)."""
    match = _CODE.search(str(exc))
    return match.group(1) if match else None


def request_url(exc: BaseException) -> str | None:
    """The URL of the request an obstore error reports (``Error performing GET <url>``)."""
    match = _REQUEST_URL.search(str(exc))
    return match.group(1) if match else None


def is_credential_source_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a failed call to a credential provider, not to the store.

    With no credentials configured, obstore asks the environment's providers (the AWS
    instance metadata service, container credentials, STS, the GCE metadata server,
    Azure managed identity). Such a failure, say no metadata service on a laptop,
    means "could not obtain credentials", however it failed.
    """
    url = request_url(exc)
    if url is None:
        return False
    parts = urlsplit(url)
    path = parts.path or "/"
    if any(path.startswith(p) for p in _CREDENTIAL_PATHS):
        return True
    if _CREDENTIAL_HOSTS.match(parts.hostname or ""):
        return True
    full_uri = os.environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    return full_uri is not None and full_uri != "" and url.startswith(full_uri)


def is_tls_failure(exc: BaseException) -> bool:
    """Whether the TLS handshake failed (plain http behind https://, a bad certificate)."""
    return _TLS.search(str(exc)) is not None


def is_auth_failure(exc: BaseException) -> bool:
    """Whether the store refused our credentials (401/403, bad signature, unknown key...),
    or none could be obtained (:func:`is_credential_source_failure`).

    Final: retrying with the same credentials cannot help.
    """
    if isinstance(exc, PermissionDeniedError | UnauthenticatedError):
        return True
    if is_credential_source_failure(exc):
        return True
    if http_status(exc) in (401, 403) or error_code(exc) in _AUTH_CODES:
        return True
    return "credential error" in str(exc).lower()


def is_transient(exc: BaseException) -> bool:
    """Whether another attempt may succeed: no answer (refused, reset, timed out), 5xx, 429,
    or an error code that asks for a retry (``SlowDown``, ``RequestTimeout`` even as 400,
    ``ConditionalRequestConflict`` as 409).

    Not-found, already-exists, precondition, credential and TLS errors are final.
    """
    if error_code(exc) in _RETRY_CODES:
        return True
    if isinstance(exc, _FINAL_TYPES) or is_auth_failure(exc) or is_tls_failure(exc):
        return False
    return _no_answer_or_server_error(exc)


def is_retryable_credential_failure(exc: BaseException) -> bool:
    """A credential provider refused the connection or answered 5xx/429 (worth one retry).

    Not a timeout: a metadata service that does not answer (none there, or an IMDSv2 hop
    limit that drops the answer) will not answer the next time either.
    """
    if not is_credential_source_failure(exc) or is_tls_failure(exc):
        return False
    text = str(exc)
    if "kind: Timeout" in text or "timed out" in text.lower():
        return False
    return _no_answer_or_server_error(exc)


def is_connect_failure(exc: BaseException) -> bool:
    """Whether the request failed while connecting, so it never reached the server."""
    if isinstance(exc, ConnectionRefusedError):
        return True
    return re.search(r"kind: Connect\b", str(exc)) is not None and not is_tls_failure(exc)


def _no_answer_or_server_error(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    status = http_status(exc)
    if status is not None:
        return status >= 500 or status in (408, 429)
    text = str(exc)
    if _TRANSPORT.search(text):
        return True
    lowered = text.lower()
    return any(phrase in lowered for phrase in _TRANSPORT_TEXT)


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of a non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
