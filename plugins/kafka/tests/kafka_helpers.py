"""Helpers shared by the Kafka tests."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Any

from walstream.testing.services import ServiceScript
from walstream.testing.wal_contract import read_idle_until as read_through
from walstream_kafka import KafkaBuilder, KafkaOpener

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "kafka"


def make_opener(settings: dict[str, Any]) -> KafkaOpener:
    """An opener built from JSON-able settings."""
    opener = KafkaBuilder().build(settings)
    assert isinstance(opener, KafkaOpener)
    return opener


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kafka_test_settings(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """JSON-able settings of a fresh namespace (topic prefix) on the test broker."""
    settings: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "topic_prefix": f"t{uuid.uuid4().hex[:12]}-",
        "replication_factor": 1,
        "commit_interval_ms": 2.0,
        "open_timeout_s": 60.0,
        "request_timeout_s": 10.0,
        "append_timeout_s": 60.0,
    }
    settings.update(overrides)
    return settings


class BrokerControl(ServiceScript):
    """Kills and restarts the test broker through ``scripts/kafka``."""

    def __init__(self, run_dir: str | None) -> None:
        super().__init__(SCRIPT, "KAFKA_RUN_DIR", run_dir)


# read_through is the contract suite's read_idle_until
__all__ = [
    "SCRIPT",
    "BrokerControl",
    "closed_port",
    "kafka_test_settings",
    "make_opener",
    "read_through",
]
