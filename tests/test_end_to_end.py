"""Cross-package checks: the installed distributions work together as a user runs them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def walstream(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the ``walstream`` command as a user would."""
    full_env = {
        **os.environ,
        "WALSTREAM_CONFIG": str(cwd / "walstream.toml"),
        "COLUMNS": "200",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-c", "from walstream.cli import main; main()", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_plugins_lists_every_installed_distribution(tmp_path: Path) -> None:
    out = walstream("plugins", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for name, dist in (
        ("woodpecker", "walstream-woodpec"),
        ("local", "walstream-objects"),
        ("memory", "walstream"),
    ):
        assert name in out.stdout and dist in out.stdout
    assert "error" not in out.stdout


def test_demo_on_the_embedded_default(tmp_path: Path) -> None:
    out = walstream(
        "demo",
        "--messages",
        "3000",
        "--vchannels",
        "3",
        "--data-dir",
        str(tmp_path / "data"),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3000 messages acknowledged durably and tailed by 3 readers" in " ".join(
        out.stdout.split()
    )
    assert any((tmp_path / "data" / "woodpecker").rglob("*")), (
        "the demo wrote nothing under its data dir"
    )


def test_config_show_merges_file_env_and_masks_nothing_secret(tmp_path: Path) -> None:
    (tmp_path / "walstream.toml").write_text(
        'data_dir = "/srv/ws"\n[woodpecker]\nflush_interval_ms = 5\n[objectstore.local]\nroot = "/srv/objects"\n'
    )
    out = walstream(
        "config", "show", cwd=tmp_path, env={"WALSTREAM_WOODPECKER_FLUSH_MAX_ENTRIES": "10"}
    )
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["walstream"]["data_dir"] == "/srv/ws"
    assert shown["wal"]["woodpecker"]["flush_interval_ms"] == 5
    assert shown["wal"]["woodpecker"]["flush_max_entries"] == 10
    assert shown["objectstore"]["local"]["root"] == "/srv/objects"


def test_bad_setting_fails_at_start_naming_the_field(tmp_path: Path) -> None:
    out = walstream(
        "demo",
        "--messages",
        "10",
        "--data-dir",
        str(tmp_path),
        cwd=tmp_path,
        env={"WALSTREAM_WOODPECKER_FLUSH_MAX_BYTES": "lots"},
    )
    assert out.returncode != 0
    assert (
        "flush_max_bytes" in out.stdout + out.stderr
        and "WALSTREAM_WOODPECKER_FLUSH_MAX_BYTES" in out.stdout + out.stderr
    )


@pytest.mark.parametrize("backend", ["woodpecker", "memory"])
def test_observers_hear_opens_appends_and_closes(backend: str, tmp_path: Path) -> None:
    import asyncio

    from walstream import hooks
    from walstream.message import MutableMessage
    from walstream.walimpls import PChannelInfo
    from walstream.walimpls.observed import open_observed
    from walstream.walimpls.registry import build_opener

    events: list[str] = []

    class Recorder:
        @hooks.hookimpl
        def walstream_wal_opened(self, pchannel: PChannelInfo, wal_name: str) -> None:
            events.append(f"opened {pchannel.name} {wal_name}")

        @hooks.hookimpl
        def walstream_messages_appended(
            self, pchannel: PChannelInfo, message_ids: list[object]
        ) -> None:
            events.append(f"appended {len(message_ids)}")

        @hooks.hookimpl
        def walstream_pchannel_fenced(self, pchannel: PChannelInfo) -> None:
            events.append(f"fenced {pchannel.term}")

        @hooks.hookimpl
        def walstream_wal_closed(self, pchannel: PChannelInfo, wal_name: str) -> None:
            events.append("closed")

    settings = {"root": str(tmp_path)} if backend == "woodpecker" else {"namespace": str(tmp_path)}
    recorder = Recorder()
    hooks.register(recorder)
    try:

        async def go() -> None:
            async with build_opener(backend, settings) as opener:
                old = await open_observed(opener, PChannelInfo("obs", 1))
                await old.append(MutableMessage.raw(b"a"))
                new = await open_observed(opener, PChannelInfo("obs", 2))
                with pytest.raises(Exception, match="fenced"):
                    await old.append(MutableMessage.raw(b"b"))
                await old.close()
                await new.close()

        asyncio.run(go())
    finally:
        hooks.unregister(recorder)
    assert events == [
        f"opened obs {backend}",
        "appended 1",
        f"opened obs {backend}",
        "fenced 1",
        "closed",
        "closed",
    ]
