"""The WAL contract suite on the core's in-memory backend (runs with no plugin installed)."""

import uuid

import pytest
from walstream.testing import WALBackendContract, WALBackendSpec


class TestMemoryBackendContract(WALBackendContract):
    @pytest.fixture
    def wal_backend(self) -> WALBackendSpec:
        return WALBackendSpec(name="memory", settings={"namespace": uuid.uuid4().hex})
