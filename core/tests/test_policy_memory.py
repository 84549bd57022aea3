"""Memory probes: /proc/meminfo parsing and the built-in probes on this machine."""

import sys

import pytest
from walstream.policy import MemoryReading, process_memory, system_memory
from walstream.policy.memory import parse_meminfo, safe_read

MEMINFO = """\
MemTotal:       16000000 kB
MemFree:         1000000 kB
MemAvailable:    4000000 kB
Buffers:          500000 kB
Cached:          2000000 kB
HugePages_Total:       0
"""


def test_used_is_total_minus_available() -> None:
    reading = parse_meminfo(MEMINFO)
    assert reading == MemoryReading(used_bytes=12_000_000 * 1024, total_bytes=16_000_000 * 1024)
    assert reading.used_ratio == pytest.approx(0.75)


def test_old_kernels_without_memavailable_count_free_buffers_and_cache() -> None:
    old = "\n".join(line for line in MEMINFO.splitlines() if "MemAvailable" not in line)
    reading = parse_meminfo(old)
    assert reading is not None and reading.used_bytes == (16_000_000 - 3_500_000) * 1024


def test_unreadable_meminfo_gives_no_reading() -> None:
    assert parse_meminfo("") is None
    assert parse_meminfo("MemTotal: lots\n") is None


def test_reading_validation() -> None:
    with pytest.raises(ValueError, match="total_bytes"):
        MemoryReading(1, 0)
    with pytest.raises(ValueError, match="used_bytes"):
        MemoryReading(-1, 10)


def test_safe_read_turns_a_failing_probe_into_no_reading() -> None:
    def broken() -> MemoryReading:
        raise RuntimeError("probe bug")

    assert safe_read(broken) is None


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_builtin_probes_read_this_machine() -> None:
    system, process = system_memory(), process_memory()
    assert system is not None and process is not None
    assert 0 < system.used_ratio <= 1 and 0 < process.used_ratio <= 1
    assert process.total_bytes == system.total_bytes
    # this very process holds a Python interpreter: at least a few MiB resident
    assert process.used_bytes > 4 * 1024 * 1024
