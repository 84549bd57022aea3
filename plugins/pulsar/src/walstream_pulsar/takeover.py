"""Taking a pchannel for writing at a term, in a worker thread (blocking client calls).

1. read the term of the last message of the topic; above T: refuse with ``FencedError``
   without touching the producer (a stale opener does not disturb the live writer);
2. create the producer with access mode ``ExclusiveWithFencing``: the broker bumps the
   topic's producer epoch, closes every other producer and refuses anything they send
   from then on (``ProducerFenced``);
3. read the last term again (no other writer can add to the topic now); above T: close
   the producer and refuse;
4. send a claim ``C:T`` before accepting appends.

Once a claim of term T is stored, no lower term gets past step 1 or 3. If a lower and a
higher open race, the lower one can fence the higher one between its steps 2 and 4; the
higher one then sees its claim fail with ``ProducerFenced`` and starts again (up to 5
times), and the lower one finds the higher claim at step 3 (or is fenced by the retry).
"""

from __future__ import annotations

import logging
from typing import Any

import pulsar  # type: ignore[import-untyped]
from walstream.errors import FencedError, MessageError

from walstream_pulsar import retry
from walstream_pulsar.errors import PulsarWALError, is_fenced
from walstream_pulsar.message_id import PulsarMessageID
from walstream_pulsar.records import CLAIM, parse_key, record_key

log = logging.getLogger(__name__)

_ATTEMPTS = 5
_READ_MS = 5_000


def last_term(client: pulsar.Client, topic: str) -> int | None:
    """The highest writer term among the messages of the topic's last entry (None if the
    topic holds no message of this backend)."""
    reader = client.create_reader(topic, pulsar.MessageId.latest, start_message_id_inclusive=True)
    try:
        term: int | None = None
        while reader.has_message_available():
            msg = reader.read_next(_READ_MS)
            parsed = parse_key(msg.partition_key())
            if parsed is not None:
                term = parsed[1] if term is None else max(term, parsed[1])
        return term
    finally:
        reader.close()


def refuse_stale(pchannel: str, term: int, highest: int | None, when: str) -> None:
    """``FencedError`` if a higher term than ``term`` wrote to the pchannel."""
    if highest is not None and highest > term:
        raise FencedError(
            f"cannot open pulsar pchannel {pchannel!r} read-write at term {term}: term "
            f"{highest} already wrote to it ({when}); open it at term {highest} or higher"
        )


def check_non_partitioned(client: pulsar.Client, topic: str) -> None:
    """Refuse a partitioned topic: one partition is the order."""
    parts = client.get_topic_partitions(topic)
    if len(parts) != 1 or parts[0] != topic:
        raise PulsarWALError(
            f"topic {topic!r} is partitioned ({len(parts)} partitions): a pchannel needs a "
            f"non-partitioned topic, whose single log is its order. Delete it or change "
            f"topic_prefix; check that the namespace does not default to partitioned topics "
            f"(allowAutoTopicCreationType=non-partitioned)"
        )


def ensure_subscription(client: pulsar.Client, topic: str, subscription: str) -> None:
    """Create the durable truncation subscription at the earliest position if missing
    (an existing one keeps its cursor), so that nothing is reclaimed before a truncate."""
    consumer = client.subscribe(
        topic,
        subscription,
        consumer_type=pulsar.ConsumerType.Shared,
        initial_position=pulsar.InitialPosition.Earliest,
        receiver_queue_size=1,
    )
    consumer.close()


def take_over(
    client: pulsar.Client,
    topic: str,
    pchannel: str,
    term: int,
    producer_kwargs: dict[str, Any],
    deadline: float,
) -> tuple[pulsar.Producer, PulsarMessageID | None]:
    """A producer that fenced every earlier writer and stored its claim, and the claim's id.

    Raises ``FencedError`` if a higher term already wrote to the topic.
    """
    for attempt in range(1, _ATTEMPTS + 1):
        highest = retry.call(lambda: last_term(client, topic), deadline)
        refuse_stale(pchannel, term, highest, "found before taking over")
        producer = retry.call(lambda: client.create_producer(topic, **producer_kwargs), deadline)
        try:
            # Every earlier producer of this topic is fenced now and can store nothing more.
            highest = retry.call(lambda: last_term(client, topic), deadline)
            refuse_stale(pchannel, term, highest, "stored while this open fenced the writers")
            claim = producer.send(b"", partition_key=record_key(CLAIM, term))
            try:
                return producer, PulsarMessageID.from_pulsar(claim)
            except MessageError:  # not a position (cannot happen for a first send)
                return producer, None
        except pulsar.PulsarException as exc:
            _discard(producer)
            if not is_fenced(exc) or attempt == _ATTEMPTS:
                raise
            log.info(
                "pulsar pchannel %r: another opener fenced term %d before its claim; "
                "trying again (%d/%d)",
                pchannel,
                term,
                attempt,
                _ATTEMPTS,
            )
        except BaseException:
            _discard(producer)
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def _discard(producer: pulsar.Producer) -> None:
    try:
        producer.close()
    except pulsar.PulsarException as exc:
        log.debug("closing a discarded producer: %r", exc)
