"""walstream's Apache Pulsar WAL backend (entry point ``walstream.wal:pulsar``)."""

from walstream_pulsar.builder import PulsarBuilder
from walstream_pulsar.message_id import PulsarMessageID
from walstream_pulsar.opener import PulsarOpener
from walstream_pulsar.settings import PulsarSettings
from walstream_pulsar.wal import PulsarWAL

__all__ = ["PulsarBuilder", "PulsarMessageID", "PulsarOpener", "PulsarSettings", "PulsarWAL"]
