"""The metadata records of a log in the metastore; every change is a compare-and-swap.

- owner ``{"term", "generation"}``: who may write. A read-write open raises the
  generation by one and CASes the record; a lower term is refused.
- segment ``{"state": "active"|"completed", "term", "generation", "last_entry",
  "block_count"}``: created with create-if-absent (so two writers can never both start
  segment N) and completed by a CAS on the revision its writer (or fencer) read. Term
  and generation are those of the owner that created (then: completed) it, so an open
  that finds a record newer than its own claim knows it was overtaken.
- truncation ``{"segment", "entry"}``: the first id still retained; it only moves forward.

A CAS or create that finds a different revision means someone else took the log over,
and the writer stops.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from walstream.errors import FencedError, WALError
from walstream.metastore import KeyValue, Metastore

from walstream_woodpecker.message_id import WoodpeckerMessageID
from walstream_woodpecker.objectmode.layout import LogLayout

ACTIVE = "active"
COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class Owner:
    """The owner record."""

    term: int
    generation: int


@dataclass(frozen=True, slots=True)
class SegmentMeta:
    """One segment record and the revision it was read at."""

    segment: int
    state: str
    term: int
    last_entry: int  # -1 while nothing is known / empty
    block_count: int
    revision: int = 0
    generation: int = 0  # records written before generations were stored read as 0

    @property
    def completed(self) -> bool:
        """Whether the segment is final (footer written)."""
        return self.state == COMPLETED

    def newer_than(self, owner: Owner) -> bool:
        """Whether an owner claimed after ``owner`` wrote this record."""
        return (self.term, self.generation) > (owner.term, owner.generation)


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _load(kv: KeyValue, what: str) -> dict[str, Any]:
    try:
        value = json.loads(kv.value)
        if not isinstance(value, dict):
            raise TypeError("not an object")
    except (ValueError, TypeError) as exc:
        raise WALError(f"{what} record {kv.key!r} in the metastore is damaged: {exc}") from None
    return value


class LogMeta:
    """The metastore records of one log."""

    def __init__(self, store: Metastore, layout: LogLayout, pchannel: str) -> None:
        self.store = store
        self.layout = layout
        self.pchannel = pchannel

    # --- owner ------------------------------------------------------------------------

    async def owner(self) -> tuple[Owner | None, int | None]:
        """The owner record and its revision (None, None before the first RW open)."""
        kv = await self.store.get(self.layout.owner_key)
        if kv is None:
            return None, None
        value = _load(kv, "owner")
        return Owner(int(value["term"]), int(value["generation"])), kv.mod_revision

    async def claim(self, term: int, attempts: int = 20) -> Owner:
        """Become the owner at ``term`` (refusing lower terms); the new owner record."""
        for _ in range(attempts):
            current, revision = await self.owner()
            if current is not None and term < current.term:
                raise FencedError(
                    f"cannot open pchannel {self.pchannel!r} read-write at term {term}: term "
                    f"{current.term} already took it, and terms only move forward"
                )
            mine = Owner(term, (current.generation + 1) if current is not None else 1)
            value = _dump({"term": mine.term, "generation": mine.generation})
            if await self.store.put_if(self.layout.owner_key, revision, value) is not None:
                return mine
        raise WALError(
            f"pchannel {self.pchannel!r}: the owner record kept changing under a read-write "
            f"open at term {term}; another writer is opening it concurrently (retry the open)"
        )

    async def check_owner(self, mine: Owner) -> None:
        """``FencedError`` unless ``mine`` is still the owner."""
        current, _ = await self.owner()
        if current != mine:
            raise fenced_error(self.pchannel, mine, current)

    # --- segments -------------------------------------------------------------------------

    def _segment(self, kv: KeyValue) -> SegmentMeta:
        value = _load(kv, "segment")
        return SegmentMeta(
            self.layout.segment_of_key(kv.key),
            str(value["state"]),
            int(value["term"]),
            int(value["last_entry"]),
            int(value["block_count"]),
            kv.mod_revision,
            int(value.get("generation", 0)),
        )

    async def segments(self) -> list[SegmentMeta]:
        """Every segment record, ascending."""
        return [self._segment(kv) for kv in await self.store.range(self.layout.segments_prefix)]

    async def segment(self, segment: int) -> SegmentMeta | None:
        """One segment record, or None."""
        kv = await self.store.get(self.layout.segment_key(segment))
        return None if kv is None else self._segment(kv)

    async def create_segment(self, segment: int, owner: Owner) -> SegmentMeta | None:
        """Create ``segment`` as active; None if it already exists (lost ownership)."""
        value = _dump(
            {
                "state": ACTIVE,
                "term": owner.term,
                "generation": owner.generation,
                "last_entry": -1,
                "block_count": 0,
            }
        )
        revision = await self.store.put_if(self.layout.segment_key(segment), None, value)
        if revision is None:
            return None
        return SegmentMeta(segment, ACTIVE, owner.term, -1, 0, revision, owner.generation)

    async def complete_segment(
        self, seg: SegmentMeta, owner: Owner, last_entry: int, block_count: int
    ) -> bool:
        """CAS ``seg`` (as read) to completed by ``owner``; False on a conflict."""
        value = _dump(
            {
                "state": COMPLETED,
                "term": owner.term,
                "generation": owner.generation,
                "last_entry": last_entry,
                "block_count": block_count,
            }
        )
        key = self.layout.segment_key(seg.segment)
        return await self.store.put_if(key, seg.revision, value) is not None

    async def delete_segment(self, segment: int) -> None:
        """Forget ``segment`` (after its objects are gone)."""
        await self.store.delete(self.layout.segment_key(segment))

    # --- truncation ---------------------------------------------------------------------------

    async def truncation(self) -> tuple[WoodpeckerMessageID | None, int | None]:
        """The truncation point and its revision (None, None if never truncated)."""
        kv = await self.store.get(self.layout.truncation_key)
        if kv is None:
            return None, None
        value = _load(kv, "truncation")
        return WoodpeckerMessageID(int(value["segment"]), int(value["entry"])), kv.mod_revision

    async def advance_truncation(self, point: WoodpeckerMessageID) -> WoodpeckerMessageID:
        """Move the truncation point forward to ``point`` (never back); the point now."""
        while True:
            current, revision = await self.truncation()
            if current is not None and current >= point:
                return current
            value = _dump({"segment": point.segment, "entry": point.entry})
            if await self.store.put_if(self.layout.truncation_key, revision, value) is not None:
                return point


def fenced_error(pchannel: str, mine: Owner, current: Owner | None) -> FencedError:
    """The error of a writer ``mine`` that finds ``current`` owning the log."""
    if current is None:
        return FencedError(
            f"pchannel {pchannel!r}: the owner record disappeared; this writer (term "
            f"{mine.term}) stops, reopen the WAL"
        )
    if current.term > mine.term:
        return FencedError(
            f"pchannel {pchannel!r}: this writer (term {mine.term}) was fenced by term "
            f"{current.term}; close it, the pchannel now belongs to the newer term"
        )
    return FencedError(
        f"pchannel {pchannel!r}: this writer (term {mine.term}) was superseded by another "
        f"read-write open at term {current.term}; close it"
    )
