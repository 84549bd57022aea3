"""Lets test modules import the helper modules next to them, and shares their fixtures."""

import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from walstream.metastore import SQLiteMetastore
from walstream.tso import TimestampOracle

sys.path.insert(0, str(Path(__file__).parent))

from wal_scan_helpers import writer  # noqa: F401 - the scanner tests' fixture


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user config file: WALSTREAM_CONFIG names a file that does not exist.

    Modules whose every test needs it say ``pytestmark = pytest.mark.usefixtures("no_config")``.
    """
    monkeypatch.setenv("WALSTREAM_CONFIG", str(tmp_path / "walstream.toml"))


@pytest.fixture
async def tso(tmp_path: Path) -> AsyncIterator[TimestampOracle]:
    """A timestamp oracle on a fresh SQLite metastore in the test's tmp_path."""
    async with SQLiteMetastore(tmp_path / "meta.sqlite3") as ms, TimestampOracle(ms) as oracle:
        yield oracle


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> str:
    """A fresh memory-backend namespace (named after the test module), so tests never share a log."""
    module = request.module.__name__.rpartition(".")[2].removeprefix("test_")
    return f"{module}-{uuid.uuid4().hex}"
