"""Child process of the contract suite's durability test: appends until it is killed.

It lives outside ``walstream.testing`` so that starting it does not import pytest.

Run as ``python -m walstream._crash_writer '<json>'``. It prints
``ready`` once the WAL is open, then one line ``ack <seq>`` per acknowledged
append, flushed at once, so the parent knows exactly what was acknowledged
before it sends SIGKILL.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from typing import Any

from walstream.message import MutableMessage
from walstream.walimpls import PChannelInfo
from walstream.walimpls.registry import build_opener


def crash_payload(round_no: int, seq: int) -> bytes:
    """Deterministic payload of varying length, so corruption and mix-ups are detectable."""
    seed = hashlib.sha256(f"{round_no}:{seq}".encode()).digest()
    return seed * (1 + seq % 40)


def crash_message(round_no: int, seq: int) -> MutableMessage:
    """The message the child appends as number ``seq`` of round ``round_no``."""
    return MutableMessage.raw(
        crash_payload(round_no, seq), {"round": str(round_no), "seq": str(seq)}
    )


async def _main(args: dict[str, Any]) -> None:
    opener = build_opener(args["name"], args["settings"])
    wal = await opener.open(PChannelInfo(args["pchannel"], int(args["term"])))
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    in_flight = asyncio.Semaphore(int(args.get("concurrency", 8)))
    round_no = int(args["round"])

    async def one(seq: int) -> None:
        try:
            await wal.append(crash_message(round_no, seq))
        except BaseException as exc:
            # An append must not fail here: say why and end, so the parent reports it.
            sys.stderr.write(f"append {seq} failed: {exc!r}\n")
            sys.stderr.flush()
            os._exit(3)
        out.write(f"ack {seq}\n")
        out.flush()
        in_flight.release()

    tasks = set()
    for seq in range(int(args.get("max_messages", 1_000_000))):
        await in_flight.acquire()
        task = asyncio.create_task(one(seq))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)


if __name__ == "__main__":
    asyncio.run(_main(json.loads(sys.argv[1])))
