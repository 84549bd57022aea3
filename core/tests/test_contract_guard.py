"""The contract suites refuse silent overrides."""

import pytest
from walstream.testing.guard import undeclared_overrides
from walstream.testing.wal_contract import WALBackendContract


def test_plain_override_is_reported() -> None:
    class Sloppy(WALBackendContract):
        def test_fencing(self) -> None:  # type: ignore[override]
            pass

    assert undeclared_overrides(WALBackendContract, Sloppy) == ["test_fencing"]


def test_removed_test_is_reported() -> None:
    class Removed(WALBackendContract):
        test_edge_messages = None  # type: ignore[assignment]

    assert undeclared_overrides(WALBackendContract, Removed) == ["test_edge_messages"]


def test_xfail_with_reason_is_allowed() -> None:
    class Declared(WALBackendContract):
        @pytest.mark.xfail(reason="backend has no fencing yet", strict=True)
        def test_fencing(self) -> None:  # type: ignore[override]
            raise AssertionError

    assert undeclared_overrides(WALBackendContract, Declared) == []
