"""Ending a segment: its footer object, then its record CASed to completed.

Both the writer (when it rolls or closes) and a new owner (fencing the previous
writer's active segment) end segments this way, possibly racing on one segment; the
footer is written with ``put_if_absent`` and an existing footer with the same block
index counts as done, and a lost CAS is fine if the record now says completed with
the same block count. Anything else means two writers disagree: ``FencedError``.

A footer is written only while the segment's record exists: a writer that rolls late,
after a newer owner completed and truncated its segment, must not leave a footer of a
deleted segment behind (and stops: the record is gone, so is its ownership).
"""

from __future__ import annotations

from collections.abc import Sequence

from walstream.errors import FencedError, ObjectAlreadyExistsError

from walstream_woodpecker.objectmode.block_object import BlockInfo, decode_footer, encode_footer
from walstream_woodpecker.objectmode.context import LogContext
from walstream_woodpecker.objectmode.meta import Owner, SegmentMeta


def _index(blocks: Sequence[BlockInfo]) -> list[tuple[int, int, int, int, int]]:
    return [(b.block, b.first_entry, b.entry_count, b.size, b.payload_crc) for b in blocks]


async def write_footer(
    ctx: LogContext, segment: int, term: int, blocks: Sequence[BlockInfo]
) -> None:
    """Store ``segment``'s footer, or accept an identical one already there.

    ``FencedError`` if the segment's record is gone (truncated by a newer owner)."""
    if await ctx.meta.segment(segment) is None:
        raise FencedError(
            f"pchannel {ctx.pchannel!r}: segment {segment} has no record any more (a newer "
            f"owner truncated it); this writer (term {term}) stops"
        )
    key = ctx.layout.footer_key(segment)
    data = encode_footer(segment, term, blocks)

    async def once() -> None:
        try:
            await ctx.store.put_if_absent(key, data)
            return
        except ObjectAlreadyExistsError:
            pass
        existing = decode_footer(key, await ctx.store.get(key), segment)
        if _index(existing.blocks) != _index(blocks):
            raise FencedError(
                f"pchannel {ctx.pchannel!r}: footer {key!r} already lists "
                f"{existing.block_count} blocks, this writer has {len(blocks)}; another "
                f"writer completed the segment, this one stops"
            )

    await ctx.io(once)


async def complete_segment(
    ctx: LogContext, seg: SegmentMeta, owner: Owner, blocks: Sequence[BlockInfo]
) -> None:
    """Footer, then the record to completed (CAS on ``seg.revision``)."""
    await write_footer(ctx, seg.segment, owner.term, blocks)
    last = blocks[-1].next_entry - 1 if blocks else -1
    if await ctx.meta.complete_segment(seg, owner, last, len(blocks)):
        return
    now = await ctx.meta.segment(seg.segment)
    if now is not None and now.completed and now.block_count == len(blocks):
        return  # someone else completed it the same way
    raise FencedError(
        f"pchannel {ctx.pchannel!r}: the record of segment {seg.segment} changed under this "
        f"writer (term {owner.term}); another writer took the pchannel over, this one stops"
    )
