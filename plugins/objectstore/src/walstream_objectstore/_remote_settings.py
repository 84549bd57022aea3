"""Settings every remote driver shares (timeouts, retry bounds, key prefix) and URL helpers."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import Field, field_validator
from walstream.errors import SettingsError
from walstream.objectstore.spi import validate_prefix
from walstream.retry import MAX_ATTEMPTS
from walstream.settings import WalstreamBaseSettings

from walstream_objectstore._remote import RetryBounds

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig


class RemoteSettings(WalstreamBaseSettings):
    """Fields shared by the S3, GCS and Azure settings (each adds its own env prefix and table)."""

    prefix: str = Field(
        default="",
        description=(
            "Key prefix inside the bucket/container, so several users can share it: key 'a/b' "
            "is stored as '<prefix>/a/b'. '' (default) uses the whole bucket."
        ),
    )
    connect_timeout_s: float = Field(
        default=5.0, gt=0, description="Seconds to establish a connection (one attempt)."
    )
    request_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds for one whole request, from connecting to the last byte of the answer.",
    )
    retry_max_attempts: int = Field(
        default=MAX_ATTEMPTS,
        ge=1,
        le=MAX_ATTEMPTS,
        description=(
            "Attempts per operation against transient failures (refused/reset connections, "
            f"timeouts, 5xx, 429), at most {MAX_ATTEMPTS} (walstream.retry's cap). 1 = no retry."
        ),
    )
    retry_deadline_s: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Seconds after an operation's first attempt when no further attempt starts; the "
            "operation then fails saying the store was unreachable. An attempt in flight may "
            "add up to request_timeout_s."
        ),
    )

    @field_validator("prefix")
    @classmethod
    def _valid_prefix(cls, value: str) -> str:
        return validate_prefix(value)

    def client_options(self, allow_http: bool) -> ClientConfig:
        """obstore HTTP client options: our timeouts, and whether plain http:// is allowed."""
        return {
            "allow_http": allow_http,
            "connect_timeout": timedelta(seconds=self.connect_timeout_s),
            "timeout": timedelta(seconds=self.request_timeout_s),
        }

    @staticmethod
    def retry_config() -> RetryConfig:
        """obstore's own retries off: walstream.retry is the one retry layer."""
        return {"max_retries": 0}

    def retry_bounds(self) -> RetryBounds:
        """The bounds :class:`~walstream_objectstore._remote.RemoteObjectStore` retries within."""
        return RetryBounds(max_attempts=self.retry_max_attempts, deadline_s=self.retry_deadline_s)


def require_field(settings: RemoteSettings, field: str, url_form: str) -> None:
    """Refuse to open a store whose required ``field`` is empty, naming where to set it.

    (Required fields default to ``""`` so that settings without them still load, e.g.
    for ``walstream config show``; a store cannot be opened without them.)
    """
    if getattr(settings, field):
        return
    prefix = str(type(settings).model_config.get("env_prefix", ""))
    table = getattr(type(settings), "toml_table", "")
    raise SettingsError(
        f"invalid {type(settings).__name__}:\n  - {field}: required to open a store (settable as "
        f"{prefix}{field.upper()}, as {field} in [{table}] of walstream.toml, as an argument, "
        f"or in the URL {url_form})"
    )


def http_allowed(allow_http: bool | None, endpoint: str | None) -> bool:
    """``allow_http`` if set, else whether ``endpoint`` is a plain ``http://`` URL."""
    if allow_http is not None:
        return allow_http
    return endpoint is not None and endpoint.lower().startswith("http://")


def bucket_url(
    url: str, scheme: str, *, bucket_field: str, query_fields: dict[str, str]
) -> dict[str, Any]:
    """Settings from ``<scheme>://<bucket>/<prefix>?<query>``.

    ``query_fields`` maps accepted query parameters to settings fields; any
    other parameter, a user:password part, a port or a fragment is refused.
    Messages never repeat the URL's user-info part.
    """
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
    if parts.scheme.lower() != scheme:
        raise SettingsError(f"expected a {scheme}:// URL, not {shown!r}")
    if parts.username is not None or parts.password is not None:
        raise SettingsError(
            f"{scheme} URL {shown!r} carries credentials: give them as settings or in the "
            f"environment, never in the URL"
        )
    if parts.port is not None or parts.fragment:
        raise SettingsError(f"{scheme} URL {shown!r} must not have a port or a fragment")
    bucket = unquote(parts.netloc)
    if not bucket:
        raise SettingsError(f"{scheme} URL {shown!r} names no {bucket_field.replace('_', ' ')}")
    settings: dict[str, Any] = {bucket_field: bucket}
    prefix = unquote(parts.path).strip("/")
    if prefix:
        settings["prefix"] = prefix
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        field = query_fields.get(name)
        if field is None:
            accepted = ", ".join(sorted(query_fields)) or "none"
            raise SettingsError(
                f"{scheme} URL {shown!r}: unknown query parameter {name!r} (accepted: {accepted})"
            )
        settings[field] = value
    return settings
