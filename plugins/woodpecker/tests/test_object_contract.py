"""The WAL contract suite on zero-disk woodpecker: memory:// and file:// object stores."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from walstream.testing import WALBackendContract, WALBackendSpec

# Short flush interval: the suite appends one small message at a time, and at the
# 200 ms default every such append would wait 200 ms. The default interval is exercised
# in test_object_mode.py (test_object_mode_defaults, test_default_interval_groups_appends).
FAST = {"object_flush_interval_ms": 5, "object_reader_poll_interval_ms": 20}


class TestObjectMemoryContract(WALBackendContract):
    @pytest.fixture
    def wal_backend(self, tmp_path: Path) -> WALBackendSpec:
        return WALBackendSpec(
            name="woodpecker",
            settings={
                "root": str(tmp_path / "wal"),
                "storage": "object",
                "object_store_url": f"memory://wp-{uuid.uuid4().hex}",
                **FAST,
            },
        )


class TestObjectFileContract(WALBackendContract):
    @pytest.fixture
    def wal_backend(self, tmp_path: Path) -> WALBackendSpec:
        objects = tmp_path / "objects"
        objects.mkdir()
        return WALBackendSpec(
            name="woodpecker",
            settings={
                "root": str(tmp_path / "wal"),
                "storage": "object",
                "object_store_url": objects.as_uri(),
                **FAST,
            },
        )
