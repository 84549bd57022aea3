"""The pytest plugin registered through ``pytest11``: assert rewriting and markers for the suites."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite(
    "walstream.testing.wal_contract", "walstream.testing.objectstore_contract"
)


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers the suites and walstream's own tests use."""
    config.addinivalue_line("markers", "slow: long-running case (crash loops, benchmarks)")
