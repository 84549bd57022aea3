"""Fixtures of the Pulsar backend tests: the broker, settings, and broker fault control.

Tests that need a broker read ``WALSTREAM_TEST_PULSAR_URL`` (``eval "$(scripts/pulsar
start)"`` exports it). Without it they skip, except under ``WALSTREAM_REQUIRE_SERVICES=1``
(CI), where they fail. The fault tests also kill and restart that broker through
``scripts/pulsar`` with the same ``PULSAR_RUN_DIR`` it was started with.
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

from pulsar_helpers import SCRIPT, BrokerControl, pulsar_test_settings

URL_ENV = "WALSTREAM_TEST_PULSAR_URL"


def _missing(reason: str) -> None:
    service_missing(reason, what="the Pulsar tests")


@pytest.fixture(scope="session")
def pulsar_url() -> str:
    """``pulsar://host:port`` of the test broker."""
    value = os.environ.get(URL_ENV, "").strip()
    if not value:
        _missing(
            f"{URL_ENV} is not set: start a broker with "
            f'`eval "$(scripts/pulsar start)"` to run the Pulsar tests'
        )
    return value


@pytest.fixture
def pulsar_settings(pulsar_url: str) -> dict[str, Any]:
    """Settings of a fresh set of topics on the test broker."""
    return pulsar_test_settings(pulsar_url)


@pytest.fixture(scope="session")
def broker_control(pulsar_url: str) -> BrokerControl:
    """Control of the test broker, checked to be the one at ``pulsar_url``."""
    if not SCRIPT.is_file():
        _missing(f"{SCRIPT} does not exist: the fault tests need it to kill and start the broker")
    control = BrokerControl(os.environ.get("PULSAR_RUN_DIR"))
    try:
        env = control.env()
    except (AssertionError, subprocess.TimeoutExpired) as exc:
        _missing(f"scripts/pulsar env failed for PULSAR_RUN_DIR={control.run_dir!r}: {exc}")
        raise
    if f"={pulsar_url}" not in env:
        _missing(
            f"the broker of PULSAR_RUN_DIR={control.run_dir!r} ({env.strip()!r}) is not the one "
            f"at {URL_ENV}={pulsar_url}: set PULSAR_RUN_DIR to the run dir the test broker was "
            f"started with"
        )
    return control
