"""The timestamp oracle (TSO): hybrid ``physical_ms << 18 | logical`` timestamps.

See :mod:`walstream.tso.allocator`.
"""

from walstream.tso.allocator import (
    LOGICAL_BITS,
    MAX_LOGICAL,
    MAX_TIMESTAMP,
    TimestampOracle,
    TSOClosedError,
    TSOError,
    TSOFencedError,
    compose,
    now_ms,
    parse,
)

__all__ = [
    "LOGICAL_BITS",
    "MAX_LOGICAL",
    "MAX_TIMESTAMP",
    "TSOClosedError",
    "TSOError",
    "TSOFencedError",
    "TimestampOracle",
    "compose",
    "now_ms",
    "parse",
]
