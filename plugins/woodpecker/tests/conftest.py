"""Fixtures of the woodpecker unit tests."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from walstream_woodpecker import WoodpeckerBuilder, WoodpeckerOpener
from wp_helpers import OpenerFactory


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A fresh root directory."""
    return tmp_path / "wal"


@pytest.fixture
async def make_opener(root: Path) -> AsyncIterator[OpenerFactory]:
    """Build openers over ``root`` with setting overrides; all closed at teardown."""
    openers: list[WoodpeckerOpener] = []

    def make(**overrides: Any) -> WoodpeckerOpener:
        settings = {"root": str(root), "reader_poll_interval_ms": 20, **overrides}
        opener = WoodpeckerBuilder().build(settings)
        assert isinstance(opener, WoodpeckerOpener)
        openers.append(opener)
        return opener

    yield make
    for opener in openers:
        await asyncio.wait_for(opener.close(), 10)
