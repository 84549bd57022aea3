"""``SealPolicyChain``: the one object the WAL's segment-assignment interceptor talks to.

It runs the selected policies in their configured order, turns their answers
into one plan, de-duplicates decisions (the first policy to name a segment gives
the reason) and keeps each policy's cooldown.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from walstream.policy.memory import MemoryProbe, safe_read
from walstream.policy.spi import InsertTooLargeError, SealDecision, SegmentPolicy
from walstream.policy.stats import (
    PROSPECTIVE_SEGMENT_ID,
    GrowingSnapshot,
    InsertStats,
    SegmentLimits,
    SegmentStats,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where an insert goes.

    ``seals``: candidates to seal first (they could not take it). ``segment_id``:
    the growing segment to assign it to, or ``None``: create a segment with
    ``new_limits`` (already checked to take the insert) and assign it there.
    """

    segment_id: int | None
    seals: tuple[SealDecision, ...] = ()
    new_limits: SegmentLimits | None = None


class SealPolicyChain:
    """The selected segment policies, run as one.

    ``memory_probe`` is read once per ``tick``; ``None`` means no memory readings
    (memory-based policies then decide nothing).
    """

    def __init__(
        self, policies: Sequence[SegmentPolicy], *, memory_probe: MemoryProbe | None = None
    ) -> None:
        names = [p.name for p in policies]
        if len(set(names)) != len(names):
            raise ValueError(f"a segment policy is selected twice: {names}")
        self._policies = tuple(policies)
        self._probe = memory_probe
        self._quiet_until: dict[str, float] = {}

    @property
    def policies(self) -> tuple[SegmentPolicy, ...]:
        """The policies, in the order they are consulted."""
        return self._policies

    @property
    def memory_probe(self) -> MemoryProbe | None:
        """The probe ``tick`` reads, if any."""
        return self._probe

    def new_segment_limits(self) -> SegmentLimits:
        """Limits for a segment the WAL is about to create: the tightest any policy asks for."""
        limits = SegmentLimits()
        for policy in self._policies:
            asked = policy.segment_limits()
            if asked is not None:
                limits = limits.tighter(asked)
        return limits

    def check_insert(self, segment: SegmentStats, insert: InsertStats) -> SealDecision | None:
        """``None`` if ``insert`` may go into ``segment``, else the first policy's seal decision.

        Raises ``InsertTooLargeError`` when a policy says no segment can ever take it.
        """
        for policy in self._policies:
            decision = policy.check_insert(segment, insert)
            if decision is not None:
                return decision
        return None

    def assign(
        self, candidates: Iterable[SegmentStats], insert: InsertStats, now: float
    ) -> Assignment:
        """Pick the first of ``candidates`` (the growing segments of the insert's partition,
        in the WAL's order of preference) that takes ``insert``; those that cannot are to be sealed.

        If none can, the insert is checked against a prospective empty segment with
        fresh limits, so an insert that fits nowhere is refused with
        ``InsertTooLargeError`` before the WAL writes a CreateSegment for it.
        """
        seals: list[SealDecision] = []
        for segment in candidates:
            decision = self.check_insert(segment, insert)
            if decision is None:
                return Assignment(segment.segment_id, tuple(seals))
            seals.append(decision)
        limits = self.new_segment_limits()
        fresh = SegmentStats.new(PROSPECTIVE_SEGMENT_ID, insert, limits, now)
        for policy in self._policies:
            if policy.check_insert(fresh, insert) is not None:
                # The policy refused an empty segment without saying why: still final.
                raise InsertTooLargeError(
                    insert_rows=insert.rows,
                    insert_bytes=insert.binary_bytes,
                    max_rows=limits.max_rows,
                    max_bytes=limits.max_bytes,
                    policy=policy.name,
                    hint="the policy refuses it even in an empty segment; split it into smaller inserts",
                )
        return Assignment(None, tuple(seals), limits)

    def tick(self, segments: Iterable[SegmentStats], now: float) -> list[SealDecision]:
        """The periodic check: read the memory probe, then ``evaluate`` all growing ``segments``."""
        memory = safe_read(self._probe) if self._probe is not None else None
        return self.evaluate(GrowingSnapshot(now, tuple(segments), memory))

    def evaluate(self, snapshot: GrowingSnapshot) -> list[SealDecision]:
        """Every policy not cooling down, in order; one decision per segment, first reason wins.

        A policy that returned any decision is not consulted again until its
        ``cooldown_seconds`` have passed (measured in ``snapshot.now``).
        """
        growing = {s.segment_id for s in snapshot.segments}
        decided: dict[int, SealDecision] = {}
        for policy in self._policies:
            if snapshot.now < self._quiet_until.get(policy.name, float("-inf")):
                continue
            decisions = list(policy.check_periodic(snapshot))
            if not decisions:
                continue
            if policy.cooldown_seconds > 0:
                self._quiet_until[policy.name] = snapshot.now + policy.cooldown_seconds
            for decision in decisions:
                if decision.segment_id not in growing:
                    # Sealing a segment the WAL does not hold as growing would corrupt its state.
                    log.warning(
                        "segment policy %r named segment %d, which is not growing; ignored",
                        policy.name,
                        decision.segment_id,
                    )
                    continue
                decided.setdefault(decision.segment_id, decision)
        if decided:
            log.debug("seal decisions at %.3f: %s", snapshot.now, list(decided.values()))
        return list(decided.values())
