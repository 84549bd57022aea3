"""Durable append throughput and ack latency of Woodpecker-local against a raw baseline.

For each entry size, in one run on the same disk:

- ``baseline``: a plain Python loop that encodes the same messages with the same codec,
  frames them into CRC-protected blocks, and group-commits with the same policy as the
  backend (flush at 1000 entries, 2 MiB or 10 ms) with ``os.fdatasync``; ack latency is
  from the moment an entry is handed to the loop until its block is synced.
- ``woodpecker``: ``WALImpl.append`` through the plugin registry with many appends in
  flight, same policy (the backend's defaults).
- ``woodpecker @50%``: half of the measured woodpecker rate on a fixed schedule, by the
  same pool of writers, for the ack latency a caller sees when the log is not saturated.

Usage: ``uv run python bench/wal_append.py [--sizes 100,1024,65536] [--seconds 4]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import struct
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from walstream.message import MutableMessage, encode
from walstream.walimpls import PChannelInfo
from walstream.walimpls.registry import build_opener

FLUSH_ENTRIES = 1000
FLUSH_BYTES = 2 * 1024 * 1024
FLUSH_INTERVAL_S = 0.010
_HEADER = struct.Struct(">4sIQII")


@dataclass
class Result:
    """One measured configuration."""

    name: str
    size: int
    messages: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def mb_s(self) -> float:
        return self.messages * self.size / self.seconds / 1e6

    def pct(self, q: float) -> float:
        lat = sorted(self.latencies)
        return lat[min(len(lat) - 1, int(len(lat) * q))] * 1000 if lat else float("nan")


def message(size: int, seq: int) -> MutableMessage:
    """The message appended as number ``seq``: ``size`` payload bytes, one property."""
    return MutableMessage.raw(os.urandom(16) * (size // 16) + b"x" * (size % 16), {"seq": str(seq)})


def baseline(size: int, seconds: float, path: Path) -> Result:
    """Group commit in a plain loop: same codec bytes, same policy, fdatasync per block."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    latencies: list[float] = []
    pending: list[bytes] = []
    pending_t: list[float] = []
    pending_bytes = 0
    block_no = first = count = 0
    msgs = [message(size, i) for i in range(64)]
    start = time.perf_counter()
    deadline = start + seconds

    def flush() -> None:
        nonlocal pending, pending_t, pending_bytes, block_no, first
        data = b"".join(struct.pack(">I", len(e)) + e for e in pending)
        header = _HEADER.pack(b"BLK1", block_no, first, len(pending), len(data))
        os.write(fd, struct.pack(">I", zlib.crc32(data, zlib.crc32(header))) + header + data)
        os.fdatasync(fd)
        done = time.perf_counter()
        latencies.extend(done - t for t in pending_t)
        block_no += 1
        first += len(pending)
        pending, pending_t, pending_bytes = [], [], 0

    while True:
        now = time.perf_counter()
        if now >= deadline:
            break
        entry = encode(msgs[count % 64])
        pending.append(entry)
        pending_t.append(now)
        pending_bytes += len(entry)
        count += 1
        if (
            len(pending) >= FLUSH_ENTRIES
            or pending_bytes >= FLUSH_BYTES
            or now - pending_t[0] >= FLUSH_INTERVAL_S
        ):
            flush()
    if pending:
        flush()
    elapsed = time.perf_counter() - start
    os.close(fd)
    return Result("baseline loop", size, count, elapsed, latencies)


async def woodpecker_max(size: int, seconds: float, root: Path, in_flight: int) -> Result:
    """As many appends as the backend takes, ``in_flight`` at a time."""
    msgs = [message(size, i) for i in range(64)]
    latencies: list[float] = []
    count = 0
    async with build_opener("woodpecker", {"root": str(root)}) as opener:
        wal = await opener.open(PChannelInfo(f"bench_{size}", 1))
        start = time.perf_counter()
        deadline = start + seconds

        async def worker() -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                msg = msgs[count % 64]
                count += 1
                t0 = time.perf_counter()
                await wal.append(msg)
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(in_flight)))
        elapsed = time.perf_counter() - start
        await wal.close()
    return Result("woodpecker", size, len(latencies), elapsed, latencies)


async def woodpecker_paced(
    size: int, rate: float, seconds: float, root: Path, in_flight: int
) -> Result:
    """``rate`` messages per second on a fixed schedule, by the same pool of concurrent
    writers as the maximum-rate run; latency counts from each message's scheduled time,
    so a writer that falls behind the schedule is charged for it."""
    msgs = [message(size, i) for i in range(64)]
    latencies: list[float] = []
    total = int(rate * seconds)
    next_seq = 0
    async with build_opener("woodpecker", {"root": str(root)}) as opener:
        wal = await opener.open(PChannelInfo(f"paced_{size}", 1))
        start = time.perf_counter()

        async def worker() -> None:
            nonlocal next_seq
            while next_seq < total:
                seq, next_seq = next_seq, next_seq + 1
                due = start + seq / rate
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                await wal.append(msgs[seq % 64])
                latencies.append(time.perf_counter() - due)

        await asyncio.gather(*(worker() for _ in range(in_flight)))
        elapsed = time.perf_counter() - start
        await wal.close()
    return Result("woodpecker @50%", size, total, elapsed, latencies)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,1024,65536")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to write (default: a temp dir under ./)"
    )
    args = parser.parse_args()
    # Everything imported so far lives for the whole run: keep the collector from
    # re-scanning it in every full collection (the latency spikes it causes are the
    # collector's, not the log's; a latency-sensitive service would do the same).
    gc.collect()
    gc.freeze()
    console = Console()
    table = Table(title="Woodpecker-local durable append (same run, same disk)")
    for col in ("size", "run", "msg/s", "MB/s", "ack p50 ms", "ack p99 ms", "vs baseline"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory(dir=args.dir or Path.cwd(), prefix=".bench-") as tmp:
        root = Path(tmp)
        for size in (int(s) for s in args.sizes.split(",")):
            base = baseline(size, args.seconds, root / f"baseline_{size}.log")
            in_flight = 2000 if size <= 1024 else 256
            wp = asyncio.run(woodpecker_max(size, args.seconds, root / f"wp_{size}", in_flight))
            paced = asyncio.run(
                woodpecker_paced(size, wp.rate / 2, args.seconds, root / f"paced_{size}", in_flight)
            )
            for r in (base, wp, paced):
                ratio = f"{r.rate / base.rate:.0%}" if r is wp else ""
                table.add_row(
                    f"{size} B",
                    r.name,
                    f"{r.rate:,.0f}",
                    f"{r.mb_s:.1f}",
                    f"{r.pct(0.5):.2f}",
                    f"{r.pct(0.99):.2f}",
                    ratio,
                )
    console.print(table)


if __name__ == "__main__":
    main()
