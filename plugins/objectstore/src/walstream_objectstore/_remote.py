"""The ``ObjectStore`` of the remote drivers (S3, GCS, Azure): retries and error mapping.

One retry layer: obstore's own is switched off (``retry_config={"max_retries": 0}``,
see :func:`walstream_objectstore._remote_settings.RemoteSettings.retry_config`)
and every call goes through the core's policy, :func:`walstream.retry.acall`
(bounded, jittered exponential back-off), bounded by the store's
``retry_max_attempts`` and ``retry_deadline_s``. Only failures
:func:`~walstream_objectstore._failures.is_transient` accepts are retried;
refused credentials fail at once with an error that says to check them.

``put_if_absent`` and a lost response: every call writes a random token in the
object's user metadata (:data:`CREATE_TOKEN`). When an attempt fails in a way
that may have reached the server (its request may have been applied, its
answer lost) and a later attempt finds the key taken, the object's token is
read back: ours means our earlier attempt created it (reported as done),
anything else (another writer's token, none, a missing object) is
``ObjectAlreadyExistsError``. Equal bytes prove nothing: a rival writing the
same bytes must still lose. If every failed attempt failed while connecting
(the request never left), nothing is read back: the key is someone else's.

Which answers mean "taken" is per driver: 412 (and obstore's
``PreconditionError``) everywhere; 409 only where the service uses it for an
existing object (Azure ``BlobAlreadyExists``). AWS S3 answers 409
``ConditionalRequestConflict`` while another conditional write to the key is in
flight: that is retried (:func:`~walstream_objectstore._failures.is_transient`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import obstore
from obstore.exceptions import AlreadyExistsError, PreconditionError
from walstream import retry
from walstream.errors import ObjectAlreadyExistsError, ObjectNotFoundError, ObjectStoreError
from walstream.objectstore.spi import ObjectMeta, ObjectStore, ObjectStoreCapabilities

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
    request_url,
)
from walstream_objectstore._obstore import OBSTORE_ERRORS, ObstoreObjectStore, summary

if TYPE_CHECKING:
    from walstream_objectstore._obstore import ObstoreStore

T = TypeVar("T")

CREATE_TOKEN = "walstreamtoken"
"""The user-metadata name under which ``put_if_absent`` stores its per-call random token
(lower case letters only: valid as S3 ``x-amz-meta-``, GCS ``x-goog-meta-`` and Azure
``x-ms-meta-`` names)."""


@dataclass(frozen=True, slots=True)
class RetryBounds:
    """How long one operation may keep retrying: attempts and seconds, whichever ends first."""

    max_attempts: int
    deadline_s: float


class RemoteObjectStore(ObstoreObjectStore):
    """An ``ObstoreObjectStore`` on a network store: retries, credential and bucket errors.

    ``secrets`` are the configured credential values; they are masked out of every
    message this store writes. ``credentials_hint`` names where credentials come
    from, for the refused-credentials error.
    """

    def __init__(
        self,
        store: ObstoreStore,
        *,
        driver: str,
        where: str,
        capabilities: ObjectStoreCapabilities,
        bounds: RetryBounds,
        secrets: Sequence[str] = (),
        credentials_hint: str,
        container_word: str = "bucket",
        conflict_means_taken: bool = False,
    ) -> None:
        super().__init__(store, driver=driver, where=where, capabilities=capabilities)
        self._bounds = bounds
        self._secrets = tuple(s for s in secrets if s)
        self._credentials_hint = credentials_hint
        self._container_word = container_word
        self._conflict_means_taken = conflict_means_taken
        self._container_seen = False

    @property
    def retry_bounds(self) -> RetryBounds:
        """The retry bounds of every operation of this store."""
        return self._bounds

    def _describe(self, exc: BaseException) -> str:
        return mask(summary(exc), self._secrets)

    async def _io(
        self,
        op: str,
        key: str,
        call: Callable[[], Awaitable[T]],
        on_retry: Callable[[], None] | None = None,
    ) -> T:
        started = time.monotonic()
        attempts = 0

        async def attempt() -> T:
            nonlocal attempts
            attempts += 1
            return await call()

        def transient(exc: BaseException) -> bool:
            if attempts >= self._bounds.max_attempts:
                return False
            # A credential provider that refused the connection or answered 5xx gets one
            # more try; then (or at once, for a timeout) it is "could not obtain credentials".
            return is_transient(exc) or (attempts < 2 and is_retryable_credential_failure(exc))

        try:
            result = await retry.acall(
                attempt, started + self._bounds.deadline_s, transient, on_retry
            )
        except OBSTORE_ERRORS as exc:  # (ConnectionError and TimeoutError are OSErrors)
            if not is_transient(exc):
                raise
            waited = time.monotonic() - started
            raise ObjectStoreError(
                f"{op} of {key!r}: {self!r} was unreachable for {waited:.1f} s "
                f"({attempts} attempt{'s' if attempts != 1 else ''}; retry_max_attempts="
                f"{self._bounds.max_attempts}, retry_deadline_s={self._bounds.deadline_s:g}); "
                f"last error: {self._describe(exc)}"
            ) from exc
        self._container_seen = True
        return result

    def _backend_failure(self, op: str, key: str, exc: Exception) -> ObjectStoreError | None:
        if is_auth_failure(exc):
            code = error_code(exc)
            status = http_status(exc)
            detail = ", ".join(
                x for x in (f"HTTP {status}" if status else "", code or "", type(exc).__name__) if x
            )
            text = str(exc)
            if is_credential_source_failure(exc) or "credential" in text.lower():
                source = request_url(exc)
                what = (
                    "could not obtain credentials (none configured, and the environment's "
                    f"provider{' at ' + source if source else ''} failed: "
                    f"{self._describe(exc)})"
                )
            else:
                what = "refused the credentials"
            return ObjectStoreError(
                f"{op} of {key!r}: {self!r} {what} ({detail}); check the "
                f"credentials ({self._credentials_hint}) and that they may access this "
                f"{self._container_word}"
            )
        if is_tls_failure(exc):
            return ObjectStoreError(
                f"{op} of {key!r}: the TLS handshake with {self!r} failed (an https:// endpoint "
                f"that speaks plain http, or a certificate this machine does not trust or that "
                f"does not match the host); check the endpoint's scheme and certificate: "
                f"{self._describe(exc)}"
            )
        code = error_code(exc)
        if code in ("NoSuchBucket", "ContainerNotFound"):
            return ObjectStoreError(
                f"{op} of {key!r}: the {self._container_word} of {self!r} does not exist ({code}); "
                f"create it first, or check the {self._container_word} name and the endpoint"
            )
        return None

    async def head(self, key: str) -> ObjectMeta:
        try:
            return await super().head(key)
        except ObjectNotFoundError:
            # A HEAD answer has no body, so a missing bucket looks like a missing object.
            # Until this store has seen its bucket answer, ask a listing (which names it).
            if not self._container_seen:
                await self._probe_container("head", key)
            raise

    async def _probe_container(self, op: str, key: str) -> None:
        """Raise the missing-bucket error if the bucket does not exist; else return."""
        try:
            await self._io(op, key, lambda: obstore.list_with_delimiter_async(self._store, key))
        except OBSTORE_ERRORS as exc:
            own = self._backend_failure(op, key, exc)
            if own is not None:
                raise own from exc
            # (anything else: keep the not-found answer of the head)

    async def put_if_absent(self, key: str, data: bytes) -> ObjectMeta:
        if not self._capabilities.conditional_create:
            return await ObjectStore.put_if_absent(self, key, data)  # raises CapabilityError
        key = self._key(key, "put_if_absent")
        size = memoryview(data).nbytes
        token = secrets.token_hex(16)
        attributes = {CREATE_TOKEN: token}
        # Per failed attempt: whether its request may have reached the server.
        reached: list[bool] = []

        async def attempt() -> Any:
            try:
                return await obstore.put_async(
                    self._store, key, data, mode="create", attributes=attributes
                )
            except BaseException as exc:
                reached.append(not is_connect_failure(exc))
                raise

        try:
            result = await self._io("put_if_absent", key, attempt)
        except OBSTORE_ERRORS as exc:
            status = http_status(exc)
            if status == 409 and not self._conflict_means_taken:
                # Not "exists" here (S3 answers 412 for that): a conflict we cannot resolve.
                raise ObjectStoreError(
                    f"put_if_absent of {key!r} in {self!r} failed: {self._describe(exc)}"
                ) from exc
            taken = isinstance(exc, AlreadyExistsError | PreconditionError) or status in (
                409,
                412,
            )
            if not taken:
                raise await self._failure("put_if_absent", key, exc) from exc
            # Only an attempt before the one that answered "taken" may have created it.
            if any(reached[:-1]) and await self._created_with(key, token):
                # An earlier attempt created it and its answer was lost.
                return await self.head(key)
            raise ObjectAlreadyExistsError(f"object {key!r} already exists in {self!r}") from exc
        return ObjectMeta(key=key, size=size, etag=result.get("e_tag"))

    async def _created_with(self, key: str, token: str) -> bool:
        """Whether the object at ``key`` carries our ``token`` (a missing one does not)."""

        async def read_token() -> str | None:
            result = await obstore.get_async(self._store, key)
            return result.attributes.get(CREATE_TOKEN)  # (the body is not read)

        try:
            found = await self._io("put_if_absent", key, read_token)
        except FileNotFoundError:
            return False
        except OBSTORE_ERRORS as exc:
            raise await self._failure("put_if_absent", key, exc) from exc
        return found == token
