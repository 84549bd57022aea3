"""Appends the broker answers as duplicates get the id they were stored at (real broker).

After a reconnect the client sends again what is pending; a message the broker had
persisted before the drop is deduplicated (``brokerDeduplicationEnabled``, as
``scripts/pulsar`` runs it) and its receipt carries no position. The broker-kill fault
test meets this only now and then; here it is made to happen every time: records are
stored through the writer's own producer behind the writer's back (their receipts "lost"
to it), then appended through the WAL again with the same sequence ids, as the client's
resend does.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pulsar  # type: ignore[import-untyped]
import pytest
from pulsar_helpers import make_opener, read_through
from walstream.message import MutableMessage
from walstream.walimpls import PChannelInfo, ReadOption
from walstream_pulsar import PulsarMessageID, PulsarWAL
from walstream_pulsar.errors import PulsarWALError


class _Resending:
    """The writer's producer, but the next sends reuse the given sequence ids (a resend)."""

    def __init__(self, producer: Any, sequence_ids: list[int]) -> None:
        self._producer = producer
        self._sequence_ids = sequence_ids

    def send_async(self, content: bytes, callback: Any, **kwargs: Any) -> None:
        if self._sequence_ids:
            kwargs["sequence_id"] = self._sequence_ids.pop(0)
        self._producer.send_async(content, callback, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)


def _store_behind_the_writer(wal: PulsarWAL, payload: bytes, props: dict[str, str]) -> Any:
    producer = wal._writer.producer  # type: ignore[union-attr]
    mid = producer.send(payload, properties=props, partition_key=f"D:{wal.channel.term}")
    return mid, producer.last_sequence_id()


def test_resends_the_broker_deduplicated_answer_with_their_stored_ids(
    pulsar_settings: dict[str, Any],
) -> None:
    name = f"dedup_{uuid.uuid4().hex[:8]}"

    async def go() -> None:
        async with make_opener(pulsar_settings) as opener:
            wal = await opener.open(PChannelInfo(name, 1))
            assert isinstance(wal, PulsarWAL)
            writer = wal._writer
            assert writer is not None
            first = await wal.append(MutableMessage.raw(b"m1", {"n": "1"}))
            stored = [
                await asyncio.to_thread(
                    _store_behind_the_writer, wal, f"m{n}".encode(), {"n": str(n)}
                )
                for n in (2, 3)
            ]
            real = writer._producer
            writer._producer = _Resending(real, [seq for _, seq in stored])
            resent = await asyncio.gather(
                wal.append(MutableMessage.raw(b"m2", {"n": "2"})),
                wal.append(MutableMessage.raw(b"m3", {"n": "3"})),
            )
            writer._producer = real
            assert resent == [PulsarMessageID.from_pulsar(mid) for mid, _ in stored]
            last = await wal.append(MutableMessage.raw(b"m4", {"n": "4"}))
            assert first < resent[0] < resent[1] < last

            # A "resend" of something never stored where the writer expects it: a clear
            # error saying the message is stored but its id unknown, and the writer goes on.
            writer._producer = _Resending(real, [stored[0][1]])
            with pytest.raises(PulsarWALError, match=r"is stored .* its id could not be found"):
                await wal.append(MutableMessage.raw(b"not m2", {"n": "x"}))
            writer._producer = real
            after = await wal.append(MutableMessage.raw(b"m5", {"n": "5"}))

            async with await wal.read(ReadOption("all")) as scanner:
                got = await read_through(scanner, after, timeout=30)
            await wal.close()
        data = [(m.payload, m.message_id) for m in got if m.payload]
        assert data == [
            (b"m1", first),
            (b"m2", resent[0]),
            (b"m3", resent[1]),
            (b"m4", last),
            (b"m5", after),
        ]

    asyncio.run(asyncio.wait_for(go(), 120))


def test_a_resend_before_any_known_position_of_a_run_fails_clearly() -> None:
    """Without an anchor (no claim id known) a resend fails with the clear error at once."""
    from walstream_pulsar.dedup import DuplicateLocator

    async def go() -> None:
        locator = DuplicateLocator(
            pulsar.Client.__new__(pulsar.Client), "t", "D:1", None, 5.0, "pulsar pchannel 't'"
        )
        fut: asyncio.Future[PulsarMessageID] = asyncio.get_running_loop().create_future()
        locator.duplicate(fut, b"x", {})
        with pytest.raises(PulsarWALError, match="no position of this writer before it"):
            await asyncio.wait_for(fut, 5)
        await locator.close()

    asyncio.run(go())
