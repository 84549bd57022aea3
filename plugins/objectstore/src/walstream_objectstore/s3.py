"""The ``s3`` driver: Amazon S3 and S3-compatible servers (MinIO, S3Proxy, ...) via obstore ``S3Store``.

Settings: env ``WALSTREAM_OBJECTSTORE_S3_*``, TOML ``[objectstore.s3]``.
URL: ``s3://<bucket>[/<prefix>][?endpoint=<url>&region=<region>]``.

Credentials come from the settings, or else from the standard AWS environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, web
identity, container or instance metadata), as obstore resolves them. Secrets
are ``SecretStr`` and are masked out of every repr and message.

Settings left unset (None) leave the standard AWS environment in charge: the
region (``AWS_REGION``, else ``AWS_DEFAULT_REGION``, else ``us-east-1``), the
endpoint (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT``) and
plain http (``AWS_ALLOW_HTTP``; read here, because obstore drops its
environment's client options once client options are given, and we give the
timeouts).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar
from urllib.parse import urlsplit

from obstore.store import S3Store
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings
from walstream.errors import ObjectStoreError, SettingsError
from walstream.objectstore.spi import ObjectStore, ObjectStoreCapabilities, ObjectStoreDriver
from walstream.settings import driver_settings_config

from walstream_objectstore._failures import mask
from walstream_objectstore._obstore import OBSTORE_ERRORS, summary
from walstream_objectstore._remote import RemoteObjectStore
from walstream_objectstore._remote_settings import (
    RemoteSettings,
    bucket_url,
    http_allowed,
    require_field,
)

_URL_QUERY = {"endpoint": "endpoint", "region": "region"}
_CREDENTIALS_HINT = (
    "access_key_id / secret_access_key / session_token, WALSTREAM_OBJECTSTORE_S3_*, "
    "or the AWS_* environment"
)


class S3Settings(RemoteSettings):
    """Settings of the ``s3`` driver (env ``WALSTREAM_OBJECTSTORE_S3_*``, TOML ``[objectstore.s3]``)."""

    toml_table: ClassVar[str] = "objectstore.s3"
    model_config = driver_settings_config("objectstore.s3")

    bucket: str = Field(
        default="",
        pattern=r"^[^/\s]*$",
        description="Bucket name (required to open a store; it must exist).",
    )
    endpoint: str | None = Field(
        default=None,
        description=(
            "Endpoint URL of an S3-compatible server (MinIO, S3Proxy, ...), e.g. "
            "http://127.0.0.1:9000. None: AWS S3 of the region (or AWS_ENDPOINT_URL)."
        ),
    )
    region: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "Region to sign for (and of the AWS endpoint). None: AWS_REGION, else "
            "AWS_DEFAULT_REGION, else us-east-1."
        ),
    )
    access_key_id: str | None = Field(
        default=None, description="Access key id; None: from the AWS environment."
    )
    secret_access_key: SecretStr | None = Field(
        default=None, description="Secret access key; None: from the AWS environment."
    )
    session_token: SecretStr | None = Field(
        default=None, description="Session token of temporary credentials, if any."
    )
    virtual_hosted_style: bool | None = Field(
        default=None,
        description=(
            "Virtual-hosted-style requests (the bucket in the host name) instead of path-style "
            "(<endpoint>/<bucket>/<key>). None (default): virtual-hosted for AWS S3 (no endpoint "
            "set, nor AWS_ENDPOINT_URL*; AWS prefers it) unless the bucket name has a dot (TLS "
            "certificates do not cover it then), path style for an endpoint (MinIO, S3Proxy). "
            "True with an endpoint: the endpoint is used as given and must be the bucket's own "
            "URL, e.g. https://<bucket>.minio.example:9000 (the bucket is not added to it)."
        ),
    )
    allow_http: bool | None = Field(
        default=None,
        description=(
            "Allow plain http://. None: allowed when the endpoint is http://; with no endpoint "
            "set, AWS_ALLOW_HTTP decides, else whether AWS_ENDPOINT_URL* is http://."
        ),
    )
    conditional_create: bool = Field(
        default=True,
        description=(
            "The server evaluates 'If-None-Match: *' on PUT atomically (AWS S3 since 2024-08, "
            "MinIO, S3Proxy 4.x filesystem backends). Set False for servers that do not: the "
            "store then declares no conditional_create and put_if_absent raises "
            "CapabilityError (consumers that need it fail at start)."
        ),
    )


_TRUE = frozenset({"1", "true", "yes", "on"})


def _env_endpoint() -> str | None:
    """The endpoint obstore takes from the AWS environment, if any."""
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"):
        value = os.environ.get(name)
        if value:
            return value
    return None


def _http_allowed(settings: S3Settings) -> bool:
    """``allow_http``, else from the endpoint's scheme (the setting's, else the environment's)."""
    if settings.allow_http is not None or settings.endpoint:
        return http_allowed(settings.allow_http, settings.endpoint)
    env_allow = os.environ.get("AWS_ALLOW_HTTP")
    if env_allow is not None:
        return env_allow.strip().lower() in _TRUE
    return http_allowed(None, _env_endpoint())


def _virtual_hosted_style(settings: S3Settings) -> bool | None:
    """The ``virtual_hosted_style_request`` to pass (None: leave it to the environment)."""
    if settings.virtual_hosted_style is not None:
        if settings.virtual_hosted_style and settings.endpoint:
            host = (urlsplit(settings.endpoint).hostname or "").lower()
            if not (host == settings.bucket.lower() or host.startswith(f"{settings.bucket}.")):
                raise SettingsError(
                    f"invalid S3Settings:\n  - virtual_hosted_style: with an endpoint, the "
                    f"endpoint is used as given and must be the bucket's own URL "
                    f"(https://{settings.bucket}.<host>), not {settings.endpoint!r}; or set "
                    f"virtual_hosted_style = false for path-style requests"
                )
        return settings.virtual_hosted_style
    if "AWS_VIRTUAL_HOSTED_STYLE_REQUEST" in os.environ:
        return None
    if settings.endpoint or _env_endpoint():
        return False
    return "." not in settings.bucket


class S3ObjectStore(RemoteObjectStore):
    """Objects in an S3 bucket, under an optional key prefix."""

    def __init__(self, settings: S3Settings, capabilities: ObjectStoreCapabilities) -> None:
        config: dict[str, Any] = {}
        if settings.region:
            config["region"] = settings.region
        virtual_hosted = _virtual_hosted_style(settings)
        if virtual_hosted is not None:
            config["virtual_hosted_style_request"] = virtual_hosted
        if settings.endpoint:
            config["endpoint"] = settings.endpoint
        if settings.access_key_id:
            config["access_key_id"] = settings.access_key_id
        secrets = []
        for name in ("secret_access_key", "session_token"):
            secret: SecretStr | None = getattr(settings, name)
            if secret is not None:
                config[name] = secret.get_secret_value()
                secrets.append(config[name])
        where = f"s3://{settings.bucket}" + (f"/{settings.prefix}" if settings.prefix else "")
        if settings.endpoint:
            where += f" at {settings.endpoint}"
        try:
            store = S3Store(
                settings.bucket,
                prefix=settings.prefix or None,
                config=config,  # type: ignore[arg-type]
                client_options=settings.client_options(_http_allowed(settings)),
                retry_config=settings.retry_config(),
            )
        except OBSTORE_ERRORS as exc:
            raise ObjectStoreError(
                f"s3 object store {where}: invalid configuration: {mask(summary(exc), secrets)}"
            ) from None
        super().__init__(
            store,
            driver="s3",
            where=where,
            capabilities=capabilities,
            bounds=settings.retry_bounds(),
            secrets=secrets,
            credentials_hint=_CREDENTIALS_HINT,
        )
        self._bucket = settings.bucket
        self._prefix = settings.prefix

    @property
    def bucket(self) -> str:
        """The bucket."""
        return self._bucket

    @property
    def prefix(self) -> str:
        """The key prefix inside the bucket ('' for none)."""
        return self._prefix


class S3ObjectStoreDriver(ObjectStoreDriver):
    """Entry point ``walstream.objectstore: s3``; URLs ``s3://bucket/prefix?endpoint=...&region=...``.

    ``capabilities`` is what the driver can do; a store opened with
    ``conditional_create=False`` declares no ``conditional_create``.
    """

    name: ClassVar[str] = "s3"
    plugin_api: ClassVar[str] = ">=1.0,<2"
    settings_class: ClassVar[type[BaseSettings]] = S3Settings
    capabilities: ClassVar[ObjectStoreCapabilities] = ObjectStoreCapabilities(
        conditional_create=True, range_reads=True, persistent=True
    )
    url_schemes: ClassVar[tuple[str, ...]] = ("s3",)

    def settings_from_url(self, url: str) -> dict[str, Any]:
        """``s3://bucket/prefix`` with optional query parameters ``endpoint`` and ``region``."""
        return bucket_url(url, "s3", bucket_field="bucket", query_fields=_URL_QUERY)

    async def open(self, settings: BaseSettings | None = None) -> ObjectStore:
        if settings is None:
            settings = self.load_settings()
        if not isinstance(settings, S3Settings):
            raise TypeError(f"s3 driver needs S3Settings, got {type(settings).__name__}")
        require_field(settings, "bucket", "s3://<bucket>/<prefix>")
        capabilities = ObjectStoreCapabilities(
            conditional_create=settings.conditional_create, range_reads=True, persistent=True
        )
        return S3ObjectStore(settings, capabilities)
