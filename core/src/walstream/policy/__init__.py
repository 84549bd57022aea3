"""Segment lifecycle policies: when a growing segment is sealed.

The WAL's segment-assignment interceptor builds one ``SealPolicyChain`` per WAL
(``build_chain()``, from ``[segment_policy]`` settings) and calls:

- ``chain.assign(candidates, insert, now)`` per insert and partition: which
  growing segment takes it, which to seal first, or the limits of a new one
  (``InsertTooLargeError`` if it can never fit);
- ``chain.tick(growing_segments, now)`` every ``check_interval_seconds``: the
  segments to seal (idle, lifetime, growing-bytes high-water mark, memory pressure).

Third parties add policies as ``SegmentPolicy`` subclasses registered in the
``walstream.segment_policy`` entry-point group.
"""

from walstream.policy.capacity import CapacityPolicy, CapacitySettings
from walstream.policy.chain import Assignment, SealPolicyChain
from walstream.policy.idle import IdlePolicy, IdleSettings
from walstream.policy.lifetime import LifetimePolicy, LifetimeSettings
from walstream.policy.memory import MemoryProbe, process_memory, system_memory
from walstream.policy.pressure import (
    GrowingBytesHwmPolicy,
    GrowingBytesHwmSettings,
    MemoryPressurePolicy,
    MemoryPressureSettings,
)
from walstream.policy.registry import (
    BUILTIN_POLICIES,
    DEFAULT_POLICIES,
    PolicySettings,
    build_chain,
    get_policy_class,
    installed_policy_names,
    load_policy_settings,
)
from walstream.policy.spi import InsertTooLargeError, SealDecision, SealReason, SegmentPolicy
from walstream.policy.stats import (
    PROSPECTIVE_SEGMENT_ID,
    UNLIMITED,
    GrowingSnapshot,
    InsertStats,
    MemoryReading,
    SegmentLimits,
    SegmentStats,
)

__all__ = [
    "BUILTIN_POLICIES",
    "DEFAULT_POLICIES",
    "PROSPECTIVE_SEGMENT_ID",
    "UNLIMITED",
    "Assignment",
    "CapacityPolicy",
    "CapacitySettings",
    "GrowingBytesHwmPolicy",
    "GrowingBytesHwmSettings",
    "GrowingSnapshot",
    "IdlePolicy",
    "IdleSettings",
    "InsertStats",
    "InsertTooLargeError",
    "LifetimePolicy",
    "LifetimeSettings",
    "MemoryPressurePolicy",
    "MemoryPressureSettings",
    "MemoryProbe",
    "MemoryReading",
    "PolicySettings",
    "SealDecision",
    "SealPolicyChain",
    "SealReason",
    "SegmentLimits",
    "SegmentPolicy",
    "SegmentStats",
    "build_chain",
    "get_policy_class",
    "installed_policy_names",
    "load_policy_settings",
    "process_memory",
    "system_memory",
]
