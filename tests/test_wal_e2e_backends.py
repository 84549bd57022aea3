"""The streaming WAL end to end on every real backend: concurrent mixed workloads through the
whole chain, read by RW and RO scanners (All, StartFrom + timetick filter), checked against the
model (``walstream.wal.workload.check_workload``).

Backends: Woodpecker on local files, zero-disk Woodpecker on S3 (S3Proxy), Kafka and Pulsar.
The service-backed ones read the variables their ``scripts/<service> start`` exports
(``eval "$(scripts/s3proxy start)"``, ``scripts/kafka``, ``scripts/pulsar``). A service that is
not set up, or not answering, skips its case, unless ``WALSTREAM_REQUIRE_SERVICES=1`` (CI),
where it fails. Every example runs on a fresh pchannel under a fresh topic prefix or object
prefix, so examples never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from walstream.metastore import SQLiteMetastore
from walstream.testing.services import service_missing
from walstream.testing.wal_workload import workload_ops
from walstream.tso import TimestampOracle
from walstream.wal.workload import Op, check_workload
from walstream.walimpls.registry import build_opener

ops_strategy = workload_ops(max_size=12)

Env = dict[str, str]
SettingsFactory = Callable[[Path], dict[str, Any]]
"""JSON-able backend settings of one example, on a fresh namespace; given its run dir."""


@dataclass(frozen=True)
class Backend:
    """One backend under the workload check, and its budget."""

    id: str
    wal: str
    """Entry-point name of the WAL backend."""
    examples: int
    timeout_s: float
    """Bound of one example: open, workload, every reader, close."""
    connect: Callable[[], SettingsFactory]
    """Checks the service is there (skip or fail if not); the settings factory."""


def _missing(reason: str, backend: str) -> NoReturn:
    service_missing(reason, what=f"the end-to-end workload check on {backend}")


def _require_env(names: list[str], script: str, backend: str) -> Env:
    values = {name: os.environ.get(name, "").strip() for name in names}
    unset = [name for name, value in values.items() if not value]
    if unset:
        _missing(
            f'{", ".join(unset)} not set: start it with `eval "$(scripts/{script} start)"` '
            f"to run the end-to-end workload check on {backend}",
            backend,
        )
    return values


def _require_listening(address: str, what: str, backend: str) -> None:
    """``address`` (``host:port`` or a URL) accepts TCP connections."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    host, port = parts.hostname or "127.0.0.1", parts.port
    if port is None:
        _missing(f"{what}={address!r} names no port", backend)
    try:
        with socket.create_connection((host, port), timeout=2.0):
            pass
    except OSError as exc:
        _missing(f"nothing answers at {what}={address} ({exc}): is the service running?", backend)


def _fresh_prefix() -> str:
    return f"e2e{uuid.uuid4().hex[:12]}-"


def _woodpecker_local() -> SettingsFactory:
    return lambda run: {"root": str(run / "wp")}


def _woodpecker_s3() -> SettingsFactory:
    env = _require_env(
        [
            "WALSTREAM_TEST_S3_ENDPOINT",
            "WALSTREAM_TEST_S3_BUCKET",
            "WALSTREAM_TEST_S3_REGION",
            "WALSTREAM_TEST_S3_ACCESS_KEY_ID",
            "WALSTREAM_TEST_S3_SECRET_ACCESS_KEY",
        ],
        "s3proxy",
        "zero-disk Woodpecker on S3",
    )
    endpoint = env["WALSTREAM_TEST_S3_ENDPOINT"]
    _require_listening(endpoint, "WALSTREAM_TEST_S3_ENDPOINT", "zero-disk Woodpecker on S3")

    def make(run: Path) -> dict[str, Any]:
        return {
            "root": str(run / "wp"),
            "storage": "object",
            "object_store_url": f"s3://{env['WALSTREAM_TEST_S3_BUCKET']}/{_fresh_prefix()}",
            "object_store": {
                "endpoint": endpoint,
                "region": env["WALSTREAM_TEST_S3_REGION"],
                "access_key_id": env["WALSTREAM_TEST_S3_ACCESS_KEY_ID"],
                "secret_access_key": env["WALSTREAM_TEST_S3_SECRET_ACCESS_KEY"],
                "allow_http": True,
                "connect_timeout_s": 2.0,
                "request_timeout_s": 5.0,
            },
            "object_flush_interval_ms": 5,
            "object_reader_poll_interval_ms": 20,
        }

    return make


def _kafka() -> SettingsFactory:
    bootstrap = _require_env(["WALSTREAM_TEST_KAFKA_BOOTSTRAP"], "kafka", "Kafka")[
        "WALSTREAM_TEST_KAFKA_BOOTSTRAP"
    ]
    _require_listening(bootstrap, "WALSTREAM_TEST_KAFKA_BOOTSTRAP", "Kafka")
    return lambda run: {
        "bootstrap_servers": bootstrap,
        "topic_prefix": _fresh_prefix(),
        "replication_factor": 1,
        "commit_interval_ms": 2.0,
        "open_timeout_s": 30.0,
        "request_timeout_s": 10.0,
        "append_timeout_s": 30.0,
    }


def _pulsar() -> SettingsFactory:
    url = _require_env(["WALSTREAM_TEST_PULSAR_URL"], "pulsar", "Pulsar")[
        "WALSTREAM_TEST_PULSAR_URL"
    ]
    _require_listening(url, "WALSTREAM_TEST_PULSAR_URL", "Pulsar")
    return lambda run: {
        "service_url": url,
        "topic_prefix": _fresh_prefix(),
        "open_timeout_s": 30.0,
        "operation_timeout_s": 10,
        "append_timeout_s": 30.0,
    }


# About 0.3 s (local), 0.5 s (S3), 0.7 s (Pulsar) and 1.1 s (Kafka) an example on 2 cores:
# the whole test takes about 20 s.
BACKENDS = [
    Backend("woodpecker-local", "woodpecker", 10, 30.0, _woodpecker_local),
    Backend("woodpecker-s3", "woodpecker", 10, 30.0, _woodpecker_s3),
    Backend("kafka", "kafka", 10, 45.0, _kafka),
    Backend("pulsar", "pulsar", 10, 45.0, _pulsar),
]


@pytest.fixture(autouse=True)
def _no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WALSTREAM_CONFIG", str(tmp_path / "walstream.toml"))


@pytest.mark.parametrize("backend", BACKENDS, ids=[b.id for b in BACKENDS])
def test_mixed_workload_every_reader_sees_exactly_the_committed_stream(
    backend: Backend, tmp_path: Path
) -> None:
    make_settings = backend.connect()

    async def run_example(ops: list[Op], anchor: int) -> None:
        run = tmp_path / uuid.uuid4().hex
        run.mkdir()
        async with (
            SQLiteMetastore(run / "meta.sqlite3") as ms,
            TimestampOracle(ms) as tso,
            build_opener(backend.wal, make_settings(run)) as opener,
        ):
            await check_workload(opener, tso, ops, anchor)

    @settings(
        max_examples=backend.examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(ops=ops_strategy, anchor=st.integers(0, 1000))
    # Every run, on every backend: WAL-generated messages (CreateSegment of the txn body)
    # after the last committed one, which RW and RO readers must still agree on ...
    @example(ops=[Op("txn_rollback")], anchor=0)
    # ... and a transaction expiring while plain appends go on.
    @example(ops=[Op("txn_expire", size=2), Op("insert", vchannel=1), Op("flush")], anchor=1)
    def check(ops: list[Op], anchor: int) -> None:
        asyncio.run(asyncio.wait_for(run_example(ops, anchor), backend.timeout_s))

    check()
