"""Configuration with pydantic-settings.

The root model reads ``WALSTREAM_*`` variables and the top level of
``walstream.toml``; each driver has its own settings class with its own prefix
(``WALSTREAM_<DRIVER>_``) and TOML table (``[<driver>]``). Priority, highest
first: explicit overrides, environment, ``walstream.toml``, defaults.
The file is ``$WALSTREAM_CONFIG`` if set, else ``./walstream.toml``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from walstream.errors import SettingsError

CONFIG_ENV = "WALSTREAM_CONFIG"
DEFAULT_CONFIG_FILE = "walstream.toml"

S = TypeVar("S", bound=BaseSettings)


def config_file() -> Path:
    """The TOML file settings are read from (it need not exist)."""
    return Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG_FILE))


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise SettingsError(f"cannot read {path}: {exc}") from exc


class TomlTableSource(PydanticBaseSettingsSource):
    """One table of ``walstream.toml``: dotted names nest, empty means the top level."""

    def __init__(self, settings_cls: type[BaseSettings], table: str) -> None:
        super().__init__(settings_cls)
        data = _read_toml(config_file())
        for part in table.split(".") if table else ():
            section = data.get(part, {})
            if not isinstance(section, dict):
                raise SettingsError(f"{config_file()}: [{table}] must be a table")
            data = section
        # The top level also holds the drivers' tables: those are not the root's keys.
        # Every other key is passed on, so a misspelt one fails validation instead of
        # being silently ignored.
        self._data = {k: v for k, v in data.items() if table or not isinstance(v, dict)}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class WalstreamBaseSettings(BaseSettings):
    """Base of every walstream settings class: adds the TOML table source."""

    toml_table: ClassVar[str] = ""
    model_config = SettingsConfigDict(env_prefix="WALSTREAM_", extra="forbid")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        table = getattr(settings_cls, "toml_table", "")
        return (
            init_settings,
            env_settings,
            file_secret_settings,
            TomlTableSource(settings_cls, table),
        )


def driver_settings_config(driver: str) -> SettingsConfigDict:
    """``model_config`` for a driver's settings: env ``WALSTREAM_<DRIVER>_`` (dots become ``_``).

    Pair it with ``toml_table: ClassVar[str] = "<driver>"`` on the class: WAL
    backends use their name (``[woodpecker]``), object stores
    ``objectstore.<name>`` (``[objectstore.local]``, env ``WALSTREAM_OBJECTSTORE_LOCAL_``).
    """
    return SettingsConfigDict(
        env_prefix=f"WALSTREAM_{driver.upper().replace('.', '_')}_", extra="forbid"
    )


class WalstreamSettings(WalstreamBaseSettings):
    """Root settings: where data lives and which drivers run."""

    data_dir: Path = Field(default=Path("walstream-data"), description="Root of embedded state.")
    wal_backend: str = Field(default="woodpecker", description="Entry-point name in walstream.wal.")
    object_store: str = Field(
        default="local", description="Entry-point name in walstream.objectstore."
    )
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")


def format_validation_error(cls: type[BaseSettings], exc: ValidationError) -> str:
    """Name each bad field with the env variable and TOML key that can set it."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    table = getattr(cls, "toml_table", "")
    where_toml = f"[{table}] in {config_file()}" if table else f"the top level of {config_file()}"
    lines = [f"invalid {cls.__name__}:"]
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]) or "(settings)"
        if err["type"] == "extra_forbidden":
            known = ", ".join(sorted(cls.model_fields))
            lines.append(
                f"  - {name}: unknown setting (given as an argument or in {where_toml}); known: {known}"
            )
        else:
            lines.append(
                f"  - {name}: {err['msg']} (settable as {prefix}{name.upper()}, as {name} in {where_toml}, "
                f"or as an argument)"
            )
    return "\n".join(lines)


def load_driver_settings(cls: type[S], overrides: dict[str, Any]) -> S:
    """Instantiate ``cls`` from overrides, env and TOML; ``SettingsError`` names bad fields."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise SettingsError(format_validation_error(cls, exc)) from None


def load_settings(overrides: dict[str, Any] | None = None) -> WalstreamSettings:
    """The root settings, validated."""
    return load_driver_settings(WalstreamSettings, overrides or {})


def redacted(settings: BaseSettings) -> dict[str, Any]:
    """A printable dict of ``settings`` with every secret masked."""
    out: dict[str, Any] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = "**********" if value.get_secret_value() else ""
        elif isinstance(value, BaseSettings):
            value = redacted(value)
        elif isinstance(value, Path):
            value = str(value)
        out[name] = value
    return out
