"""How the writer sorts a failed transaction, against a scripted producer (no broker).

The broker cases (fencing, broker killed) run against the real Kafka in ``test_contract``
and ``test_faults``; they only hit the rare interleavings below now and then, so these
pin them down: a commit racing a newer writer's takeover, which Kafka 4 answers with a
non-fencing error and only the following abort reports as fenced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from walstream.errors import FencedError
from walstream_kafka import KafkaBuilder, KafkaSettings
from walstream_kafka.errors import KafkaWALError
from walstream_kafka.message_id import KafkaMessageID
from walstream_kafka.writer import Pending, TxnWriter

Step = KafkaError | None
"""What one call of commit_transaction / abort_transaction does: raise it, or succeed."""


class _Delivered:
    def __init__(self, offset: int) -> None:
        self._offset = offset

    def offset(self) -> int:
        return self._offset


class ScriptedProducer:
    """Stands in for a transactional confluent_kafka.Producer; commits and aborts follow a script."""

    def __init__(self, commits: list[Step], aborts: list[Step]) -> None:
        self.commits = commits
        self.aborts = aborts
        self.next_offset = 0
        self.open: list[Callable[[], None]] = []
        self.committed: list[bytes] = []
        self.produced: list[bytes] = []

    def begin_transaction(self) -> None:
        self.open = []

    def produce(self, topic: str, *, value: bytes, on_delivery: Any, **_: Any) -> None:
        offset = self.next_offset
        self.next_offset += 1
        self.produced.append(value)
        on_delivery(None, _Delivered(offset))
        self.open.append(lambda: self.committed.append(value))

    def poll(self, timeout: float) -> int:
        return 0

    def commit_transaction(self, timeout: float) -> None:
        step = self.commits.pop(0) if self.commits else None
        if step is not None:
            raise KafkaException(step)
        for publish in self.open:
            publish()

    def abort_transaction(self, timeout: float) -> None:
        step = self.aborts.pop(0) if self.aborts else None
        if step is not None:
            raise KafkaException(step)

    def flush(self, timeout: float) -> int:
        return 0


def _settings() -> KafkaSettings:
    settings = KafkaBuilder().load_settings({"commit_interval_ms": 1.0})
    assert isinstance(settings, KafkaSettings)
    return settings


async def _append_all(
    producer: ScriptedProducer, payloads: list[bytes]
) -> tuple[TxnWriter, list[KafkaMessageID | BaseException]]:
    writer = TxnWriter(producer, "t", 1, _settings(), "kafka pchannel 't'")  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    pendings = [Pending(p, [], len(p), loop.create_future(), loop) for p in payloads]
    for pending in pendings:
        writer.submit(pending)
    writer.start()
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(p.future for p in pendings), return_exceptions=True), 10
    )
    await writer.close()
    return writer, list(outcomes)


COMMIT_RACED = KafkaError(KafkaError.UNKNOWN, "EndTxn commit failed", txn_requires_abort=True)


def test_commit_racing_a_takeover_fails_the_batch_as_fenced() -> None:
    """Commit answers UNKNOWN (abortable), the abort answers fatal _FENCED: every append is fenced."""
    producer = ScriptedProducer(
        commits=[COMMIT_RACED],
        aborts=[KafkaError(KafkaError._FENCED, "fenced by a newer instance", fatal=True)],
    )

    async def go() -> None:
        writer, outcomes = await _append_all(producer, [b"a", b"b", b"c"])
        assert all(isinstance(o, FencedError) for o in outcomes), outcomes
        assert isinstance(writer.failure, FencedError)
        with pytest.raises(FencedError):
            loop = asyncio.get_running_loop()
            writer.submit(Pending(b"late", [], 4, loop.create_future(), loop))
        assert producer.committed == []

    asyncio.run(go())


def test_abort_failing_fatally_without_a_fence_is_a_final_wal_error() -> None:
    producer = ScriptedProducer(
        commits=[COMMIT_RACED],
        aborts=[KafkaError(KafkaError._STATE, "broken", fatal=True)],
    )

    async def go() -> None:
        writer, outcomes = await _append_all(producer, [b"a", b"b"])
        assert all(
            isinstance(o, KafkaWALError) and "could not abort" in str(o) for o in outcomes
        ), outcomes
        assert not isinstance(writer.failure, FencedError)

    asyncio.run(go())


def test_aborted_batch_is_produced_again_and_acknowledged_once() -> None:
    """An abortable commit error whose abort succeeds: the batch goes again, in order."""
    producer = ScriptedProducer(commits=[COMMIT_RACED], aborts=[])

    async def go() -> None:
        writer, outcomes = await _append_all(producer, [b"a", b"b", b"c"])
        assert all(isinstance(o, KafkaMessageID) for o in outcomes), outcomes
        assert producer.committed == [b"a", b"b", b"c"]
        assert producer.produced == [b"a", b"b", b"c", b"a", b"b", b"c"]
        assert [o.offset for o in outcomes if isinstance(o, KafkaMessageID)] == [3, 4, 5]
        assert writer.failure is None

    asyncio.run(go())
