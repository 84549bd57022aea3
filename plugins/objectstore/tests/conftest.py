"""Fixtures of the objectstore tests: the S3 test server and its control.

Tests that need S3 read the ``WALSTREAM_TEST_S3_*`` variables (``eval "$(scripts/s3proxy
start)"`` exports them). Without them they skip, except under ``WALSTREAM_REQUIRE_SERVICES=1``
(CI), where they fail. The fault tests also kill and restart that server through
``scripts/s3proxy`` with the same ``S3PROXY_RUN_DIR`` it was started with.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from walstream.objectstore import open_store
from walstream.testing.services import service_missing

sys.path.insert(0, str(Path(__file__).parent))

from objectstore_helpers import SCRIPT, ServerControl, s3_settings

S3_ENV = {
    "endpoint": "WALSTREAM_TEST_S3_ENDPOINT",
    "bucket": "WALSTREAM_TEST_S3_BUCKET",
    "region": "WALSTREAM_TEST_S3_REGION",
    "access_key_id": "WALSTREAM_TEST_S3_ACCESS_KEY_ID",
    "secret_access_key": "WALSTREAM_TEST_S3_SECRET_ACCESS_KEY",
}


def _missing(reason: str) -> None:
    service_missing(reason, what="the S3 tests")


@pytest.fixture(scope="session")
def s3_server() -> dict[str, str]:
    """Settings of the test S3 server's bucket (endpoint, bucket, region, credentials)."""
    values = {field: os.environ.get(env, "").strip() for field, env in S3_ENV.items()}
    unset = [S3_ENV[f] for f, v in values.items() if not v]
    if unset:
        _missing(
            f"{', '.join(unset)} not set: start a server with "
            f'`eval "$(scripts/s3proxy start)"` to run the S3 tests'
        )
    return values


async def _empty(settings: dict[str, Any]) -> None:
    async with await open_store("s3", settings) as store:
        for meta in await store.list():
            await store.delete(meta.key)


@pytest.fixture
def s3_fresh(s3_server: dict[str, str]) -> Iterator[dict[str, Any]]:
    """Settings of a fresh prefix of the test bucket; its objects are deleted afterwards."""
    settings = s3_settings(s3_server)
    yield settings
    asyncio.run(asyncio.wait_for(_empty({**settings, "retry_deadline_s": 5.0}), 60))


@pytest.fixture(scope="session")
def s3_control(s3_server: dict[str, str]) -> Iterator[ServerControl]:
    """Control of the test server, checked to be the one the ``WALSTREAM_TEST_S3_*`` name."""
    if not SCRIPT.is_file():
        _missing(f"{SCRIPT} does not exist: the fault tests need it to kill and start the server")
    control = ServerControl(os.environ.get("S3PROXY_RUN_DIR"))
    try:
        env = control.env()
    except (AssertionError, subprocess.TimeoutExpired) as exc:
        _missing(f"scripts/s3proxy env failed for S3PROXY_RUN_DIR={control.run_dir!r}: {exc}")
        raise
    if f"WALSTREAM_TEST_S3_ENDPOINT={s3_server['endpoint']}\n" not in env:
        _missing(
            f"the server of S3PROXY_RUN_DIR={control.run_dir!r} is not the one at "
            f"WALSTREAM_TEST_S3_ENDPOINT={s3_server['endpoint']}: set S3PROXY_RUN_DIR to the run "
            f"dir the test server was started with"
        )
    yield control
    control.start()  # whatever a test did, leave the server running
