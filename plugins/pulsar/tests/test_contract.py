"""The WAL backend contract suite against the real test broker."""

from __future__ import annotations

import pytest
from pulsar_helpers import pulsar_test_settings
from walstream.testing import WALBackendContract, WALBackendSpec


class TestPulsarContract(WALBackendContract):
    invalid_message_ids = (
        *WALBackendContract.invalid_message_ids,
        b"\x08\x05",  # a MessageIdData without its entry id
        b"\x08\x05\x10",  # cut short
    )

    @pytest.fixture
    def wal_backend(self, pulsar_url: str) -> WALBackendSpec:
        return WALBackendSpec(name="pulsar", settings=pulsar_test_settings(pulsar_url))
