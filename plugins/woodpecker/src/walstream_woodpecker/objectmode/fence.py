"""Taking a log over at a read-write open: claim, fence, complete, start a segment.

1. Claim the owner record by CAS (a lower term is refused; the same term supersedes).
2. Read the segment records, then check the owner record is still ours: a record
   written by a newer owner (higher term, or same term and higher open generation)
   means this open was overtaken while it ran, and it stops with ``FencedError``
   before touching anything (a lower term must never fence a higher one).
3. For every active segment: list its objects, take the contiguous prefix of block
   objects ``0..N-1`` and put a fence object at ``N`` with ``put_if_absent``. If ``N``
   is taken meanwhile (the old writer's block landed first), ``0..N`` is now the
   prefix: try ``N + 1`` at once, and so on, until the fence lands or the upload retry
   deadline passes (the old writer also stops on its own within about one flush cycle,
   when it sees the owner record changed). A fence already at ``N`` (an earlier open
   that died half-way) is reused. The old writer's next upload of ``N`` then meets the
   fence and it stops; anything it stores beyond ``N`` is never read, because readers
   stop at the first gap or fence.
4. Write the footer from the prefix's block headers and CAS the record to completed.
5. Create segment ``own last + 1`` with create-if-absent, and check the owner record
   once more before handing out a writer. If the create conflicts, a writer that still
   thought it owned the log started it: go round again (it gets fenced too). Running
   out of rounds is a ``WALError`` (retry the open), never ``FencedError``: only a
   newer owner fences.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time

from walstream.errors import FencedError, ObjectAlreadyExistsError, WALError

from walstream_woodpecker.objectmode.block_object import (
    BLOCK_HEADER_SIZE,
    BlockInfo,
    CorruptObjectError,
    Fence,
    decode_block_header,
    decode_fence,
    decode_footer,
    encode_fence,
)
from walstream_woodpecker.objectmode.completion import complete_segment
from walstream_woodpecker.objectmode.context import LogContext
from walstream_woodpecker.objectmode.meta import Owner, SegmentMeta
from walstream_woodpecker.objectmode.prefix import (
    contiguous_prefix,
    listing_sizes,
    short_object_error,
)

log = logging.getLogger(__name__)

TAKEOVER_ATTEMPTS = 10
_HEADER_READS = 16  # header reads in flight while recovering a segment


async def take_over(ctx: LogContext, term: int) -> tuple[Owner, SegmentMeta]:
    """Become the writer at ``term``: the owner record and the new, active segment."""
    owner = await ctx.meta.claim(term)
    for _ in range(TAKEOVER_ATTEMPTS):
        segments = await ctx.meta.segments()
        # The records just read belong to our view only if we still own the log now.
        await ctx.meta.check_owner(owner)
        for seg in segments:
            _refuse_newer(ctx, seg, owner)
        for seg in segments:
            if not seg.completed:
                await fence_and_complete(ctx, seg, owner)
        truncated, _ = await ctx.meta.truncation()
        new = segments[-1].segment + 1 if segments else 0
        if truncated is not None:
            new = max(new, truncated.segment + 1)
        created = await ctx.meta.create_segment(new, owner)
        if created is not None:
            # Overtaken between the check above and the create: the newer owner fences
            # the segment just created (it is active and ours, an older claim).
            await ctx.meta.check_owner(owner)
            return owner, created
        log.info(
            "pchannel %r: segment %d appeared during the take-over; fencing again",
            ctx.pchannel,
            new,
        )
    raise WALError(
        f"pchannel {ctx.pchannel!r}: could not start a new segment after {TAKEOVER_ATTEMPTS} "
        f"attempts at term {term}; another writer kept creating segments (retry the open)"
    )


def _refuse_newer(ctx: LogContext, seg: SegmentMeta, owner: Owner) -> None:
    if seg.newer_than(owner):
        raise FencedError(
            f"pchannel {ctx.pchannel!r}: segment {seg.segment} was written by term "
            f"{seg.term} (open {seg.generation}), newer than this open at term "
            f"{owner.term} (open {owner.generation}); the pchannel belongs to the newer "
            f"owner, this open stops"
        )


async def fence_and_complete(ctx: LogContext, seg: SegmentMeta, owner: Owner) -> None:
    """Fence active segment ``seg`` at the end of its block prefix and complete it."""
    _refuse_newer(ctx, seg, owner)
    number = seg.segment
    fence = encode_fence(owner.term, owner.generation)
    deadline = ctx.deadline()
    listing = await ctx.io(functools.partial(ctx.store.list, ctx.layout.segment_prefix(number)))
    sizes, footer = listing_sizes(ctx, number, listing)
    if footer:
        # Its writer got as far as the footer (every block stored) but not the CAS.
        footer_key = ctx.layout.footer_key(number)
        raw = await ctx.io(functools.partial(ctx.store.get, footer_key))
        done = decode_footer(footer_key, raw, number)
        await complete_segment(ctx, seg, owner, done.blocks)
        return
    prefix, found = await contiguous_prefix(ctx, number, sizes)
    lost = 0
    while found is None:
        found, size = await _put_fence(ctx, number, prefix, fence, owner)
        if found is not None:
            break
        # The old writer's block landed at `prefix` first: 0..prefix is contiguous now.
        sizes[prefix] = size
        lost += 1
        if time.monotonic() >= deadline:
            raise WALError(
                f"pchannel {ctx.pchannel!r}: could not fence segment {number} within "
                f"{ctx.settings.object_upload_retry_deadline_s:g}s "
                f"(object_upload_retry_deadline_s); its writer kept adding blocks (reached "
                f"block {prefix}); retry the open"
            )
        prefix, found = await contiguous_prefix(ctx, number, sizes, prefix + 1)
    if (found.term, found.generation) > (owner.term, owner.generation):
        raise FencedError(
            f"pchannel {ctx.pchannel!r}: segment {number} is already fenced by term "
            f"{found.term} (open {found.generation}), newer than this open at term "
            f"{owner.term} (open {owner.generation}); this open stops"
        )
    blocks = await _read_headers(ctx, number, prefix, sizes)
    await complete_segment(ctx, seg, owner, blocks)
    log.info(
        "pchannel %r: fenced segment %d at block %d (%d entries, %d races lost) for term %d",
        ctx.pchannel,
        number,
        prefix,
        blocks[-1].next_entry if blocks else 0,
        lost,
        owner.term,
    )


async def _put_fence(
    ctx: LogContext, segment: int, block: int, fence: bytes, owner: Owner
) -> tuple[Fence | None, int]:
    """Put the fence at ``block``: ``(the fence there, 0)``, or ``(None, size)`` if a
    block object of ``size`` bytes got there first. A damaged object is corrupt."""
    key = ctx.layout.block_key(segment, block)

    async def once() -> tuple[Fence | None, int]:
        try:
            await ctx.store.put_if_absent(key, fence)
            return Fence(owner.term, owner.generation), 0
        except ObjectAlreadyExistsError:
            pass
        existing = await ctx.store.get(key)
        # Ours from an attempt whose answer was lost, or another opener's: either fences.
        found = decode_fence(existing)
        if found is not None:
            return found, 0
        if len(existing) < BLOCK_HEADER_SIZE:
            raise short_object_error(key, existing)
        return None, len(existing)

    return await ctx.io(once)


async def _read_headers(
    ctx: LogContext, segment: int, count: int, sizes: dict[int, int]
) -> list[BlockInfo]:
    """The headers of blocks ``0..count-1``, checked to continue one another."""
    slots = asyncio.Semaphore(_HEADER_READS)

    async def one(block: int) -> BlockInfo:
        key = ctx.layout.block_key(segment, block)
        async with slots:
            raw = await ctx.io(lambda: ctx.store.get_range(key, 0, BLOCK_HEADER_SIZE))
        return decode_block_header(key, raw, sizes[block])

    blocks = list(await asyncio.gather(*(one(b) for b in range(count))))
    expect = 0
    for number, info in enumerate(blocks):
        key = ctx.layout.block_key(segment, number)
        if (info.segment, info.block, info.first_entry) != (segment, number, expect):
            raise CorruptObjectError(
                f"block object {key!r} says segment {info.segment} block {info.block} first "
                f"entry {info.first_entry}; expected segment {segment} block {number} first "
                f"entry {expect}"
            )
        expect = info.next_entry
    return blocks
