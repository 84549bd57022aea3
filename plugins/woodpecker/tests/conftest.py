"""Fixtures of the woodpecker unit tests."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from walstream_woodpecker import WoodpeckerBuilder, WoodpeckerOpener
from wp_helpers import OpenerFactory


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A fresh root directory."""
    return tmp_path / "wal"


@pytest.fixture
async def make_opener(root: Path) -> AsyncIterator[OpenerFactory]:
    """Build openers over ``root`` with setting overrides; all closed at teardown."""
    openers: list[WoodpeckerOpener] = []

    def make(**overrides: Any) -> WoodpeckerOpener:
        settings = {"root": str(root), "reader_poll_interval_ms": 20, **overrides}
        opener = WoodpeckerBuilder().build(settings)
        assert isinstance(opener, WoodpeckerOpener)
        openers.append(opener)
        return opener

    yield make
    for opener in openers:
        await asyncio.wait_for(opener.close(), 10)


# --- the S3 test server (zero-disk mode on S3) ------------------------------------------------

import os  # noqa: E402
import subprocess  # noqa: E402

from s3_helpers import S3_ENV, SCRIPT, S3Control  # noqa: E402
from walstream.testing.services import service_missing  # noqa: E402


def _missing(reason: str) -> None:
    service_missing(reason, what="the S3 tests")


@pytest.fixture(scope="session")
def s3_server() -> dict[str, str]:
    """Endpoint, bucket, region and credentials of the test S3 server (skip if unset)."""
    values = {field: os.environ.get(env, "").strip() for field, env in S3_ENV.items()}
    unset = [S3_ENV[f] for f, v in values.items() if not v]
    if unset:
        _missing(
            f"{', '.join(unset)} not set: start a server with "
            f'`eval "$(scripts/s3proxy start)"` to run the zero-disk S3 tests'
        )
    return values


@pytest.fixture(scope="session")
def s3_control(s3_server: dict[str, str]) -> S3Control:
    """Control of the test server, checked to be the one the ``WALSTREAM_TEST_S3_*`` name."""
    if not SCRIPT.is_file():
        _missing(f"{SCRIPT} does not exist: the fault tests need it to kill and start the server")
    control = S3Control(os.environ.get("S3PROXY_RUN_DIR"))
    try:
        env = control.env()
    except (AssertionError, subprocess.TimeoutExpired) as exc:
        _missing(f"scripts/s3proxy env failed for S3PROXY_RUN_DIR={control.run_dir!r}: {exc}")
        raise
    if f"WALSTREAM_TEST_S3_ENDPOINT={s3_server['endpoint']}" not in env:
        _missing(
            f"the server of S3PROXY_RUN_DIR={control.run_dir!r} is not the one at "
            f"WALSTREAM_TEST_S3_ENDPOINT={s3_server['endpoint']}: set S3PROXY_RUN_DIR to the "
            f"run dir the test server was started with"
        )
    return control
