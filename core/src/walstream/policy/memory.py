"""Memory probes: where the ``memory_pressure`` and ``growing_bytes_hwm`` policies get RAM figures.

A probe is a plain callable returning a ``MemoryReading`` or ``None`` (cannot
tell). The defaults read ``/proc`` on Linux and fall back to ``os.sysconf`` and
the ``resource`` module elsewhere, so no dependency is needed; tests pass their
own probe.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from walstream.policy.stats import MemoryReading

MemoryProbe = Callable[[], MemoryReading | None]
MemorySource = Literal["system", "process"]

log = logging.getLogger(__name__)

_MEMINFO = Path("/proc/meminfo")
_STATM = Path("/proc/self/statm")


def parse_meminfo(text: str) -> MemoryReading | None:
    """Used and total bytes from the text of ``/proc/meminfo``.

    Used is ``MemTotal - MemAvailable``: page cache the kernel can drop is not
    pressure. Kernels without ``MemAvailable`` (before 3.14) count free + buffers + cached.
    """
    fields: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[key.strip()] = int(parts[0]) * 1024  # the file says kB and means KiB
    total = fields.get("MemTotal", 0)
    if total <= 0:
        return None
    available = fields.get("MemAvailable")
    if available is None:
        available = sum(fields.get(k, 0) for k in ("MemFree", "Buffers", "Cached"))
    return MemoryReading(used_bytes=max(total - available, 0), total_bytes=total)


def _sysconf_total() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def system_memory() -> MemoryReading | None:
    """Memory used by the whole machine (what Milvus's node-memory policy watches)."""
    try:
        return parse_meminfo(_MEMINFO.read_text())
    except OSError:
        # No /proc (macOS, BSD): sysconf gives the total but not what is in use.
        return None


def process_memory() -> MemoryReading | None:
    """This process's resident memory out of the machine's total."""
    total = _sysconf_total()
    if not total:
        return None
    try:
        resident_pages = int(_STATM.read_text().split()[1])
        return MemoryReading(resident_pages * os.sysconf("SC_PAGE_SIZE"), total)
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    # ru_maxrss is the peak, not the current size: an upper bound, good enough off Linux.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return MemoryReading(peak * scale, total)


def default_probe(source: MemorySource) -> MemoryProbe:
    """The built-in probe for ``source``: ``"system"`` or ``"process"``."""
    return system_memory if source == "system" else process_memory


def safe_read(probe: MemoryProbe) -> MemoryReading | None:
    """Call ``probe``; a failing probe means "no reading", never a failed tick."""
    try:
        return probe()
    except Exception:  # a third-party probe must not stop sealing by the other policies
        log.warning(
            "memory probe %r failed; memory-based policies skip this tick", probe, exc_info=True
        )
        return None
