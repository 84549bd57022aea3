"""The streaming WAL's whole append chain against the bare backend, and tail-read latency.

All on Woodpecker-local, in one run, on the same disk, with the backend's default settings:

- ``bare``: ``WALImpl.append`` with many appends in flight (as ``bench/wal_append.py``)
  of Insert messages.
- ``chain``: ``StreamingWAL.append`` of the same Inserts (same header and payload size),
  same number in flight, through redo -> lock -> vchannel -> timetick/txn -> segment
  assignment -> backend append, with the time-tick sync running. The vchannel is created
  by a CreateCollection first. Concurrent plain appends go through the chain as batches
  (``append_batch_max``), as they do for any user.
  Both sides append fresh messages built before the clock starts (``--pool`` of them,
  kept out of the garbage collector): building a message is the caller's work, not the
  WAL's. Reported: msg/s, MB/s of payload, ack latency p50/p99 and chain/bare (goal: at
  least 70%).
- ``tail``: a paced writer (default 10k msg/s) appends through the chain while one scanner
  tails the vchannel (``DeliverLatest``); latency is from the moment the writer's
  ``append`` returned (acknowledgement) to the moment the scanner yielded that message,
  matched by a ``seq`` user property (goal: p99 at most 5 ms).

Tail delivery: a scanner delivers a message only once a TimeTick covers it (appends
run concurrently; delivery is in strict timetick order). Acknowledged messages are
released to the write-ahead buffer right after their acks, under an in-memory TimeTick;
the periodic sync (``timetick_interval_ms``, default 200 ms as Milvus) only persists a
TimeTick for backend readers. The tail runs at 200 ms and 5 ms show that the interval no
longer sets the tail latency. Each runs with Python's default garbage-collector thresholds
and with a higher gen2 threshold (``--tail-gc``): a full collection re-scans every message
the write-ahead buffer holds and stops the loop for tens of milliseconds.
The first ``--warmup`` seconds of a tail run are left out of its percentiles.

Usage: ``uv run python bench/wal_chain.py [--sizes 100,1024,4096,16384,65536] [--seconds 4]
[--pool N] [--tail-rate 10000] [--tail-size 1024] [--tail-in-flight 256]
[--intervals 200,5] [--tail-gc default,1000] [--warmup 1] [--segments on|off]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table
from walstream.message import MessageType, MutableMessage, new_message
from walstream.metastore import SQLiteMetastore
from walstream.policy import build_chain as build_policy_chain
from walstream.proto import messages_pb2 as pb
from walstream.tso import TimestampOracle
from walstream.wal import (
    InterceptorBuildParam,
    InterceptorFactory,
    SegmentAssignInterceptor,
    StreamingWAL,
    WALSettings,
    open_wal,
)
from walstream.wal.chain import Interceptor
from walstream.wal.options import WALReadOption
from walstream.walimpls import DeliverLatest, PChannelInfo
from walstream.walimpls.registry import build_opener

COLLECTION_ID = 1
PARTITION_ID = 10
SETUP_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 10.0


@dataclass
class Result:
    """One measured configuration."""

    name: str
    size: int
    messages: int
    seconds: float
    latencies: list[float]
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def mb_s(self) -> float:
        return self.rate * self.size / 1e6

    def pct(self, q: float) -> float:
        lat = sorted(self.latencies)
        return lat[min(len(lat) - 1, int(len(lat) * q))] * 1000 if lat else float("nan")


def insert(vchannel: str, payload: bytes, seq: int) -> MutableMessage:
    """An Insert of one row of ``len(payload)`` bytes into the bench collection/partition."""
    header = pb.InsertMessageHeader(
        collection_id=COLLECTION_ID,
        partitions=[
            pb.PartitionSegmentAssignment(
                partition_id=PARTITION_ID, rows=1, binary_size=len(payload)
            )
        ],
    )
    return new_message(
        MessageType.INSERT,
        vchannel=vchannel,
        header=header,
        payload=payload,
        properties={"seq": str(seq)},
    )


def create_collection(vchannel: str) -> MutableMessage:
    header = pb.CreateCollectionMessageHeader(
        collection_id=COLLECTION_ID, partition_ids=[PARTITION_ID]
    )
    return new_message(MessageType.CREATE_COLLECTION, vchannel=vchannel, header=header)


def payload_of(size: int) -> bytes:
    return (b"0123456789abcdef" * (size // 16 + 1))[:size]


def segment_assignment(param: InterceptorBuildParam) -> Interceptor:
    """The segment-assignment interceptor with the default policies (``[segment_policy]``)."""
    return SegmentAssignInterceptor(
        pchannel=param.channel, chain=build_policy_chain(), append_system=param.wal.append_internal
    )


def wal_options(
    segments: bool, **settings: object
) -> tuple[WALSettings, Sequence[Interceptor | InterceptorFactory]]:
    """Settings (and extra interceptors) for a WAL with segment assignment on or off.

    Newer WALs build segment assignment themselves (``WALSettings.segment_assignment``);
    older ones only take it through ``interceptors_extra``.
    """
    if "segment_assignment" in WALSettings.model_fields:
        return WALSettings(segment_assignment=segments, **settings), ()  # type: ignore[arg-type]
    extra: list[InterceptorFactory] = [segment_assignment] if segments else []
    return WALSettings(**settings), extra  # type: ignore[arg-type]


@asynccontextmanager
async def chain_wal(
    root: Path, name: str, segments: bool, **settings: object
) -> AsyncIterator[StreamingWAL]:
    """A fresh RW StreamingWAL over Woodpecker-local with one vchannel ``<name>_v0``."""
    wal_settings, extra = wal_options(segments, **settings)
    async with (
        SQLiteMetastore(root / f"{name}.meta.sqlite3") as ms,
        TimestampOracle(ms) as tso,
        build_opener("woodpecker", {"root": str(root / name)}) as opener,
    ):
        async with asyncio.timeout(SETUP_TIMEOUT_S):
            impl = await opener.open(PChannelInfo(name, 1))
            wal = await open_wal(impl, tso=tso, settings=wal_settings, interceptors_extra=extra)
        try:
            async with asyncio.timeout(SETUP_TIMEOUT_S):
                await wal.append(create_collection(f"{name}_v0"))
            yield wal
        finally:
            async with asyncio.timeout(SETUP_TIMEOUT_S):
                await wal.close()


def message_pool(vchannel: str, size: int, count: int) -> list[MutableMessage]:
    """``count`` fresh Inserts, built before the clock starts and kept out of the collector."""
    payload = payload_of(size)
    pool = [insert(vchannel, payload, i) for i in range(count)]
    gc.collect()
    gc.freeze()  # long-lived: no full collection should re-scan them while timed
    return pool


async def drive(
    append: Callable[[MutableMessage], Awaitable[object]],
    pool: list[MutableMessage],
    seconds: float,
    in_flight: int,
) -> tuple[int, float, list[float]]:
    """Append messages of ``pool`` in order, ``in_flight`` at a time, for ``seconds`` at most.

    Returns (messages acknowledged, elapsed seconds, ack latencies).
    """
    latencies: list[float] = []
    taken = 0
    start = time.perf_counter()
    deadline = start + seconds

    async def worker() -> None:
        nonlocal taken
        while taken < len(pool) and time.perf_counter() < deadline:
            msg = pool[taken]
            taken += 1
            t0 = time.perf_counter()
            await append(msg)
            latencies.append(time.perf_counter() - t0)

    async with asyncio.timeout(seconds + DRAIN_TIMEOUT_S):
        await asyncio.gather(*(worker() for _ in range(in_flight)))
    return len(latencies), time.perf_counter() - start, latencies


async def bare(size: int, seconds: float, root: Path, in_flight: int, pool_size: int) -> Result:
    """As many ``WALImpl.append`` as the backend takes, ``in_flight`` at a time."""
    name = f"bare_{size}"
    pool = message_pool(f"{name}_v0", size, pool_size)
    async with build_opener("woodpecker", {"root": str(root / name)}) as opener:
        wal = await opener.open(PChannelInfo(name, 1))
        try:
            count, elapsed, latencies = await drive(wal.append, pool, seconds, in_flight)
        finally:
            await wal.close()
    return Result("bare", size, count, elapsed, latencies, note=_exhausted(count, pool))


async def chain(
    size: int, seconds: float, root: Path, in_flight: int, segments: bool, pool_size: int
) -> Result:
    """As many ``StreamingWAL.append`` of Inserts as the chain takes, ``in_flight`` at a time."""
    name = f"chain_{size}"
    pool = message_pool(f"{name}_v0", size, pool_size)
    async with chain_wal(root, name, segments) as wal:
        count, elapsed, latencies = await drive(wal.append, pool, seconds, in_flight)
    return Result("chain", size, count, elapsed, latencies, note=_exhausted(count, pool))


def _exhausted(count: int, pool: list[MutableMessage]) -> str:
    return "pool used up before the time" if count >= len(pool) else ""


async def tail(
    size: int,
    rate: float,
    seconds: float,
    root: Path,
    in_flight: int,
    interval_ms: int,
    segments: bool,
    warmup: float = 1.0,
    label: str = "",
) -> Result:
    """Paced appends at ``rate`` through the chain while one scanner tails the vchannel.

    The first ``warmup`` seconds of messages are appended and delivered like the rest
    but left out of the percentiles (their worst delivery is ``extra["warmup_max"]``):
    the first inserts wait for their segment's CreateSegment, caches fill, and so on.
    """
    name = f"tail_{interval_ms}ms{'_' + label if label else ''}"
    vchannel = f"{name}_v0"
    skip = int(rate * warmup)
    total = skip + int(rate * seconds)
    pool = message_pool(vchannel, size, total)
    acked = [0.0] * total
    delivered = [0.0] * total
    got = 0
    all_in = asyncio.Event()
    ack_lat: list[float] = []
    async with chain_wal(root, name, segments, timetick_interval_ms=interval_ms) as wal:
        scanner = await wal.read(
            WALReadOption(name="bench-tail", vchannel=vchannel, deliver_policy=DeliverLatest())
        )

        async def consume() -> None:
            nonlocal got
            async for msg in scanner:
                if msg.message_type is MessageType.INSERT:
                    delivered[int(msg.properties["seq"])] = time.perf_counter()
                    got += 1
                    if got == total:
                        all_in.set()

        consumer = asyncio.create_task(consume())
        next_seq = 0
        start = time.perf_counter()

        async def worker() -> None:
            nonlocal next_seq
            while next_seq < total:
                seq, next_seq = next_seq, next_seq + 1
                due = start + seq / rate
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                await wal.append(pool[seq])
                acked[seq] = now = time.perf_counter()
                if seq >= skip:
                    ack_lat.append(now - due)

        try:
            async with asyncio.timeout(seconds + DRAIN_TIMEOUT_S):
                await asyncio.gather(*(worker() for _ in range(in_flight)))
            elapsed = time.perf_counter() - start
            try:
                async with asyncio.timeout(interval_ms / 1000 + DRAIN_TIMEOUT_S):
                    await all_in.wait()
            except TimeoutError:
                pass
        finally:
            await scanner.close()
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
    pairs = [(a, d) for a, d in zip(acked, delivered, strict=True) if a and d]
    warm = [d - a for a, d in pairs[:skip]]
    pairs = pairs[skip:]
    latencies = [d - a for a, d in pairs]
    early = sum(1 for x in latencies if x < 0)
    note = f"{total - got} undelivered" if got < total else ""
    if early:
        note = f"{note}; " if note else ""
        note += f"{early} seen before ack returned"
    result = Result(f"tail @{interval_ms} ms tick", size, total, elapsed, latencies, note)
    result.extra["ack_p99"] = Result("", 0, 0, 0, ack_lat).pct(0.99)
    result.extra["warmup_max"] = max(warm, default=float("nan")) * 1000
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        default="100,1024,4096,16384,65536",
        help="payload sizes of the throughput runs (empty: no throughput runs)",
    )
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument(
        "--pool",
        type=int,
        default=400_000,
        help="messages built before each throughput run (a tenth of it above 16 KiB)",
    )
    parser.add_argument("--tail-rate", type=float, default=10_000.0)
    parser.add_argument("--tail-size", type=int, default=1024)
    parser.add_argument(
        "--tail-in-flight", type=int, default=256, help="most appends in flight in a tail run"
    )
    parser.add_argument(
        "--tail-gc",
        default="default,1000",
        help=(
            "garbage-collector settings for the tail runs: 'default' (Python's thresholds) "
            "and/or a gen2 threshold (full collections rarer: each one stops the loop for "
            "tens of ms once the write-ahead buffer holds many messages)"
        ),
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=1.0,
        help="seconds of a tail run left out of its percentiles (appended and delivered all the same)",
    )
    parser.add_argument(
        "--intervals",
        default="200,5",
        help="timetick_interval_ms values for the tail runs (empty: no tail runs)",
    )
    parser.add_argument(
        "--segments",
        choices=("on", "off"),
        default="on",
        help="segment assignment in the chain (default on: every Insert is assigned)",
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to write (default: a temp dir under ./)"
    )
    args = parser.parse_args(argv)
    segments = args.segments == "on"
    # Everything imported so far lives for the whole run: keep the collector from
    # re-scanning it in every full collection (as bench/wal_append.py does).
    gc.collect()
    gc.freeze()
    console = Console()
    thr = Table(title="WAL append: whole chain vs bare backend (Woodpecker-local, same run)")
    for col in (
        "size",
        "run",
        "in flight",
        "msg/s",
        "MB/s",
        "ack p50 ms",
        "ack p99 ms",
        "vs bare",
        "note",
    ):
        thr.add_column(col, justify="right")
    lat = Table(
        title=f"Tail read: ack -> scanner delivery at {args.tail_rate:,.0f} msg/s "
        f"({args.tail_size} B inserts, Woodpecker-local)"
    )
    for col in (
        "tick interval",
        "gc gen2 threshold",
        "msgs",
        "achieved msg/s",
        "deliver p50 ms",
        "deliver p99 ms",
        "deliver max ms",
        "warm-up max ms",
        "ack p99 ms",
        "note",
    ):
        lat.add_column(col, justify="right")
    with tempfile.TemporaryDirectory(dir=args.dir or Path.cwd(), prefix=".bench-") as tmp:
        root = Path(tmp)
        for size in (int(s) for s in args.sizes.split(",") if s.strip()):
            in_flight = 2000 if size <= 1024 else 256
            pool = args.pool if size <= 16384 else max(1, args.pool // 10)
            b = asyncio.run(bare(size, args.seconds, root, in_flight, pool))
            c = asyncio.run(chain(size, args.seconds, root, in_flight, segments, pool))
            for r in (b, c):
                thr.add_row(
                    f"{size} B",
                    r.name,
                    str(in_flight),
                    f"{r.rate:,.0f}",
                    f"{r.mb_s:.1f}",
                    f"{r.pct(0.5):.2f}",
                    f"{r.pct(0.99):.2f}",
                    f"{c.rate / b.rate:.0%}" if r is c else "",
                    r.note,
                )
        gc_settings = [g.strip() for g in args.tail_gc.split(",") if g.strip()]
        default_thresholds = gc.get_threshold()
        for interval, gc_gen2 in (
            (int(s), g) for s in args.intervals.split(",") if s.strip() for g in gc_settings
        ):
            if gc_gen2 == "default":
                gc.set_threshold(*default_thresholds)
            else:
                gc.set_threshold(default_thresholds[0], default_thresholds[1], int(gc_gen2))
            t = asyncio.run(
                tail(
                    args.tail_size,
                    args.tail_rate,
                    args.seconds,
                    root,
                    args.tail_in_flight,
                    interval,
                    segments,
                    args.warmup,
                    label=f"gc{gc_gen2}",
                )
            )
            gc.set_threshold(*default_thresholds)
            lat.add_row(
                f"{interval} ms",
                gc_gen2,
                f"{t.messages:,}",
                f"{t.rate:,.0f}",
                f"{t.pct(0.5):.2f}",
                f"{t.pct(0.99):.2f}",
                f"{max(t.latencies) * 1000:.2f}" if t.latencies else "nan",
                f"{t.extra['warmup_max']:.2f}",
                f"{t.extra['ack_p99']:.2f}",
                t.note,
            )
    console.print(thr)
    console.print(lat)


if __name__ == "__main__":
    main()
