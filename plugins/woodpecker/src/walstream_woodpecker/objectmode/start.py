"""Where an object-mode scanner starts for each deliver policy (as in local mode).

After a truncation, ``DeliverAll`` starts at the truncation point and
``DeliverStartFrom``/``DeliverStartAfter`` ids below it are clamped up to it.
``DeliverLatest`` starts just past the last block of the log's contiguous prefix
(for a writer in this process: past its last acknowledged block).
"""

from __future__ import annotations

from dataclasses import dataclass

from walstream.walimpls import (
    DeliverAll,
    DeliverLatest,
    DeliverPolicy,
    DeliverStartAfter,
    DeliverStartFrom,
)

from walstream_woodpecker.objectmode.block_object import BLOCK_HEADER_SIZE, decode_block_header
from walstream_woodpecker.objectmode.context import LogContext
from walstream_woodpecker.objectmode.prefix import contiguous_prefix, listing_sizes
from walstream_woodpecker.start import as_woodpecker_id

Floor = tuple[int, int]
"""The smallest ``(segment, entry)`` a scanner may deliver."""


@dataclass(frozen=True, slots=True)
class Position:
    """The next block a scanner reads: segment, block number and its first entry."""

    segment: int
    block: int = 0
    entry: int = 0


async def resolve_start(ctx: LogContext, policy: DeliverPolicy) -> tuple[Position, Floor]:
    """The first block to read and the smallest id to deliver."""
    point, _ = await ctx.meta.truncation()
    retained: Floor = point.sort_key() if point is not None else (0, 0)
    if isinstance(policy, DeliverAll):
        if point is not None:
            return Position(point.segment), retained
        segments = await ctx.meta.segments()
        first = segments[0].segment if segments else 0
        return Position(first), (first, 0)
    if isinstance(policy, DeliverStartFrom):
        wanted = as_woodpecker_id(policy.message_id, "DeliverStartFrom").sort_key()
        floor = max(wanted, retained)
        return Position(floor[0]), floor
    if isinstance(policy, DeliverStartAfter):
        after = as_woodpecker_id(policy.message_id, "DeliverStartAfter")
        floor = max((after.segment, after.entry + 1), retained)
        return Position(floor[0]), floor
    if isinstance(policy, DeliverLatest):
        return await _end_of_log(ctx)
    raise TypeError(f"unknown deliver policy {policy!r}")


async def _end_of_log(ctx: LogContext) -> tuple[Position, Floor]:
    segments = await ctx.meta.segments()
    if not segments:
        return Position(0), (0, 0)
    last = segments[-1]
    if last.completed:
        # Whatever is appended next goes to a later segment.
        return Position(last.segment + 1), (last.segment + 1, 0)
    number = last.segment
    blocks = ctx.hub.limit(number)
    if blocks is None:
        listing = await ctx.io(lambda: ctx.store.list(ctx.layout.segment_prefix(number)))
        sizes, _ = listing_sizes(ctx, number, listing)
        # A short object must be a valid fence; a damaged one is reported, not skipped.
        blocks, _ = await contiguous_prefix(ctx, number, sizes)
    if blocks == 0:
        return Position(number), (number, 0)
    key = ctx.layout.block_key(number, blocks - 1)
    raw = await ctx.io(lambda: ctx.store.get_range(key, 0, BLOCK_HEADER_SIZE))
    entry = decode_block_header(key, raw).next_entry
    return Position(number, blocks, entry), (number, entry)
