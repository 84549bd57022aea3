"""Zero-disk Woodpecker append throughput and ack latency against raw obstore puts.

Against one S3 server (the test S3Proxy: ``eval "$(scripts/s3proxy start)"`` exports
``WALSTREAM_TEST_S3_*``), in one run, for each block size:

- ``raw put``: a plain asyncio loop of ``obstore.put_async`` of block-sized objects with
  the same concurrency as the backend's parallel uploads; latency is one put.
- ``zero-disk``: ``WALImpl.append`` of messages of ``--message-size`` bytes through the
  plugin registry, the writer cutting blocks of that size (``object_flush_max_bytes``) and
  uploading that many at once (``object_max_parallel_uploads``); enough appends in flight
  to keep every upload slot busy; latency is one append, until its block is stored.

The ratio compares payload bytes per second.

Usage::

    eval "$(scripts/s3proxy start)"
    uv run python bench/zerodisk_append.py [--block-sizes 262144,2097152] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import obstore
from obstore.store import S3Store
from rich.console import Console
from rich.table import Table
from walstream.message import MutableMessage
from walstream.walimpls import PChannelInfo
from walstream.walimpls.registry import build_opener


@dataclass
class Result:
    """One measured configuration."""

    name: str
    block: int
    payload_bytes: int
    seconds: float
    latencies: list[float]

    @property
    def mb_s(self) -> float:
        return self.payload_bytes / self.seconds / 1e6

    @property
    def ops(self) -> float:
        return len(self.latencies) / self.seconds

    def pct(self, q: float) -> float:
        lat = sorted(self.latencies)
        return lat[min(len(lat) - 1, int(len(lat) * q))] * 1000 if lat else float("nan")


@dataclass(frozen=True)
class S3Target:
    """The S3 server and bucket under test, from ``WALSTREAM_TEST_S3_*``."""

    endpoint: str
    bucket: str
    region: str
    access_key_id: str
    secret_access_key: str

    @classmethod
    def from_env(cls) -> S3Target:
        try:
            return cls(
                endpoint=os.environ["WALSTREAM_TEST_S3_ENDPOINT"],
                bucket=os.environ["WALSTREAM_TEST_S3_BUCKET"],
                region=os.environ.get("WALSTREAM_TEST_S3_REGION", "us-east-1"),
                access_key_id=os.environ["WALSTREAM_TEST_S3_ACCESS_KEY_ID"],
                secret_access_key=os.environ["WALSTREAM_TEST_S3_SECRET_ACCESS_KEY"],
            )
        except KeyError as exc:
            raise SystemExit(
                f"{exc.args[0]} is not set: start the S3 server first with "
                f'`eval "$(scripts/s3proxy start)"`'
            ) from None


async def raw_puts(target: S3Target, block: int, concurrency: int, seconds: float) -> Result:
    """``concurrency`` workers putting ``block``-byte objects back to back."""
    store = S3Store(
        target.bucket,
        endpoint=target.endpoint,
        region=target.region,
        access_key_id=target.access_key_id,
        secret_access_key=target.secret_access_key,
        client_options={"allow_http": True},
    )
    data = os.urandom(block)
    prefix = f"bench-raw-{uuid.uuid4().hex[:8]}"
    latencies: list[float] = []
    start = time.perf_counter()
    deadline = start + seconds

    async def worker(w: int) -> None:
        n = 0
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await obstore.put_async(store, f"{prefix}/{w}/{n:08d}.blk", data)
            latencies.append(time.perf_counter() - t0)
            n += 1

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - start
    return Result("raw put", block, len(latencies) * block, elapsed, latencies)


async def zero_disk(
    target: S3Target, root: Path, block: int, concurrency: int, size: int, seconds: float
) -> Result:
    """Appends of ``size``-byte messages with enough in flight to fill every upload slot."""
    payload = os.urandom(size)
    msg = MutableMessage.raw(payload, {})
    settings = {
        "storage": "object",
        "root": str(root),
        "object_store_url": f"s3://{target.bucket}/bench-zd-{uuid.uuid4().hex[:8]}",
        "object_store": {
            "endpoint": target.endpoint,
            "region": target.region,
            "access_key_id": target.access_key_id,
            "secret_access_key": target.secret_access_key,
        },
        "object_flush_max_bytes": block,
        "object_max_parallel_uploads": concurrency,
        "flush_max_entries": 1_000_000,
    }
    in_flight = min(50_000, max(64, 2 * concurrency * block // size))
    latencies: list[float] = []
    async with build_opener("woodpecker", settings) as opener:
        wal = await opener.open(PChannelInfo(f"bench{block}", 1))
        start = time.perf_counter()
        deadline = start + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                await wal.append(msg)
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(in_flight)))
        elapsed = time.perf_counter() - start
        await wal.close()
    return Result(f"zero-disk {size} B msgs", block, len(latencies) * size, elapsed, latencies)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--block-sizes", default="262144,2097152")
    parser.add_argument("--message-size", type=int, default=4096)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    target = S3Target.from_env()
    gc.collect()
    gc.freeze()  # see bench/wal_append.py: keep full collections off the measured path
    console = Console()
    table = Table(
        title=(
            f"Zero-disk Woodpecker vs raw obstore puts on {target.endpoint} "
            f"(same run, {args.concurrency} uploads in flight)"
        )
    )
    for col in ("block", "run", "ops/s", "payload MB/s", "p50 ms", "p99 ms", "vs raw"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory(prefix=".bench-zd-", dir=Path.cwd()) as tmp:
        for block in (int(b) for b in args.block_sizes.split(",")):
            raw = asyncio.run(raw_puts(target, block, args.concurrency, args.seconds))
            zd = asyncio.run(
                zero_disk(
                    target,
                    Path(tmp) / str(block),
                    block,
                    args.concurrency,
                    args.message_size,
                    args.seconds,
                )
            )
            for r in (raw, zd):
                table.add_row(
                    f"{block // 1024} KiB",
                    r.name,
                    f"{r.ops:,.0f}",
                    f"{r.mb_s:.1f}",
                    f"{r.pct(0.5):.1f}",
                    f"{r.pct(0.99):.1f}",
                    f"{r.mb_s / raw.mb_s:.0%}" if r is zd else "",
                )
    console.print(table)


if __name__ == "__main__":
    main()
