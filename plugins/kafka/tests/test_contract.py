"""The WAL backend contract suite against the real test broker."""

from __future__ import annotations

import pytest
from kafka_helpers import kafka_test_settings
from walstream.testing import WALBackendContract, WALBackendSpec


class TestKafkaContract(WALBackendContract):
    invalid_message_ids = (
        *WALBackendContract.invalid_message_ids,
        b"\x80" + b"\x00" * 7,  # above the largest Kafka offset
        b"\x00" * 7,
        b"\x00" * 9,
    )

    @pytest.fixture
    def wal_backend(self, kafka_bootstrap: str) -> WALBackendSpec:
        return WALBackendSpec(name="kafka", settings=kafka_test_settings(kafka_bootstrap))
