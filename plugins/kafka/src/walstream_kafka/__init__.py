"""walstream's Apache Kafka WAL backend (entry point ``walstream.wal:kafka``)."""

from walstream_kafka.builder import KafkaBuilder
from walstream_kafka.message_id import KafkaMessageID
from walstream_kafka.opener import KafkaOpener
from walstream_kafka.settings import KafkaSettings
from walstream_kafka.wal import KafkaWAL

__all__ = ["KafkaBuilder", "KafkaMessageID", "KafkaOpener", "KafkaSettings", "KafkaWAL"]
