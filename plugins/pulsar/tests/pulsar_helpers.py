"""Helpers shared by the Pulsar tests."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Any

from walstream.testing.services import ServiceScript
from walstream.testing.wal_contract import read_idle_until as read_through
from walstream_pulsar import PulsarBuilder, PulsarOpener

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "pulsar"


def make_opener(settings: dict[str, Any]) -> PulsarOpener:
    """An opener built from JSON-able settings."""
    opener = PulsarBuilder().build(settings)
    assert isinstance(opener, PulsarOpener)
    return opener


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pulsar_test_settings(url: str, **overrides: Any) -> dict[str, Any]:
    """JSON-able settings of a fresh set of topics (topic prefix) on the test broker."""
    settings: dict[str, Any] = {
        "service_url": url,
        "topic_prefix": f"t{uuid.uuid4().hex[:12]}-",
        "open_timeout_s": 60.0,
        "operation_timeout_s": 10,
        "append_timeout_s": 60.0,
    }
    settings.update(overrides)
    return settings


class BrokerControl(ServiceScript):
    """Kills and restarts the test broker through ``scripts/pulsar``."""

    def __init__(self, run_dir: str | None) -> None:
        super().__init__(SCRIPT, "PULSAR_RUN_DIR", run_dir, start_timeout_s=300)


__all__ = [
    "SCRIPT",
    "BrokerControl",
    "closed_port",
    "make_opener",
    "pulsar_test_settings",
    "read_through",
]
