"""Settings: env over TOML over defaults, errors naming the field, secrets never printed."""

from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner
from pydantic import SecretStr
from walstream.cli import main
from walstream.errors import SettingsError
from walstream.settings import (
    WalstreamBaseSettings,
    driver_settings_config,
    load_driver_settings,
    load_settings,
    redacted,
)


class DriverSettings(WalstreamBaseSettings):
    toml_table: ClassVar[str] = "fakedrv"
    model_config = driver_settings_config("fakedrv")
    flush_ms: int = 10
    password: SecretStr = SecretStr("")


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "walstream.toml"
    monkeypatch.setenv("WALSTREAM_CONFIG", str(path))
    return path


def test_sources_and_priority(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config.write_text('data_dir = "/data/x"\n[fakedrv]\nflush_ms = 3\npassword = "hunter2"\n')
    assert load_driver_settings(DriverSettings, {}).flush_ms == 3
    monkeypatch.setenv("WALSTREAM_FAKEDRV_FLUSH_MS", "5")
    assert load_driver_settings(DriverSettings, {}).flush_ms == 5
    assert load_driver_settings(DriverSettings, {"flush_ms": 7}).flush_ms == 7
    assert str(load_settings().data_dir) == "/data/x"


def test_bad_field_is_named(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WALSTREAM_FAKEDRV_FLUSH_MS", "soon")
    with pytest.raises(
        SettingsError,
        match=r"flush_ms: .*settable as WALSTREAM_FAKEDRV_FLUSH_MS, as flush_ms in \[fakedrv\]",
    ):
        load_driver_settings(DriverSettings, {})
    monkeypatch.setenv("WALSTREAM_LOG_LEVEL", "LOUD")
    with pytest.raises(SettingsError, match="log_level"):
        load_settings()


def test_secrets_are_masked(config: Path) -> None:
    config.write_text('[fakedrv]\npassword = "hunter2"\n')
    s = load_driver_settings(DriverSettings, {})
    assert s.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(s) and "hunter2" not in str(redacted(s))


def test_broken_toml_is_a_clear_error(config: Path) -> None:
    config.write_text("data_dir = [unclosed\n")
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings()


def test_cli_config_show_and_plugins(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config.write_text('[memory]\nnamespace = "from-toml"\n')
    runner = CliRunner()
    out = runner.invoke(main, ["config", "show"])
    assert out.exit_code == 0, out.output
    assert '"namespace": "from-toml"' in out.output
    out = runner.invoke(main, ["plugins"])
    assert out.exit_code == 0 and "memory" in out.output
    monkeypatch.setenv("WALSTREAM_MEMORY_MAX_MESSAGE_BYTES", "-1")
    out = runner.invoke(main, ["config", "show"])
    assert out.exit_code == 2 and "max_message_bytes" in out.output
    # The TOML table is named in brackets; the terminal markup must not eat it.
    assert "[memory]" in out.output, out.output


def test_misspelt_settings_are_refused(config: Path) -> None:
    with pytest.raises(
        SettingsError, match=r"flush_mss: unknown setting .*known: flush_ms, password"
    ):
        load_driver_settings(DriverSettings, {"flush_mss": 3})
    config.write_text('data_dirr = "/x"\n[fakedrv]\nflush_ms = 3\n')
    with pytest.raises(SettingsError, match=r"data_dirr: unknown setting .*top level"):
        load_settings()
    config.write_text("[fakedrv]\npasword = 'x'\n")
    with pytest.raises(SettingsError, match=r"pasword: unknown setting .*\[fakedrv\]"):
        load_driver_settings(DriverSettings, {})
