"""The ``azure`` driver: Azure Blob Storage via obstore ``AzureStore``.

Settings: env ``WALSTREAM_OBJECTSTORE_AZURE_*``, TOML ``[objectstore.azure]``.
URLs: ``az://<container>[/<prefix>][?account=<name>&endpoint=<url>]`` and
``abfs[s]://<container>@<account>.dfs.core.windows.net[/<prefix>]``.

Credentials come from the settings (account key or SAS token), or else from the
standard Azure environment (``AZURE_STORAGE_ACCOUNT_KEY``, ``AZURE_STORAGE_SAS_KEY``,
client secret, managed identity, ...), as obstore resolves them.
``put_if_absent`` sends ``If-None-Match: *``, which Azure evaluates atomically.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from obstore.store import AzureStore
from pydantic import Field, SecretStr, model_validator
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

_URL_QUERY = {"account": "account", "endpoint": "endpoint"}
_ABFS_HOST = ".dfs.core.windows.net"
_CREDENTIALS_HINT = (
    "access_key / sas_token, WALSTREAM_OBJECTSTORE_AZURE_*, or the AZURE_* environment"
)


class AzureSettings(RemoteSettings):
    """Settings of the ``azure`` driver (env ``WALSTREAM_OBJECTSTORE_AZURE_*``, TOML ``[objectstore.azure]``)."""

    toml_table: ClassVar[str] = "objectstore.azure"
    model_config = driver_settings_config("objectstore.azure")

    container: str = Field(
        default="",
        pattern=r"^[^/\s]*$",
        description="Container name (required to open a store; it must exist).",
    )
    account: str | None = Field(
        default=None,
        description="Storage account name; None: AZURE_STORAGE_ACCOUNT_NAME (or the emulator's).",
    )
    access_key: SecretStr | None = Field(default=None, description="Storage account key.")
    sas_token: SecretStr | None = Field(
        default=None, description="Shared access signature (percent-encoded query string)."
    )
    endpoint: str | None = Field(
        default=None,
        description="Blob endpoint URL; None: https://<account>.blob.core.windows.net.",
    )
    use_emulator: bool = Field(
        default=False, description="Use the Azurite emulator (http://127.0.0.1:10000 by default)."
    )
    allow_http: bool | None = Field(
        default=None,
        description=(
            "Allow plain http://. None: allowed when the endpoint is http:// or with use_emulator."
        ),
    )

    @model_validator(mode="after")
    def _one_credential(self) -> AzureSettings:
        if self.access_key is not None and self.sas_token is not None:
            raise ValueError("give access_key or sas_token, not both")
        return self


class AzureObjectStore(RemoteObjectStore):
    """Objects in an Azure Blob Storage container, under an optional key prefix."""

    def __init__(self, settings: AzureSettings, capabilities: ObjectStoreCapabilities) -> None:
        config: dict[str, Any] = {}
        secrets: list[str] = []
        if settings.account:
            config["account_name"] = settings.account
        if settings.access_key is not None:
            config["account_key"] = settings.access_key.get_secret_value()
            secrets.append(config["account_key"])
        if settings.sas_token is not None:
            config["sas_key"] = settings.sas_token.get_secret_value()
            secrets.append(config["sas_key"])
        if settings.endpoint:
            config["endpoint"] = settings.endpoint
        if settings.use_emulator:
            config["use_emulator"] = True
        allow_http = http_allowed(settings.allow_http, settings.endpoint) or (
            settings.allow_http is None and settings.use_emulator
        )
        where = f"az://{settings.container}" + (f"/{settings.prefix}" if settings.prefix else "")
        if settings.account:
            where += f" (account {settings.account})"
        if settings.endpoint:
            where += f" at {settings.endpoint}"
        try:
            store = AzureStore(
                settings.container,
                prefix=settings.prefix or None,
                config=config,  # type: ignore[arg-type]
                client_options=settings.client_options(allow_http),
                retry_config=settings.retry_config(),
            )
        except OBSTORE_ERRORS as exc:
            raise ObjectStoreError(
                f"azure object store {where}: invalid configuration or credentials "
                f"({_CREDENTIALS_HINT}): {mask(summary(exc), secrets)}"
            ) from None
        super().__init__(
            store,
            driver="azure",
            where=where,
            capabilities=capabilities,
            bounds=settings.retry_bounds(),
            secrets=secrets,
            credentials_hint=_CREDENTIALS_HINT,
            container_word="container",
            conflict_means_taken=True,  # 409 BlobAlreadyExists
        )


def _abfs_url(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
    if parts.password is not None or parts.query or parts.fragment or parts.port is not None:
        raise SettingsError(
            f"{parts.scheme} URL {shown!r} must be {parts.scheme}://<container>@<account>"
            f"{_ABFS_HOST}/<prefix>, without password, port, query or fragment"
        )
    host = (parts.hostname or "").lower()
    if not parts.username or not host.endswith(_ABFS_HOST):
        raise SettingsError(
            f"{parts.scheme} URL {parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path} "
            f"must be {parts.scheme}://<container>@<account>{_ABFS_HOST}/<prefix>"
        )
    settings: dict[str, Any] = {
        "container": unquote(parts.username),
        "account": host[: -len(_ABFS_HOST)],
    }
    prefix = unquote(parts.path).strip("/")
    if prefix:
        settings["prefix"] = prefix
    return settings


class AzureObjectStoreDriver(ObjectStoreDriver):
    """Entry point ``walstream.objectstore: azure``; URLs ``az://`` and ``abfs[s]://``."""

    name: ClassVar[str] = "azure"
    plugin_api: ClassVar[str] = ">=1.0,<2"
    settings_class: ClassVar[type[BaseSettings]] = AzureSettings
    capabilities: ClassVar[ObjectStoreCapabilities] = ObjectStoreCapabilities(
        conditional_create=True, range_reads=True, persistent=True
    )
    url_schemes: ClassVar[tuple[str, ...]] = ("az", "abfs", "abfss")

    def settings_from_url(self, url: str) -> dict[str, Any]:
        """``az://container/prefix?account=...&endpoint=...`` or ``abfs[s]://container@account.dfs.core.windows.net/prefix``."""
        scheme = urlsplit(url).scheme.lower()
        if scheme in ("abfs", "abfss"):
            return _abfs_url(url)
        return bucket_url(url, "az", bucket_field="container", query_fields=_URL_QUERY)

    async def open(self, settings: BaseSettings | None = None) -> ObjectStore:
        if settings is None:
            settings = self.load_settings()
        if not isinstance(settings, AzureSettings):
            raise TypeError(f"azure driver needs AzureSettings, got {type(settings).__name__}")
        require_field(settings, "container", "az://<container>/<prefix>")
        return AzureObjectStore(settings, self.capabilities)
