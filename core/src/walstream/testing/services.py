"""Real services in plugin tests: skip or fail when one is missing, and fault control.

A backend's tests run against a real service (a Kafka broker, a Pulsar standalone, an S3
server) that a script of the project starts. ``service_missing`` skips a test when the
service is not there, unless ``WALSTREAM_REQUIRE_SERVICES=1`` (CI) says it must run, in
which case it fails. ``ServiceScript`` drives such a script's ``start``/``stop``/``kill``/
``env`` subcommands for fault tests, on the run dir the service was started with.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

REQUIRE_SERVICES_ENV = "WALSTREAM_REQUIRE_SERVICES"


def service_missing(reason: str, *, what: str = "these tests") -> NoReturn:
    """Skip with ``reason``, or fail when ``WALSTREAM_REQUIRE_SERVICES=1``."""
    if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
        pytest.fail(f"{reason} (and {REQUIRE_SERVICES_ENV}=1 says {what} must run)")
    pytest.skip(reason)


class ServiceScript:
    """One service started by ``script`` (e.g. ``scripts/kafka``) on one run dir.

    ``run_dir_var`` is the environment variable the script reads its run dir from
    (``KAFKA_RUN_DIR``, ...); ``run_dir=None`` leaves the script's default. Every call
    is bounded; a failing command raises ``AssertionError`` with the script's stderr.
    """

    def __init__(
        self,
        script: Path,
        run_dir_var: str,
        run_dir: str | None,
        *,
        start_timeout_s: float = 180.0,
        kill_timeout_s: float = 60.0,
    ) -> None:
        self.script = script
        self.run_dir_var = run_dir_var
        self.run_dir = run_dir
        self._start_timeout = start_timeout_s
        self._kill_timeout = kill_timeout_s

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.script.name}, {self.run_dir_var}={self.run_dir!r})"

    def run(self, command: str, timeout: float) -> str:
        """``<script> <command>``; its stdout."""
        env = dict(os.environ)
        if self.run_dir:
            env[self.run_dir_var] = self.run_dir
        done = subprocess.run(
            [str(self.script), command],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"scripts/{self.script.name} {command} failed ({done.returncode}): "
                f"{done.stderr[-2000:]}"
            )
        return done.stdout

    def kill(self) -> None:
        """SIGKILL the service (its data, ports and credentials stay)."""
        self.run("kill", self._kill_timeout)

    def start(self) -> None:
        """Start it again (same ports, same data) and wait until it serves."""
        self.run("start", self._start_timeout)

    def stop(self) -> None:
        """Stop it cleanly."""
        self.run("stop", self._start_timeout)

    def env(self) -> str:
        """What ``<script> env`` prints (the export lines)."""
        return self.run("env", 30)
