"""Fixtures of the Kafka backend tests: the broker, settings, and broker fault control.

Tests that need a broker read ``WALSTREAM_TEST_KAFKA_BOOTSTRAP`` (``eval "$(scripts/kafka
start)"`` exports it). Without it they skip, except under ``WALSTREAM_REQUIRE_SERVICES=1``
(CI), where they fail. The fault tests also kill and restart that broker through
``scripts/kafka`` with the same ``KAFKA_RUN_DIR`` it was started with.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from walstream.testing.services import service_missing

sys.path.insert(0, str(Path(__file__).parent))

from kafka_helpers import SCRIPT, BrokerControl, kafka_test_settings

BOOTSTRAP_ENV = "WALSTREAM_TEST_KAFKA_BOOTSTRAP"


def _missing(reason: str) -> None:
    service_missing(reason, what="the Kafka tests")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """``host:port`` of the test broker."""
    value = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if not value:
        _missing(
            f"{BOOTSTRAP_ENV} is not set: start a broker with "
            f'`eval "$(scripts/kafka start)"` to run the Kafka tests'
        )
    return value


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> dict[str, Any]:
    """Settings of a fresh, empty namespace on the test broker."""
    return kafka_test_settings(kafka_bootstrap)


@pytest.fixture(scope="session")
def broker_control(kafka_bootstrap: str) -> BrokerControl:
    """Control of the test broker, checked to be the one at ``kafka_bootstrap``."""
    if not SCRIPT.is_file():
        _missing(f"{SCRIPT} does not exist: the fault tests need it to kill and start the broker")
    control = BrokerControl(os.environ.get("KAFKA_RUN_DIR"))
    try:
        env = control.env()
    except (AssertionError, subprocess.TimeoutExpired) as exc:
        _missing(f"scripts/kafka env failed for KAFKA_RUN_DIR={control.run_dir!r}: {exc}")
        raise
    if f"={kafka_bootstrap}" not in env:
        _missing(
            f"the broker of KAFKA_RUN_DIR={control.run_dir!r} ({env.strip()!r}) is not the one "
            f"at {BOOTSTRAP_ENV}={kafka_bootstrap}: set KAFKA_RUN_DIR to the run dir the test "
            f"broker was started with"
        )
    return control
