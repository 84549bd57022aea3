"""The no-silent-override rule of the contract suites.

A subclass may set the contract's tuning attributes (numbers, tuples) and must
override its fixture; it may replace a contract *test* only with a version marked
``@pytest.mark.xfail(reason=...)``, so every deviation shows in the report. Every
other method of the contract (helpers, the guard itself) may not be replaced at all.
The pytest plugin checks this when tests are collected; the guard test checks it again.
"""

from __future__ import annotations

import inspect
from typing import Any


def undeclared_overrides(contract: type, subclass: type) -> list[str]:
    """Names of contract members that ``subclass`` removed or replaced against the rule."""
    allowed: tuple[str, ...] = getattr(contract, "overridable_fixtures", ())
    bad: list[str] = []
    for name, original in vars(contract).items():
        if name.startswith("__") or name in allowed:
            continue
        raw = original.__func__ if isinstance(original, staticmethod | classmethod) else original
        if not callable(raw):
            continue  # tuning attributes may be set freely
        current: Any = inspect.getattr_static(subclass, name, None)
        if current is original:
            continue
        marks = getattr(current, "pytestmark", [])
        declared = any(m.name == "xfail" and m.kwargs.get("reason") for m in marks)
        if not (name.startswith("test_") and declared):
            bad.append(name)
    return bad
