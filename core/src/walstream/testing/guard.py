"""The no-silent-override rule of the contract suites.

A subclass may replace a contract test only with a version marked
``@pytest.mark.xfail(reason=...)``, so every deviation is visible in the report.
"""

from __future__ import annotations

from typing import Any


def undeclared_overrides(contract: type, subclass: type) -> list[str]:
    """Names of contract tests that ``subclass`` removed or replaced without an xfail reason."""
    bad: list[str] = []
    for name, original in vars(contract).items():
        if not name.startswith("test_") or name == "test_no_overrides_DO_NOT_OVERRIDE":
            continue
        current: Any = getattr(subclass, name, None)
        if current is original:
            continue
        marks = getattr(current, "pytestmark", [])
        if not any(m.name == "xfail" and m.kwargs.get("reason") for m in marks):
            bad.append(name)
    return bad
