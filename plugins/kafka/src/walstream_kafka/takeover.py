"""Taking a pchannel for writing at a term (steps 1-4 in ``fencing``), in a worker thread."""

from __future__ import annotations

import logging
import time

from confluent_kafka import Consumer, KafkaException, Producer

from walstream_kafka import retry
from walstream_kafka.config import consumer_config, producer_config
from walstream_kafka.errors import is_fenced
from walstream_kafka.fencing import last_term, refuse_stale
from walstream_kafka.naming import transactional_id
from walstream_kafka.records import CLAIM, record_key
from walstream_kafka.settings import KafkaSettings

log = logging.getLogger(__name__)

_ATTEMPTS = 5
"""Tries when a racing opener fences this one between its init and its claim."""


def take_over(
    settings: KafkaSettings, topic: str, pchannel: str, term: int, deadline: float
) -> Producer:
    """A transactional producer that fenced every earlier writer and committed its claim.

    Raises ``FencedError`` if a higher term already wrote to the topic.
    """
    consumer = Consumer(consumer_config(settings, eof=True))
    try:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return _attempt(settings, consumer, topic, pchannel, term, deadline)
            except KafkaException as exc:
                if not is_fenced(exc) or attempt == _ATTEMPTS:
                    raise
                log.info(
                    "kafka pchannel %r: another opener fenced term %d before its claim; "
                    "trying again (%d/%d)",
                    pchannel,
                    term,
                    attempt,
                    _ATTEMPTS,
                )
        raise AssertionError("unreachable")  # pragma: no cover
    finally:
        consumer.close()


def _attempt(
    settings: KafkaSettings,
    consumer: Consumer,
    topic: str,
    pchannel: str,
    term: int,
    deadline: float,
) -> Producer:
    step = settings.request_timeout_s
    highest = retry.call(lambda: last_term(consumer, topic, retry.left(deadline, step)), deadline)
    refuse_stale(pchannel, term, highest, "found before taking over")
    producer = Producer(producer_config(settings, transactional_id(topic)))
    try:
        started = time.monotonic()
        retry.call(lambda: producer.init_transactions(retry.left(deadline, step)), deadline)
        log.debug(
            "kafka pchannel %r: init_transactions took %.3fs", pchannel, time.monotonic() - started
        )
        # Every earlier producer of this pchannel is fenced now and can commit nothing more.
        highest = retry.call(
            lambda: last_term(consumer, topic, retry.left(deadline, step)), deadline
        )
        refuse_stale(pchannel, term, highest, "committed while this open fenced the writers")
        producer.begin_transaction()
        producer.produce(topic, value=b"", key=record_key(CLAIM, term), partition=0)
        retry.call(lambda: producer.commit_transaction(retry.left(deadline, step)), deadline)
        return producer
    except BaseException:
        _discard(producer)
        raise


def _discard(producer: Producer) -> None:
    try:
        producer.purge()
        producer.flush(0)
    except (KafkaException, RuntimeError):
        pass
