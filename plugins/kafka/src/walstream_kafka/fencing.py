"""Fencing: a transactional producer per pchannel plus a strict term check in the log.

Every writer of a pchannel uses the same transactional id (``naming.transactional_id``).
``init_transactions`` of a new producer bumps the id's epoch at the transaction
coordinator, which aborts the transaction the previous producer had open and makes
every later request of that producer fail with ``PRODUCER_FENCED``: its pending and
future appends fail with ``FencedError`` and, being aborted, are never seen by our
``read_committed`` scanners.

Epochs alone would let *any* opener win, including a stale one at a lower term. So the
log itself records terms: every record's key carries its writer's term, and an RW open
commits a *claim* record (key kind ``C``) before it accepts appends. Claims and data are
in commit order in the single partition, so the term of the last committed record is
the highest term that ever took the pchannel. An open at term T:

1. reads that last term; above T, refuses with ``FencedError`` without touching the
   producer epoch (so a stale opener does not disturb the live writer);
2. ``init_transactions`` (fences every earlier producer, aborts its open transaction);
3. reads the last term again, now that no other producer of the pchannel can commit; if
   a higher term committed between 1 and 2, closes its producer and refuses;
4. commits the claim record. From then on a lower term fails at step 1 or 3.

If two opens race, the lower term may fence the higher one between its steps 2 and 4;
the higher open then sees its claim fail with a fenced error and starts again at step 1
(bounded), while the lower one, at step 3 of its next try or at its next append, finds
the higher term and gives up. The pchannel ends with the highest term.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from walstream.errors import FencedError

from walstream_kafka.errors import KafkaUnavailableError
from walstream_kafka.polling import poll_batch
from walstream_kafka.records import parse_key

_FIRST_WINDOW = 16
_GROWTH = 8


def last_term(consumer: Consumer, topic: str, timeout_s: float) -> int | None:
    """The term in the key of the last committed record of ``topic``, or None if it has none.

    ``consumer`` must be a ``read_committed`` consumer with ``enable.partition.eof``;
    it is (re)assigned here. Reads backwards in growing windows from the end, because
    the records just before the end may be transaction markers or aborted records,
    which a ``read_committed`` consumer never returns.
    """
    deadline = time.monotonic() + timeout_s
    tp = TopicPartition(topic, 0)
    low, high = consumer.get_watermark_offsets(tp, timeout=_left(deadline), cached=False)
    if high <= low:
        return None
    window = _FIRST_WINDOW
    while True:
        start = max(low, high - window)
        found = _last_key_from(consumer, topic, start, deadline)
        if found is not None:
            parsed = parse_key(found)
            return None if parsed is None else parsed[1]
        if start == low:
            return None
        window *= _GROWTH


def _last_key_from(consumer: Consumer, topic: str, start: int, deadline: float) -> bytes | None:
    """The key of the last committed record at or after ``start`` (b"" for a keyless one)."""
    consumer.assign([TopicPartition(topic, 0, start)])
    last: bytes | None = None
    try:
        while True:
            for msg in poll_batch(consumer, 1000, min(0.5, _left(deadline))):
                err = msg.error()
                if err is None:
                    last = msg.key() or b""
                elif err.code() == KafkaError._PARTITION_EOF:
                    return last
                elif not (err.retriable() or err.code() in _WAIT_CODES):
                    raise KafkaException(err)
            if time.monotonic() >= deadline:
                raise KafkaUnavailableError(
                    f"reading the end of topic {topic!r} to check its writer's term did not "
                    f"finish in time; check that the brokers are reachable"
                )
    finally:
        consumer.unassign()


_WAIT_CODES = frozenset(
    {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT}
)


def _left(deadline: float) -> float:
    return max(0.01, deadline - time.monotonic())


def refuse_stale(pchannel: str, term: int, highest: int | None, when: str) -> None:
    """Raise ``FencedError`` if ``highest`` (the log's last term) is above ``term``."""
    if highest is not None and highest > term:
        raise FencedError(
            f"cannot open kafka pchannel {pchannel!r} at term {term}: term {highest} "
            f"already wrote to it ({when}); a lower term may never take a pchannel back"
        )
