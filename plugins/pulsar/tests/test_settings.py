"""PulsarSettings: defaults, env and TOML sources, validation with readable errors."""

from __future__ import annotations

from pathlib import Path

import pulsar  # type: ignore[import-untyped]
import pytest
from walstream.errors import SettingsError
from walstream.settings import redacted
from walstream_pulsar import PulsarBuilder, PulsarSettings
from walstream_pulsar.client import producer_kwargs, reader_kwargs


def load(**overrides: object) -> PulsarSettings:
    settings = PulsarBuilder().load_settings(dict(overrides))
    assert isinstance(settings, PulsarSettings)
    return settings


def test_defaults() -> None:
    s = load()
    assert s.service_url == "pulsar://localhost:6650"
    assert (s.tenant, s.namespace, s.topic_prefix) == ("public", "default", "walstream-")
    assert s.max_message_bytes == 1024 * 1024
    kwargs = producer_kwargs(s)
    assert kwargs["access_mode"] == pulsar.ProducerAccessMode.ExclusiveWithFencing
    assert kwargs["send_timeout_millis"] == 30_000
    assert kwargs["batching_enabled"] is True


def test_env_and_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toml = tmp_path / "walstream.toml"
    toml.write_text(
        '[pulsar]\nservice_url = "pulsar://b1:6650"\nnamespace = "walns"\nreceiver_queue_size = 5\n'
    )
    monkeypatch.setenv("WALSTREAM_CONFIG", str(toml))
    monkeypatch.setenv("WALSTREAM_PULSAR_RECEIVER_QUEUE_SIZE", "7")
    monkeypatch.setenv("WALSTREAM_PULSAR_PRODUCER_OVERRIDES", '{"compression_type": "LZ4"}')
    s = load()
    assert s.service_url == "pulsar://b1:6650"
    assert s.namespace == "walns"
    assert s.receiver_queue_size == 7  # env beats TOML
    assert producer_kwargs(s)["compression_type"] == "LZ4"
    assert reader_kwargs(s)["receiver_queue_size"] == 7
    assert reader_kwargs(s, 3)["receiver_queue_size"] == 3


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"service_url": "http://h:8080"}, "service_url"),
        ({"admin_url": "pulsar://h:6650"}, "admin_url"),
        ({"tenant": "a/b"}, "tenant"),
        ({"namespace": ""}, "namespace"),
        ({"topic_prefix": "bad prefix"}, "topic_prefix"),
        ({"max_message_bytes": 0}, "max_message_bytes"),
        ({"max_message_bytes": 5 * 1024 * 1024}, "max_message_bytes"),
        ({"append_timeout_s": 0}, "append_timeout_s"),
        ({"producer_overrides": {"access_mode": "Shared"}}, "producer_overrides"),
        ({"reader_overrides": {"start_message_id_inclusive": True}}, "reader_overrides"),
        ({"tls_certificate_file_path": "/c.pem"}, "tls_private_key_file_path"),
    ],
)
def test_invalid_settings_name_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(SettingsError) as info:
        load(**overrides)
    assert field in str(info.value)


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(SettingsError) as info:
        load(bootstrap_servers="x:1")
    assert "unknown setting" in str(info.value)


def test_token_is_secret() -> None:
    s = load(auth_token="eyJ.secret")
    assert "eyJ.secret" not in repr(s)
    assert redacted(s)["auth_token"] == "**********"


def test_build_takes_a_dict_or_settings() -> None:
    from walstream_pulsar import PulsarOpener

    assert isinstance(PulsarBuilder().build({"service_url": "pulsar://h:1"}), PulsarOpener)
    assert isinstance(PulsarBuilder().build(load()), PulsarOpener)
