"""Pulsar append throughput and ack latency: the walstream-pulsar plugin against a raw producer.

In one run, on the same broker, with the same producer settings (the plugin's
``producer_kwargs``: batching, batch delay, pending limit, exclusive-with-fencing access
mode), for each message size:

- ``raw producer``: a plain pulsar-client ``Producer`` calling ``send_async`` in a tight
  loop (at most ``max_pending_messages`` in flight) with the same payload, properties and
  key the plugin sends; latency is from ``send_async`` to its callback.
- ``plugin``: ``WALImpl.append`` through the plugin registry with ``--in-flight``
  concurrent appends; latency is from calling ``append`` to its return.

Usage (a broker from ``eval "$(scripts/pulsar start)"``)::

    uv run python bench/pulsar_append.py [--url pulsar://host:port] [--sizes 100,1024] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pulsar  # type: ignore[import-untyped]
from walstream.message import MutableMessage
from walstream.walimpls import PChannelInfo
from walstream.walimpls.registry import build_opener
from walstream_pulsar.client import make_client, producer_kwargs
from walstream_pulsar.records import DATA, record_key
from walstream_pulsar.settings import PulsarSettings


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

    def pct(self, q: float) -> float:
        lat = sorted(self.latencies)
        return lat[min(len(lat) - 1, int(len(lat) * q))] * 1000 if lat else float("nan")


def message(size: int, seq: int) -> MutableMessage:
    """``size`` payload bytes and one property."""
    return MutableMessage.raw(os.urandom(16) * (size // 16) + b"x" * (size % 16), {"seq": str(seq)})


def raw_run(settings: PulsarSettings, size: int, seconds: float) -> Result:
    """A plain producer with the plugin's producer arguments."""
    client = make_client(settings)
    topic = f"persistent://{settings.tenant}/{settings.namespace}/bench-raw-{uuid.uuid4().hex[:8]}"
    producer = client.create_producer(topic, **producer_kwargs(settings))
    msgs = [message(size, i) for i in range(64)]
    key = record_key(DATA, 1)
    latencies: list[float] = []
    slots = threading.Semaphore(settings.max_pending_messages)

    def sent(t0: float) -> Any:
        def callback(res: Any, mid: Any) -> None:
            if res == pulsar.Result.Ok:
                latencies.append(time.perf_counter() - t0)
            slots.release()

        return callback

    producer.send(b"warm-up", partition_key=key)
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        slots.acquire()
        m = msgs[count % 64]
        producer.send_async(
            m.payload, sent(time.perf_counter()), properties=dict(m.properties), partition_key=key
        )
        count += 1
    producer.flush()
    elapsed = time.perf_counter() - start
    producer.close()
    client.close()
    return Result("raw producer", size, len(latencies), elapsed, list(latencies))


async def plugin_run(spec: dict[str, Any], size: int, seconds: float, in_flight: int) -> Result:
    """Appends through the plugin, ``in_flight`` concurrent writers."""
    msgs = [message(size, i) for i in range(64)]
    latencies: list[float] = []
    async with build_opener("pulsar", spec) as opener:
        wal = await opener.open(PChannelInfo(f"bench_{size}_{uuid.uuid4().hex[:6]}", 1))
        await wal.append(MutableMessage.raw(b"warm-up"))
        seq = 0
        start = time.perf_counter()
        deadline = start + seconds

        async def worker() -> None:
            nonlocal seq
            while time.perf_counter() < deadline:
                m = msgs[seq % 64]
                seq += 1
                t0 = time.perf_counter()
                await wal.append(m)
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(in_flight)))
        elapsed = time.perf_counter() - start
        await wal.close()
    return Result(f"plugin ({in_flight} in flight)", size, len(latencies), elapsed, latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("WALSTREAM_TEST_PULSAR_URL"))
    parser.add_argument("--sizes", default="100,1024")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--in-flight", type=int, default=1000)
    args = parser.parse_args()
    if not args.url:
        raise SystemExit('no broker: eval "$(scripts/pulsar start)" or pass --url')
    spec: dict[str, Any] = {"service_url": args.url, "topic_prefix": "bench-"}
    settings = PulsarSettings(**spec)
    print("| size | run | msg/s | p50 ms | p99 ms | plugin/raw |")
    print("|---:|---|---:|---:|---:|---:|")
    for size in (int(s) for s in args.sizes.split(",")):
        raw = raw_run(settings, size, args.seconds)
        plug = asyncio.run(plugin_run(spec, size, args.seconds, args.in_flight))
        for r in (raw, plug):
            ratio = f"{plug.rate / raw.rate:.0%}" if r is plug else ""
            print(
                f"| {size} B | {r.name} | {r.rate:,.0f} | {r.pct(0.5):.2f} | {r.pct(0.99):.2f} "
                f"| {ratio} |"
            )


if __name__ == "__main__":
    main()
