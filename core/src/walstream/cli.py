"""The ``walstream`` command."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from walstream import __version__, plugins
from walstream.errors import WalstreamError
from walstream.settings import load_driver_settings, load_settings, redacted

console = Console()


@click.group()
@click.version_option(__version__, prog_name="walstream")
def main() -> None:
    """walstream: a durable, ordered, replayable write-ahead log service."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@main.command("plugins")
def plugins_cmd() -> None:
    """List installed WAL backends, object stores and observers with their status."""
    logging.getLogger("walstream.plugins").setLevel(logging.ERROR)  # the table shows each failure
    table = Table(title="walstream plugins")
    for col in ("group", "name", "distribution", "version", "status"):
        table.add_column(col, overflow="fold")
    for group in (
        plugins.WAL_GROUP,
        plugins.OBJECTSTORE_GROUP,
        plugins.SEGMENT_POLICY_GROUP,
        plugins.HOOKS_GROUP,
    ):
        infos = plugins.discover(group)
        if not infos:
            table.add_row(group, "-", "-", "-", "[dim]none installed[/dim]")
        for info in infos:
            status = (
                "[green]ok[/green]"
                if info.status == "ok"
                else f"[red]{info.status}[/red]: {escape(str(info.error))}"
            )
            table.add_row(group, info.name, info.distribution, info.version, status)
    console.print(table)


@main.group("config")
def config_cmd() -> None:
    """Inspect configuration."""


@config_cmd.command("show")
def config_show() -> None:
    """Print the effective configuration (secrets masked) as JSON."""
    try:
        root = load_settings()
        out: dict[str, Any] = {"walstream": redacted(root)}
        for group, section in (
            (plugins.WAL_GROUP, "wal"),
            (plugins.OBJECTSTORE_GROUP, "objectstore"),
        ):
            drivers: dict[str, Any] = out.setdefault(section, {})
            for info in plugins.discover(group):
                cls = getattr(info.obj, "settings_class", None)
                if info.status == "ok" and cls is not None:
                    drivers[info.name] = redacted(load_driver_settings(cls, {}))
    except WalstreamError as exc:
        console.print(f"[red]configuration error[/red]\n{escape(str(exc))}")
        sys.exit(2)
    click.echo(json.dumps(out, indent=2, default=str))


@main.command("demo")
@click.option(
    "--messages",
    default=20_000,
    show_default=True,
    type=click.IntRange(1),
    help="Messages to append.",
)
@click.option(
    "--vchannels",
    default=4,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Vchannels to spread them over.",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Defaults to settings data_dir.",
)
@click.option(
    "--backend", default=None, help="WAL backend entry-point name (default: settings wal_backend)."
)
def demo_cmd(messages: int, vchannels: int, data_dir: Path | None, backend: str | None) -> None:
    """Append to and tail several vchannels on the embedded default WAL; print throughput."""
    from walstream.demo import run_demo

    if vchannels > messages:
        raise click.BadParameter(
            f"{vchannels} vchannels need at least as many messages", param_hint="--messages"
        )
    try:
        settings = load_settings()
        result = asyncio.run(
            run_demo(
                data_dir or settings.data_dir,
                messages=messages,
                vchannels=vchannels,
                backend=backend or settings.wal_backend,
                console=console,
            )
        )
    except WalstreamError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        sys.exit(1)
    console.print(
        f"[bold]{result.messages}[/bold] messages acknowledged durably and tailed by {vchannels} readers: "
        f"[bold]{result.msgs_per_s:,.0f} msg/s[/bold], {result.mb_per_s:.1f} MB/s, "
        f"ack latency p50 {result.ack_p50_ms:.2f} ms, p99 {result.ack_p99_ms:.2f} ms"
    )
