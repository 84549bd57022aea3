"""KafkaSettings: defaults, env and TOML sources, validation with readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from walstream.errors import SettingsError
from walstream.settings import redacted
from walstream_kafka import KafkaBuilder, KafkaSettings
from walstream_kafka.config import consumer_config, producer_config


def load(**overrides: object) -> KafkaSettings:
    settings = KafkaBuilder().load_settings(dict(overrides))
    assert isinstance(settings, KafkaSettings)
    return settings


def test_defaults() -> None:
    s = load()
    assert s.bootstrap_servers == "localhost:9092"
    assert s.max_message_bytes == 1024 * 1024
    assert s.retention_ms == -1
    assert s.record_limit_bytes == s.max_message_bytes + s.record_overhead_bytes


def test_env_and_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toml = tmp_path / "walstream.toml"
    toml.write_text('[kafka]\nbootstrap_servers = "b1:1,b2:2"\nretention_ms = 5000\n')
    monkeypatch.setenv("WALSTREAM_CONFIG", str(toml))
    monkeypatch.setenv("WALSTREAM_KAFKA_RETENTION_MS", "7000")
    monkeypatch.setenv("WALSTREAM_KAFKA_PRODUCER_OVERRIDES", '{"compression.type": "lz4"}')
    s = load()
    assert s.bootstrap_servers == "b1:1,b2:2"
    assert s.retention_ms == 7000  # env beats TOML
    assert s.producer_overrides == {"compression.type": "lz4"}
    assert producer_config(s, None)["compression.type"] == "lz4"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"bootstrap_servers": "no-port"}, "bootstrap_servers"),
        ({"bootstrap_servers": "h:99999"}, "bootstrap_servers"),
        ({"topic_prefix": "bad prefix"}, "topic_prefix"),
        ({"replication_factor": 0}, "replication_factor"),
        ({"max_message_bytes": 0}, "max_message_bytes"),
        ({"append_timeout_s": 0}, "append_timeout_s"),
        ({"producer_overrides": {"acks": "1"}}, "producer_overrides"),
        ({"producer_overrides": {"enable.idempotence": False}}, "producer_overrides"),
        ({"consumer_overrides": {"isolation.level": "read_uncommitted"}}, "consumer_overrides"),
        ({"security_protocol": "SASL_SSL"}, "sasl_mechanism"),
        ({"sasl_username": "u"}, "security_protocol"),
        ({"replication_factor": 1, "min_insync_replicas": 2}, "min_insync_replicas"),
        ({"ssl_certificate_location": "/c.pem"}, "ssl_key_location"),
    ],
)
def test_invalid_settings_name_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(SettingsError) as info:
        load(**overrides)
    assert field in str(info.value)


def test_secrets_are_secret() -> None:
    s = load(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password="hunter2",
    )
    assert "hunter2" not in repr(s) and "hunter2" not in str(redacted(s))
    assert producer_config(s, None)["sasl.password"] == "hunter2"


def test_guarantees_cannot_be_overridden() -> None:
    s = load(
        producer_overrides={"linger.ms": 50, "batch.num.messages": 5000},
        consumer_overrides={"fetch.min.bytes": 10},
    )
    p = producer_config(s, "txn")
    assert p["acks"] == "all" and p["enable.idempotence"] is True
    assert p["transactional.id"] == "txn" and p["linger.ms"] == 50
    assert p["message.timeout.ms"] < p["transaction.timeout.ms"]
    c = consumer_config(s)
    assert c["isolation.level"] == "read_committed" and c["enable.auto.commit"] is False
    assert c["fetch.min.bytes"] == 10


def test_capabilities_report_the_limit() -> None:
    opener = KafkaBuilder().build({"max_message_bytes": 12345})
    assert opener.capabilities.max_message_bytes == 12345
    assert opener.capabilities.fencing and opener.capabilities.durable_across_processes
