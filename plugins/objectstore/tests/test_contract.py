"""The object-store contract suite on this plugin's drivers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


class TestS3ObjectStoreContract(ObjectStoreContract):
    """The contract against the real S3 test server (scripts/s3proxy), a fresh prefix per test."""

    @pytest.fixture
    def object_store(self, s3_fresh: dict[str, Any]) -> ObjectStoreSpec:
        return ObjectStoreSpec(name="s3", settings=s3_fresh)

    @pytest.mark.xfail(
        reason=(
            "S3Proxy's filesystem-nio2 backend answers 500 'Not a directory' (not 404) for a GET "
            "under an object's name ('present/x/deeper' while 'present/x' is an object), which "
            "the driver must treat as transient; AWS S3 and MinIO answer 404. The other missing-"
            "key cases are checked in test_s3.py. Strict: if S3Proxy starts answering 404, this "
            "xpasses and fails, so the override can go."
        ),
        strict=True,
    )
    def test_missing_key_raises_not_found(self, object_store: ObjectStoreSpec) -> None:
        # A short retry deadline: the 500s are retried as transient until it passes.
        quick = {**object_store.settings, "retry_deadline_s": 1.0}
        super().test_missing_key_raises_not_found(ObjectStoreSpec(object_store.name, quick))
