"""The contiguous prefix of an active segment's block objects, as a listing shows it.

Blocks ``0..N-1`` are the prefix when ``N`` is missing or holds a fence object. The
size tells a block from a fence only one way: an object of a block's size or more is
no fence, but an object shorter than a block header may be a fence *or a damaged
block*. Such an object is read and must decode as a fence; otherwise it is reported as
corrupt, naming its key (taking it for a fence would silently drop the acknowledged
blocks after it).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from walstream.objectstore import ObjectMeta

from walstream_woodpecker.objectmode.block_object import (
    BLOCK_HEADER_SIZE,
    CorruptObjectError,
    Fence,
    decode_fence,
    is_fence_size,
)
from walstream_woodpecker.objectmode.context import LogContext


def listing_sizes(
    ctx: LogContext, segment: int, listing: Iterable[ObjectMeta]
) -> tuple[dict[int, int], bool]:
    """``{block number: object size}`` of ``segment``'s listing, and whether a footer exists."""
    sizes: dict[int, int] = {}
    footer = False
    footer_key = ctx.layout.footer_key(segment)
    for obj in listing:
        block = ctx.layout.block_number(obj.key, segment)
        if block is not None:
            sizes[block] = obj.size
        elif obj.key == footer_key:
            footer = True
    return sizes, footer


def short_object_error(key: str, raw: bytes) -> CorruptObjectError:
    """The error of an object at a block key that is neither a fence nor a whole block."""
    return CorruptObjectError(
        f"object {key!r}: {len(raw)} bytes, neither a valid fence object nor a block "
        f"(a block header alone is {BLOCK_HEADER_SIZE} bytes); the object is damaged"
    )


async def read_fence(ctx: LogContext, segment: int, block: int) -> Fence:
    """The fence at ``block``, an object known to be fence-sized; corrupt otherwise."""
    key = ctx.layout.block_key(segment, block)
    raw = await ctx.io(functools.partial(ctx.store.get, key))
    fence = decode_fence(raw)
    if fence is None:
        raise short_object_error(key, raw)
    return fence


async def contiguous_prefix(
    ctx: LogContext, segment: int, sizes: dict[int, int], start: int = 0
) -> tuple[int, Fence | None]:
    """``(N, fence)``: blocks ``start..N-1`` exist, ``N`` is missing (fence None) or
    holds ``fence``. A short object that is not a valid fence is ``CorruptObjectError``."""
    number = start
    while number in sizes:
        if is_fence_size(sizes[number]):
            return number, await read_fence(ctx, segment, number)
        number += 1
    return number, None
