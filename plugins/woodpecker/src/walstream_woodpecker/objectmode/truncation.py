"""Deleting a segment wholly behind the truncation point, without unfencing its writer.

A fenced writer learns that it was fenced only when an upload meets the fence object
at the first block number it had not stored. Deleting that fence would let its next
upload land in a deleted segment and be acknowledged, and no reader would ever see it.
So the object at the segment's ``block_count`` is never deleted: a fence object stays
there for good (28 bytes per truncated segment). A segment its own writer completed
(on a roll or close) has no fence there; one is put first, so a writer that somehow
still thinks it owns the segment stops as well.

Only completed segments are deleted (an active one may still have a live writer; the
next owner fences and completes it). Its record is deleted last, after its objects:
blocks ``0..block_count-1``, the footer, and blocks beyond the fence (uploads of the
fenced writer that landed past it; never acknowledged, since the fenced block fails
first and acknowledgements are in order).
"""

from __future__ import annotations

import functools
import logging

from walstream.errors import ObjectAlreadyExistsError

from walstream_woodpecker.objectmode.block_object import decode_fence, encode_fence
from walstream_woodpecker.objectmode.context import LogContext
from walstream_woodpecker.objectmode.meta import Owner, SegmentMeta

log = logging.getLogger(__name__)


async def _keep_fence(ctx: LogContext, seg: SegmentMeta, owner: Owner) -> bool:
    """Make sure a fence object sits at ``seg.block_count``; False if something else does."""
    key = ctx.layout.block_key(seg.segment, seg.block_count)
    fence = encode_fence(owner.term, owner.generation)

    async def once() -> bool:
        try:
            await ctx.store.put_if_absent(key, fence)
            return True
        except ObjectAlreadyExistsError:
            pass
        return decode_fence(await ctx.store.get(key)) is not None

    return await ctx.io(once)


async def delete_truncated_segment(ctx: LogContext, seg: SegmentMeta, owner: Owner) -> None:
    """Delete ``seg``'s objects except the fence at its end, then its record."""
    if not seg.completed:
        log.warning(
            "pchannel %r: segment %d is behind the truncation point but still active; "
            "left alone until an owner completes it",
            ctx.pchannel,
            seg.segment,
        )
        return
    fenced = await _keep_fence(ctx, seg, owner)
    if not fenced:
        log.warning(
            "pchannel %r: completed segment %d (%d blocks) holds an object that is no fence "
            "at block %d; keeping it and everything after it",
            ctx.pchannel,
            seg.segment,
            seg.block_count,
            seg.block_count,
        )
    listing = await ctx.io(
        functools.partial(ctx.store.list, ctx.layout.segment_prefix(seg.segment))
    )
    for obj in listing:
        number = ctx.layout.block_number(obj.key, seg.segment)
        if number is None:
            if obj.key != ctx.layout.footer_key(seg.segment):
                continue  # not ours to judge
        elif number == seg.block_count or (number > seg.block_count and not fenced):
            continue  # the fence stays for good
        await ctx.io(functools.partial(ctx.store.delete, obj.key))
    await ctx.meta.delete_segment(seg.segment)
