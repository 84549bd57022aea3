from pathlib import Path

import pytest
from walstream.errors import SettingsError
from walstream.walimpls.registry import build_opener, get_builder
from walstream_woodpecker import WoodpeckerBuilder, WoodpeckerOpener, WoodpeckerSettings


def test_defaults() -> None:
    s = WoodpeckerSettings()
    assert s.root == Path("walstream-data/woodpecker")
    assert s.flush_interval_ms == 10
    assert s.flush_max_bytes == 2 * 1024 * 1024
    assert s.flush_max_entries == 1000
    assert s.segment_max_bytes == 256 * 1024 * 1024
    assert s.segment_max_age_s == 600
    assert s.segment_max_blocks == 1000
    assert s.max_message_bytes == 8 * 1024 * 1024
    assert s.fence_lock_timeout_s == 10
    assert s.reader_poll_interval_ms == 100


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("flush_interval_ms", -1),
        ("flush_max_bytes", 0),
        ("flush_max_entries", 0),
        ("segment_max_bytes", 0),
        ("segment_max_age_s", 0),
        ("segment_max_blocks", 0),
        ("max_message_bytes", 0),
        ("max_message_bytes", 2**31),
        ("fence_lock_timeout_s", 0),
        ("reader_poll_interval_ms", 0),
    ],
)
def test_bounds_are_validated(field: str, value: float) -> None:
    with pytest.raises(SettingsError, match=field):
        WoodpeckerBuilder().load_settings({field: value})


def test_env_and_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "walstream.toml"
    toml.write_text('[woodpecker]\nflush_max_entries = 7\nroot = "/from/toml"\n')
    monkeypatch.setenv("WALSTREAM_CONFIG", str(toml))
    monkeypatch.setenv("WALSTREAM_WOODPECKER_ROOT", str(tmp_path / "env"))
    s = WoodpeckerBuilder().load_settings({})
    assert isinstance(s, WoodpeckerSettings)
    assert s.flush_max_entries == 7
    assert s.root == tmp_path / "env"


def test_builder_through_registry(tmp_path: Path) -> None:
    builder = get_builder("woodpecker")
    assert isinstance(builder, WoodpeckerBuilder)
    opener = build_opener("woodpecker", {"root": str(tmp_path), "max_message_bytes": 1234})
    assert isinstance(opener, WoodpeckerOpener)
    assert opener.capabilities.max_message_bytes == 1234
    assert opener.capabilities.fencing and opener.capabilities.tail_read
    assert opener.root == tmp_path


def test_build_accepts_settings_object_and_refuses_others(tmp_path: Path) -> None:
    opener = WoodpeckerBuilder().build(WoodpeckerSettings(root=tmp_path))
    assert isinstance(opener, WoodpeckerOpener)
    from pydantic_settings import BaseSettings

    with pytest.raises(SettingsError):
        WoodpeckerBuilder().build(BaseSettings())
