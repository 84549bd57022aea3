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


def test_replacing_a_helper_or_the_guard_is_reported() -> None:
    class Sneaky(WALBackendContract):
        def test_no_overrides_DO_NOT_OVERRIDE(self) -> None:  # type: ignore[override]
            pass

        async def _check_policies(self, wal, history):  # type: ignore[no-untyped-def,override]
            return None

        @staticmethod
        def require(spec, capability):  # type: ignore[no-untyped-def,override]
            pytest.skip("never")

    assert sorted(undeclared_overrides(WALBackendContract, Sneaky)) == [
        "_check_policies",
        "require",
        "test_no_overrides_DO_NOT_OVERRIDE",
    ]


def test_tuning_attributes_and_the_fixture_may_change() -> None:
    class Tuned(WALBackendContract):
        crash_rounds = 3
        message_count = 10

        @pytest.fixture
        def wal_backend(self):  # type: ignore[no-untyped-def,override]
            return None

    assert undeclared_overrides(WALBackendContract, Tuned) == []


def test_collection_refuses_a_sloppy_subclass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from walstream.testing import WALBackendContract, WALBackendSpec

        class TestSloppy(WALBackendContract):
            @pytest.fixture
            def wal_backend(self):
                return WALBackendSpec("memory", {"namespace": "sloppy"})

            def test_fencing(self, wal_backend):
                pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret != 0
    assert "replaces WALBackendContract members ['test_fencing']" in result.stderr.str()
