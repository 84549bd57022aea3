"""The segment policy SPI: what a ``walstream.segment_policy`` entry point names.

A policy is consulted at three moments, each a plain method with a harmless
default, so a policy overrides only what it needs:

- ``segment_limits()`` when the WAL creates a growing segment (capacity);
- ``check_insert(segment, insert)`` for each candidate segment of an insert:
  ``None`` when the insert may go there, a ``SealDecision`` when the segment must
  be sealed first; ``InsertTooLargeError`` when no segment could ever take it;
- ``check_periodic(snapshot)`` every few seconds with all growing segments of
  the WAL; returns the segments to seal.

Policies are pure functions of what they are given (no clock, no I/O), so the
WAL stays deterministic and tests need neither sleeping nor real memory.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

from pydantic_settings import BaseSettings

from walstream.errors import WalstreamError
from walstream.policy.stats import GrowingSnapshot, InsertStats, SegmentLimits, SegmentStats
from walstream.settings import load_driver_settings

S = TypeVar("S", bound=BaseSettings)


class SealReason(StrEnum):
    """Why a segment is sealed. Third-party policies may use their own name as a reason."""

    CAPACITY = "capacity"
    IDLE = "idle"
    LIFETIME = "lifetime"
    GROWING_BYTES_HWM = "growing_bytes_hwm"
    MEMORY_PRESSURE = "memory_pressure"
    # Decided by the WAL itself, never by a policy: listed so every Flush has one vocabulary.
    MANUAL_FLUSH = "manual_flush"
    COLLECTION_DROPPED = "collection_dropped"
    PARTITION_DROPPED = "partition_dropped"


@dataclass(frozen=True, slots=True)
class SealDecision:
    """Seal growing segment ``segment_id`` because of ``reason``.

    ``detail`` is for logs and hooks only (the figures that triggered it); it takes
    no part in equality.
    """

    segment_id: int
    reason: str
    detail: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.reason:
            raise ValueError("SealDecision.reason must not be empty")


class InsertTooLargeError(WalstreamError, ValueError):
    """An insert is bigger than a whole segment may be: it can never be assigned.

    Final, not retryable: the WAL refuses the insert and the client must split it.
    """

    def __init__(
        self,
        *,
        insert_rows: int,
        insert_bytes: int,
        max_rows: int,
        max_bytes: int,
        policy: str,
        hint: str = "",
    ) -> None:
        super().__init__(
            f"insert of {insert_rows} rows / {insert_bytes} bytes is larger than a whole segment "
            f"(at most {max_rows} rows / {max_bytes} bytes, segment policy {policy!r}); "
            + (hint or "split it into smaller inserts")
        )
        self.insert_rows = insert_rows
        self.insert_bytes = insert_bytes
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.policy = policy


def resolve_settings(cls: type[S], settings: BaseSettings | None) -> S:
    """``settings`` if it is a ``cls``; ``None`` loads ``cls`` from env and ``walstream.toml``."""
    if settings is None:
        return load_driver_settings(cls, {})
    if not isinstance(settings, cls):
        raise TypeError(f"expected {cls.__name__}, got {type(settings).__name__}")
    return settings


class SegmentPolicy(ABC):
    """Base of every segment policy (entry-point group ``walstream.segment_policy``).

    ``name`` must equal the entry-point name. ``plugin_api`` is a PEP 440
    specifier the core's ``PLUGIN_API_VERSION`` must satisfy, otherwise the
    policy is skipped with a warning. ``settings_class`` is the policy's
    pydantic-settings model: TOML ``[segment_policy.<name>]``, env
    ``WALSTREAM_SEGMENT_POLICY_<NAME>_*`` (see ``driver_settings_config``).

    ``cooldown_seconds``: after ``check_periodic`` returned decisions at ``now``,
    the chain does not consult it again before ``now + cooldown_seconds``, so
    one burst of pressure does not seal everything before the first seals land.
    """

    name: ClassVar[str]
    plugin_api: ClassVar[str] = ">=1.0,<2"
    settings_class: ClassVar[type[BaseSettings]]

    cooldown_seconds: float = 0.0

    def __init__(self, settings: BaseSettings | None = None) -> None:
        self.settings: BaseSettings = resolve_settings(self.settings_class, settings)

    @classmethod
    def load_settings(cls, overrides: dict[str, Any] | None = None) -> BaseSettings:
        """Validate this policy's settings from env, ``walstream.toml`` and ``overrides``."""
        return load_driver_settings(cls.settings_class, overrides or {})

    def segment_limits(self) -> SegmentLimits | None:
        """Limits for a segment about to be created; ``None``: no opinion."""
        return None

    def check_insert(self, segment: SegmentStats, insert: InsertStats) -> SealDecision | None:
        """May ``insert`` go into ``segment``? ``None``: yes; a decision: seal it first.

        ``segment`` may be empty (a fresh one, or ``PROSPECTIVE_SEGMENT_ID`` when
        the WAL asks whether a new segment would take the insert). Refusing an
        empty segment means the insert never fits: raise ``InsertTooLargeError``.
        """
        return None

    def check_periodic(self, snapshot: GrowingSnapshot) -> Iterable[SealDecision]:
        """The growing segments to seal now."""
        return ()
