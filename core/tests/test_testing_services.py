"""The service helpers plugin tests share: skip-or-fail, and script control."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from walstream.testing.services import REQUIRE_SERVICES_ENV, ServiceScript, service_missing


def _script(tmp_path: Path) -> Path:
    script = tmp_path / "fakesvc"
    script.write_text(
        "#!/bin/sh\n"
        'echo "$1 run_dir=${FAKE_RUN_DIR:-default}"\n'
        '[ "$1" = broken ] && { echo "it broke" >&2; exit 3; }\n'
        "exit 0\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_script_commands_get_the_run_dir(tmp_path: Path) -> None:
    svc = ServiceScript(_script(tmp_path), "FAKE_RUN_DIR", "/x/run")
    assert svc.env().strip() == "env run_dir=/x/run"
    assert svc.run("kill", 5).strip() == "kill run_dir=/x/run"
    assert ServiceScript(_script(tmp_path), "FAKE_RUN_DIR", None).env().strip() == (
        "env run_dir=default"
    )


def test_a_failing_command_names_itself_and_its_stderr(tmp_path: Path) -> None:
    svc = ServiceScript(_script(tmp_path), "FAKE_RUN_DIR", None)
    with pytest.raises(AssertionError, match=r"scripts/fakesvc broken failed \(3\): it broke"):
        svc.run("broken", 5)


def test_missing_service_skips_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_SERVICES_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no broker"):
        service_missing("no broker")
    monkeypatch.setenv(REQUIRE_SERVICES_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=r"no broker .*the Kafka tests must run"):
        service_missing("no broker", what="the Kafka tests")
