"""Lets test modules import the helper modules next to them, and shares their fixtures."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from wal_scan_helpers import writer  # noqa: F401 - the scanner tests' fixture
