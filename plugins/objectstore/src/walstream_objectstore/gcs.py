"""The ``gcs`` driver: Google Cloud Storage via obstore ``GCSStore``.

Settings: env ``WALSTREAM_OBJECTSTORE_GCS_*``, TOML ``[objectstore.gcs]``.
URL: ``gs://<bucket>[/<prefix>][?endpoint=<url>]``.

Credentials come from the settings (a service-account file or key), or else
from the standard Google environment (``GOOGLE_SERVICE_ACCOUNT``,
``GOOGLE_SERVICE_ACCOUNT_KEY``, ``GOOGLE_APPLICATION_CREDENTIALS``, instance
metadata), as obstore resolves them. ``put_if_absent`` sends
``ifGenerationMatch=0`` (obstore's create mode), which GCS evaluates atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from obstore.store import GCSStore
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings
from walstream.errors import ObjectStoreError
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

_URL_QUERY = {"endpoint": "endpoint"}
_CREDENTIALS_HINT = (
    "service_account_path / service_account_key, WALSTREAM_OBJECTSTORE_GCS_*, "
    "or the GOOGLE_* environment"
)


class GCSSettings(RemoteSettings):
    """Settings of the ``gcs`` driver (env ``WALSTREAM_OBJECTSTORE_GCS_*``, TOML ``[objectstore.gcs]``)."""

    toml_table: ClassVar[str] = "objectstore.gcs"
    model_config = driver_settings_config("objectstore.gcs")

    bucket: str = Field(
        default="",
        pattern=r"^[^/\s]*$",
        description="Bucket name (required to open a store; it must exist).",
    )
    service_account_path: Path | None = Field(
        default=None, description="Path of a service-account JSON file; None: from the environment."
    )
    service_account_key: SecretStr | None = Field(
        default=None, description="A service-account key as JSON text; None: from the environment."
    )
    endpoint: str | None = Field(
        default=None,
        description="Base URL of the GCS JSON API, for emulators (fake-gcs-server); None: Google.",
    )
    skip_signature: bool = Field(
        default=False, description="Send unauthenticated requests (public buckets, emulators)."
    )
    allow_http: bool | None = Field(
        default=None,
        description="Allow plain http://. None: allowed only when the endpoint is http://.",
    )


def _key_secrets(key: str) -> list[str]:
    """What to mask for a service-account key: the whole text and its longer JSON strings."""
    found = [key]
    try:
        parsed = json.loads(key)
    except ValueError:
        return found
    if isinstance(parsed, dict):
        found += [v for v in parsed.values() if isinstance(v, str) and len(v) >= 16]
    return found


class GCSObjectStore(RemoteObjectStore):
    """Objects in a GCS bucket, under an optional key prefix."""

    def __init__(self, settings: GCSSettings, capabilities: ObjectStoreCapabilities) -> None:
        config: dict[str, Any] = {}
        secrets: list[str] = []
        if settings.service_account_path is not None:
            config["service_account"] = str(settings.service_account_path)
        if settings.service_account_key is not None:
            config["service_account_key"] = settings.service_account_key.get_secret_value()
            secrets += _key_secrets(config["service_account_key"])
        if settings.endpoint:
            config["base_url"] = settings.endpoint
        if settings.skip_signature:
            config["skip_signature"] = True
        where = f"gs://{settings.bucket}" + (f"/{settings.prefix}" if settings.prefix else "")
        if settings.endpoint:
            where += f" at {settings.endpoint}"
        try:
            store = GCSStore(
                settings.bucket,
                prefix=settings.prefix or None,
                config=config,  # type: ignore[arg-type]
                client_options=settings.client_options(
                    http_allowed(settings.allow_http, settings.endpoint)
                ),
                retry_config=settings.retry_config(),
            )
        except OBSTORE_ERRORS as exc:
            raise ObjectStoreError(
                f"gcs object store {where}: invalid configuration or credentials "
                f"({_CREDENTIALS_HINT}): {mask(summary(exc), secrets)}"
            ) from None
        super().__init__(
            store,
            driver="gcs",
            where=where,
            capabilities=capabilities,
            bounds=settings.retry_bounds(),
            secrets=secrets,
            credentials_hint=_CREDENTIALS_HINT,
        )


class GCSObjectStoreDriver(ObjectStoreDriver):
    """Entry point ``walstream.objectstore: gcs``; URLs ``gs://bucket/prefix?endpoint=...``."""

    name: ClassVar[str] = "gcs"
    plugin_api: ClassVar[str] = ">=1.0,<2"
    settings_class: ClassVar[type[BaseSettings]] = GCSSettings
    capabilities: ClassVar[ObjectStoreCapabilities] = ObjectStoreCapabilities(
        conditional_create=True, range_reads=True, persistent=True
    )
    url_schemes: ClassVar[tuple[str, ...]] = ("gs",)

    def settings_from_url(self, url: str) -> dict[str, Any]:
        """``gs://bucket/prefix`` with an optional query parameter ``endpoint``."""
        return bucket_url(url, "gs", bucket_field="bucket", query_fields=_URL_QUERY)

    async def open(self, settings: BaseSettings | None = None) -> ObjectStore:
        if settings is None:
            settings = self.load_settings()
        if not isinstance(settings, GCSSettings):
            raise TypeError(f"gcs driver needs GCSSettings, got {type(settings).__name__}")
        require_field(settings, "bucket", "gs://<bucket>/<prefix>")
        return GCSObjectStore(settings, self.capabilities)
