"""The object-store contract suite on this plugin's drivers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from walstream.testing.objectstore_contract import ObjectStoreContract, ObjectStoreSpec
from walstream_objectstore.memory import drop_namespace


class TestLocalObjectStoreContract(ObjectStoreContract):
    @pytest.fixture
    def object_store(self, tmp_path: Path) -> ObjectStoreSpec:
        return ObjectStoreSpec(name="local", settings={"root": str(tmp_path / "objects")})


class TestMemoryObjectStoreContract(ObjectStoreContract):
    @pytest.fixture
    def object_store(self) -> Iterator[ObjectStoreSpec]:
        name = f"contract-{uuid.uuid4().hex}"
        yield ObjectStoreSpec(name="memory", settings={"name": name})
        drop_namespace(name)
