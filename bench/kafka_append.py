"""Kafka append throughput and ack latency: the walstream-kafka plugin against a raw producer.

In one run, on the same broker, with the same producer settings (``acks=all``,
idempotence, the plugin's ``linger.ms`` and batching, see ``walstream_kafka.config``),
for each message size:

- ``raw producer``: a plain confluent-kafka ``Producer`` (not transactional) writing the
  same bytes the plugin writes (same value, same 9-byte key, the properties as headers)
  to partition 0 of a topic created with the plugin's topic config, in a tight loop;
  latency is from ``produce()`` to the delivery report.
- ``plugin``: ``WALImpl.append`` through the plugin registry, many appends in flight;
  latency is from calling ``append`` to its return (broker ack and committed transaction).
- ``@50%`` rows: half the plugin's measured rate on a fixed schedule for both, for the ack
  latency a caller sees when the log is not saturated (counted from the scheduled time).

Usage (a broker from ``eval "$(scripts/kafka start)"``)::

    uv run python bench/kafka_append.py [--bootstrap host:port] [--sizes 100,1024] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import threading
import time
import uuid
from dataclasses import dataclass
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from rich.console import Console
from rich.table import Table
from walstream.message import MutableMessage
from walstream.walimpls import PChannelInfo
from walstream.walimpls.registry import build_opener
from walstream_kafka.config import producer_config
from walstream_kafka.kadmin import AdminClient, NewTopic
from walstream_kafka.records import DATA, record_key, to_headers
from walstream_kafka.settings import KafkaSettings
from walstream_kafka.topics import topic_config


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
    """``size`` payload bytes and one property, as the woodpecker benchmark appends."""
    return MutableMessage.raw(os.urandom(16) * (size // 16) + b"x" * (size % 16), {"seq": str(seq)})


def raw_run(
    settings: KafkaSettings, topic: str, size: int, seconds: float, rate: float | None
) -> Result:
    """A plain idempotent producer, same config as the plugin's minus the transactional id."""
    producer = Producer(producer_config(settings, None))
    msgs = [message(size, i) for i in range(64)]
    headers = [to_headers(m) for m in msgs]
    key = record_key(DATA, 1)
    latencies: list[float] = []
    lock = threading.Lock()

    def delivered(t0: float, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            latencies.append(time.perf_counter() - t0)

    # Warm up: connections, metadata and the producer id, as the plugin's open() does.
    producer.produce(topic, value=b"warm-up", key=key, partition=0)
    producer.flush(30)
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        now = time.perf_counter()
        if now >= deadline:
            break
        due = now
        if rate is not None:
            due = start + count / rate
            if due > now:
                time.sleep(min(due - now, 0.001))
                producer.poll(0)
                continue
        i = count % 64
        while True:
            try:
                producer.produce(
                    topic,
                    value=msgs[i].payload,
                    key=key,
                    partition=0,
                    headers=headers[i],
                    on_delivery=partial(delivered, due),
                )
                break
            except BufferError:
                producer.poll(0.01)
        count += 1
        if count % 256 == 0:
            producer.poll(0)
    producer.flush(60)
    elapsed = time.perf_counter() - start
    with lock:
        done = list(latencies)
    name = "raw producer" if rate is None else "raw producer @50%"
    return Result(name, size, len(done), elapsed, done)


async def plugin_run(
    spec: dict[str, Any], size: int, seconds: float, rate: float | None, in_flight: int
) -> Result:
    """Appends through the plugin, ``in_flight`` writers; paced at ``rate`` if given."""
    msgs = [message(size, i) for i in range(64)]
    latencies: list[float] = []
    async with build_opener("kafka", spec) as opener:
        wal = await opener.open(PChannelInfo(f"bench_{size}_{uuid.uuid4().hex[:6]}", 1))
        total = int(rate * seconds) if rate is not None else None
        seq = 0
        start = time.perf_counter()
        deadline = start + seconds

        async def worker() -> None:
            nonlocal seq
            while True:
                if total is not None and seq >= total:
                    return
                if total is None and time.perf_counter() >= deadline:
                    return
                n, seq = seq, seq + 1
                due = time.perf_counter()
                if rate is not None:
                    due = start + n / rate
                    wait = due - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                await wal.append(msgs[n % 64])
                latencies.append(time.perf_counter() - due)

        await asyncio.gather(*(worker() for _ in range(in_flight)))
        elapsed = time.perf_counter() - start
        await wal.close()
    name = "plugin" if rate is None else "plugin @50%"
    return Result(name, size, len(latencies), elapsed, latencies)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap", default=os.environ.get("WALSTREAM_TEST_KAFKA_BOOTSTRAP", ""))
    parser.add_argument("--sizes", default="100,1024")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--in-flight", type=int, default=5000)
    args = parser.parse_args()
    if not args.bootstrap:
        raise SystemExit('no broker: pass --bootstrap or run `eval "$(scripts/kafka start)"`')
    gc.collect()
    gc.freeze()
    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
    spec: dict[str, Any] = {"bootstrap_servers": args.bootstrap, "topic_prefix": prefix}
    settings = KafkaSettings(**spec)
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    console = Console()
    table = Table(title="Kafka append: walstream-kafka vs a raw confluent-kafka producer")
    for col in ("size", "run", "msg/s", "MB/s", "ack p50 ms", "ack p99 ms", "vs raw"):
        table.add_column(col, justify="right")
    for size in (int(s) for s in args.sizes.split(",")):
        topic = f"{prefix}raw-{size}"
        admin.create_topics(
            [NewTopic(topic, num_partitions=1, replication_factor=1, config=topic_config(settings))]
        )[topic].result(30)
        raw = raw_run(settings, topic, size, args.seconds, None)
        plugin = asyncio.run(plugin_run(spec, size, args.seconds, None, args.in_flight))
        half = plugin.rate / 2
        raw_half = raw_run(settings, topic, size, args.seconds, half)
        plugin_half = asyncio.run(plugin_run(spec, size, args.seconds, half, args.in_flight))
        for r in (raw, plugin, raw_half, plugin_half):
            ratio = f"{r.rate / raw.rate:.0%}" if r is plugin else ""
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
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    if topics:
        for fut in admin.delete_topics(topics).values():
            fut.result(30)


if __name__ == "__main__":
    main()
