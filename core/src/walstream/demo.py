"""walstream's main job on the embedded default, for now a demo.

It appends Insert messages (Arrow record batches) to several vchannels of one
pchannel on Woodpecker-local, tails every vchannel with a reader opened before
the writer, checks each reader saw exactly its vchannel's messages in order,
and prints throughput and acknowledgement latency.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from walstream.message import MessageType, MutableMessage, new_message
from walstream.proto import messages_pb2 as pb
from walstream.walimpls import PChannelInfo, ReadOption, Scanner
from walstream.walimpls.observed import open_observed
from walstream.walimpls.registry import build_opener


@dataclass
class DemoResult:
    """What the demo measured."""

    messages: int
    payload_bytes: int
    seconds: float
    ack_p50_ms: float
    ack_p99_ms: float

    @property
    def msgs_per_s(self) -> float:
        """Acknowledged messages per second."""
        return self.messages / self.seconds

    @property
    def mb_per_s(self) -> float:
        """Acknowledged payload megabytes per second."""
        return self.payload_bytes / self.seconds / 1e6


def _bodies(count: int, rows: int) -> list[bytes]:
    """Arrow IPC bodies to cycle through: encoding a batch per message would dominate the demo."""
    import pyarrow as pa

    from walstream.message.arrow_body import encode_batch

    return [
        encode_batch(
            pa.RecordBatch.from_pydict(
                {"pk": list(range(i * rows, (i + 1) * rows)), "vector": [[float(i)] * 8] * rows}
            )
        )
        for i in range(count)
    ]


def _insert(vchannel: str, seq: int, body: bytes, rows: int) -> MutableMessage:
    header = pb.InsertMessageHeader(
        collection_id=1, partitions=[pb.PartitionSegmentAssignment(partition_id=1, rows=rows)]
    )
    return new_message(
        MessageType.INSERT,
        vchannel=vchannel,
        header=header,
        payload=body,
        properties={"seq": str(seq)},
    )


async def run_demo(
    data_dir: Path,
    messages: int = 20_000,
    vchannels: int = 4,
    concurrency: int = 256,
    backend: str = "woodpecker",
    console: Console | None = None,
) -> DemoResult:
    """Append ``messages`` across ``vchannels`` and tail them all; returns the measurements."""
    console = console or Console()
    settings = {"root": str(data_dir / backend)} if backend == "woodpecker" else {}
    pchannel = PChannelInfo(f"demo_{int(time.time() * 1000)}", 1)
    names = [f"{pchannel.name}_v{i}" for i in range(vchannels)]
    latencies: list[float] = []
    bodies = _bodies(64, rows=4)
    received = dict.fromkeys(names, 0)
    async with build_opener(backend, settings) as opener:
        wal = await open_observed(opener, pchannel)
        scanners = [await wal.read(ReadOption(f"tail-{n}")) for n in names]
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            appended = progress.add_task("appended", total=messages)
            tails = {
                n: progress.add_task(
                    f"tail {n[-3:]}", total=messages // vchannels + (i < messages % vchannels)
                )
                for i, n in enumerate(names)
            }

            async def tail(scanner: Scanner, vchannel: str, expect: int) -> None:
                seen: set[int] = set()
                last_id = None
                async for msg in scanner:
                    if msg.vchannel != vchannel:
                        continue
                    seq = int(msg.properties["seq"])
                    if seq in seen or (last_id is not None and not last_id < msg.message_id):
                        raise AssertionError(
                            f"{vchannel}: message {seq} duplicated or out of log order"
                        )
                    seen.add(seq)
                    last_id = msg.message_id
                    received[vchannel] += 1
                    progress.advance(tails[vchannel])
                    if received[vchannel] == expect:
                        return

            tail_tasks = [
                asyncio.create_task(tail(s, n, int(progress.tasks[tails[n]].total or 0)))
                for s, n in zip(scanners, names, strict=True)
            ]
            payload_bytes = 0
            next_seq = 0

            async def worker() -> None:
                # a fixed pool of writers keeps `concurrency` appends in flight without
                # thousands of idle tasks crowding the event loop
                nonlocal payload_bytes, next_seq
                while next_seq < messages:
                    seq, next_seq = next_seq, next_seq + 1
                    msg = _insert(names[seq % vchannels], seq, bodies[seq % len(bodies)], rows=4)
                    payload_bytes += len(msg.payload)
                    t0 = time.perf_counter()
                    await wal.append(msg)
                    latencies.append(time.perf_counter() - t0)
                    progress.advance(appended)

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - start
            await asyncio.wait_for(asyncio.gather(*tail_tasks), 60)
        for s in scanners:
            await s.close()
        await wal.close()
    lat = sorted(latencies)
    return DemoResult(
        messages=messages,
        payload_bytes=payload_bytes,
        seconds=elapsed,
        ack_p50_ms=statistics.median(lat) * 1000,
        ack_p99_ms=lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
    )
