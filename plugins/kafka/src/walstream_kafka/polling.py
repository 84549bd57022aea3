"""Reading a consumer without waiting longer than needed."""

from __future__ import annotations

from confluent_kafka import Consumer, Message


def poll_batch(consumer: Consumer, limit: int, timeout_s: float) -> list[Message]:
    """Up to ``limit`` messages or events: waits at most ``timeout_s`` for the first one,
    then takes only what is already there.

    (``Consumer.consume(n, timeout)`` itself waits for ``n`` messages or the whole
    timeout, which would delay every partial batch by ``timeout``.)
    """
    first = consumer.poll(timeout_s)
    if first is None:
        return []
    return [first, *consumer.consume(limit - 1, timeout=0)] if limit > 1 else [first]
