"""Which obstore errors the remote drivers retry, and which are final."""

from __future__ import annotations

import pytest
from obstore.exceptions import (
    AlreadyExistsError,
    GenericError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)
from walstream_objectstore._failures import (
    error_code,
    http_status,
    is_auth_failure,
    is_connect_failure,
    is_credential_source_failure,
    is_retryable_credential_failure,
    is_tls_failure,
    is_transient,
    mask,
)


def status_error(status: int, reason: str, body: str = "") -> GenericError:
    return GenericError(
        f"Generic S3 error: Error performing GET http://h/b/k in 2ms - Server returned non-2xx "
        f"status code: {status} {reason}: {body}\n\nDebug source:\nGeneric {{ status: {status} }}"
    )


CONFLICT_409 = (
    "Object at location fence/1 already exists: Error performing PUT http://h/b/fence/1 in 1ms "
    "- Server returned non-2xx status code: 409 Conflict: <?xml version='1.0' encoding='UTF-8'?>"
    "<Error><Code>ConditionalRequestConflict</Code><Message>A conflicting conditional operation "
    "is currently in progress against this resource. Please try again.</Message></Error>"
)
# rustls' errors, as obstore reports them: an https:// endpoint that speaks plain http, and a
# certificate that is not trusted.
TLS_PLAIN_HTTP = (
    "Generic S3 error: Error performing GET https://127.0.0.1:1/b/k in 33ms - HTTP error: error "
    "sending request\n\nDebug source:\n... HttpError { kind: Connect, source: reqwest::Error { "
    "kind: Request, source: hyper_util::client::legacy::Error(Connect, Custom { kind: Other, "
    "error: Custom { kind: InvalidData, error: InvalidMessage(InvalidContentType) } }) } }"
)
TLS_BAD_CERT = TLS_PLAIN_HTTP.replace(
    "InvalidMessage(InvalidContentType)", "InvalidCertificate(Other(OtherError(CaUsedAsEndEntity)))"
)
IMDS = (
    "Generic S3 error: Error performing PUT http://169.254.169.254/latest/api/token in 300µs - "
    "HTTP error: error sending request\n\nDebug source:\n... HttpError {{ kind: {kind}, ... }}"
)


TRANSPORT = (
    "Generic S3 error: Error performing PUT http://127.0.0.1:1/b/k in 167µs - HTTP error: error "
    "sending request\n\nDebug source:\nGeneric {{ inner: Http(HttpError {{ kind: {kind}, ... }}) }}"
)


@pytest.mark.parametrize(
    "exc",
    [
        status_error(500, "Internal Server Error"),
        status_error(502, "Bad Gateway"),
        status_error(503, "Slow Down", "<Error><Code>SlowDown</Code></Error>"),
        status_error(429, "Too Many Requests"),
        status_error(408, "Request Timeout"),
        GenericError(TRANSPORT.format(kind="Connect")),
        GenericError(TRANSPORT.format(kind="Timeout")),
        GenericError(TRANSPORT.format(kind="Request")),
        GenericError("Generic S3 error: connection closed before message completed"),
        ConnectionResetError("reset"),
        ConnectionRefusedError("refused"),
        TimeoutError("timed out"),
        # AWS sends RequestTimeout as HTTP 400; the code decides, not the status.
        status_error(400, "Bad Request", "<Error><Code>RequestTimeout</Code></Error>"),
        # AWS 409 while another conditional write to the key is in flight: retry, not "taken".
        AlreadyExistsError(CONFLICT_409),
        status_error(409, "Conflict", "<Error><Code>OperationAborted</Code></Error>"),
    ],
    ids=repr,
)
def test_transient(exc: Exception) -> None:
    assert is_transient(exc)
    assert not is_auth_failure(exc)


@pytest.mark.parametrize(
    "exc",
    [
        FileNotFoundError("Object at location k not found"),
        NotFoundError("not found"),
        AlreadyExistsError("exists"),
        PreconditionError("precondition"),
        PermissionDeniedError("denied"),
        UnauthenticatedError("who are you"),
        status_error(403, "Forbidden", "<Error><Code>SignatureDoesNotMatch</Code></Error>"),
        status_error(401, "Unauthorized"),
        status_error(400, "Bad Request", "<Error><Code>InvalidArgument</Code></Error>"),
        status_error(404, "Not Found", "<Error><Code>NoSuchBucket</Code></Error>"),
        GenericError("Generic S3 error: HTTP error: builder error ... kind: Unknown"),
        GenericError(
            "Generic GCS error: GCP credential error: Unable to open service account file"
        ),
        ValueError("bad path"),
        GenericError(TLS_PLAIN_HTTP),
        GenericError(TLS_BAD_CERT),
        GenericError(IMDS.format(kind="Connect")),
        GenericError(IMDS.format(kind="Timeout")),
        status_error(409, "Conflict", "<Error><Code>BucketNotEmpty</Code></Error>"),
    ],
    ids=repr,
)
def test_final(exc: Exception) -> None:
    assert not is_transient(exc)


def test_auth_failures() -> None:
    assert is_auth_failure(PermissionDeniedError("x"))
    assert is_auth_failure(UnauthenticatedError("x"))
    assert is_auth_failure(status_error(403, "Forbidden"))
    assert is_auth_failure(GenericError("<Error><Code>InvalidAccessKeyId</Code></Error>"))
    assert not is_auth_failure(status_error(404, "Not Found"))


def test_status_and_code() -> None:
    exc = status_error(503, "Slow Down", "<Error><Code>SlowDown</Code></Error>")
    assert http_status(exc) == 503
    assert error_code(exc) == "SlowDown"
    assert http_status(GenericError("no status here")) is None
    assert error_code(GenericError("no body")) is None


def test_mask() -> None:
    assert mask("key=abc secret=s3cr3t s3cr3t", ["s3cr3t", ""]) == "key=abc secret=*** ***"


def test_tls_failures() -> None:
    assert is_tls_failure(GenericError(TLS_PLAIN_HTTP))
    assert is_tls_failure(GenericError(TLS_BAD_CERT))
    assert not is_tls_failure(GenericError(TRANSPORT.format(kind="Connect")))
    assert not is_connect_failure(GenericError(TLS_BAD_CERT))


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/api/token",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/role",
        "http://169.254.170.2/v2/credentials/abc",
        "https://sts.eu-west-1.amazonaws.com/",
        "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts",
        "https://oauth2.googleapis.com/token",
        "http://169.254.169.254/metadata/identity/oauth2/token",
        "https://login.microsoftonline.com/tenant/oauth2/v2.0/token",
    ],
)
def test_credential_provider_failures_are_auth_failures(url: str) -> None:
    """No credentials configured and the environment's provider failed: final, not unreachable."""
    exc = GenericError(f"Generic S3 error: Error performing PUT {url} in 1ms - HTTP error: x")
    assert is_credential_source_failure(exc)
    assert is_auth_failure(exc)
    assert not is_transient(exc)


def test_credential_provider_gets_one_retry_but_not_for_a_timeout() -> None:
    assert is_retryable_credential_failure(GenericError(IMDS.format(kind="Connect")))
    assert not is_retryable_credential_failure(GenericError(IMDS.format(kind="Timeout")))
    assert not is_retryable_credential_failure(GenericError(TRANSPORT.format(kind="Connect")))


def test_store_requests_are_not_credential_failures() -> None:
    for url in ("http://127.0.0.1:9000/b/latest/api/token", "https://b.s3.amazonaws.com/k"):
        exc = GenericError(f"Generic S3 error: Error performing GET {url} in 1ms - HTTP error: x")
        assert not is_credential_source_failure(exc)


def test_connect_failures_never_reached_the_server() -> None:
    assert is_connect_failure(GenericError(TRANSPORT.format(kind="Connect")))
    assert is_connect_failure(ConnectionRefusedError("refused"))
    assert not is_connect_failure(GenericError(TRANSPORT.format(kind="Request")))
    assert not is_connect_failure(ConnectionResetError("reset"))
    assert not is_connect_failure(status_error(503, "Service Unavailable"))
