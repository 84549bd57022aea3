"""The pytest plugin registered through ``pytest11``: assert rewriting and markers for the suites."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite(
    "walstream.testing.wal_contract", "walstream.testing.objectstore_contract"
)


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers the suites and walstream's own tests use."""
    config.addinivalue_line("markers", "slow: long-running case (crash loops, benchmarks)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse to run a contract subclass that replaced contract members against the rule."""
    checked: set[type] = set()
    for item in items:
        cls = getattr(item, "cls", None)
        if cls is None or cls in checked:
            continue
        checked.add(cls)
        if not any(k.__module__.startswith("walstream.testing.") for k in cls.__mro__[1:]):
            continue
        from walstream.testing.guard import undeclared_overrides
        from walstream.testing.objectstore_contract import ObjectStoreContract
        from walstream.testing.wal_contract import WALBackendContract

        for contract in (WALBackendContract, ObjectStoreContract):
            if issubclass(cls, contract) and cls is not contract:
                bad = undeclared_overrides(contract, cls)
                if bad:
                    raise pytest.UsageError(
                        f"{cls.__module__}.{cls.__qualname__} replaces {contract.__name__} members "
                        f"{bad}: only tests may be replaced, and only with "
                        f"@pytest.mark.xfail(reason=...)"
                    )
