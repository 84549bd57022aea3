"""Exactly-once conditional puts of block, footer and fence objects.

``put_if_absent`` is retried on transient errors; a retry may then meet "already
exists" because an earlier attempt did land (its answer was lost). So on "already
exists" the object is read back: the same bytes mean success; a fence object means
this writer was fenced; anything else means another writer owns the key (also fenced).
"Already exists, then not found" means the object was deleted in between: only a
newer owner deletes objects (truncating segments it completed), so the segment is no
longer this writer's: fenced too, never "put again" (that would store a block past a
fence that truncation removed).
"""

from __future__ import annotations

from walstream.errors import FencedError, ObjectAlreadyExistsError, ObjectNotFoundError
from walstream.objectstore import ObjectStore

from walstream_woodpecker.objectmode.block_object import decode_fence
from walstream_woodpecker.objectmode.storeio import retrying


async def put_exactly(
    store: ObjectStore,
    key: str,
    data: bytes,
    *,
    deadline: float,
    request_timeout: float,
    who: str,
) -> None:
    """Store ``data`` at ``key`` unless something is there; see the module doc.

    ``FencedError`` when a fence or another writer's object holds the key; the last
    transient error when the deadline passes; other store errors as they are."""

    async def once() -> None:
        try:
            await store.put_if_absent(key, data)
            return
        except ObjectAlreadyExistsError:
            pass
        try:
            existing = await store.get(key)
        except ObjectNotFoundError:
            raise FencedError(
                f"{who}: object {key!r} existed, then was deleted (a newer owner truncated "
                f"the segment); this writer was fenced, reopen the WAL"
            ) from None
        if existing == data:
            return  # an earlier attempt landed
        fence = decode_fence(existing)
        if fence is not None:
            raise FencedError(
                f"{who}: object {key!r} holds a fence of term {fence.term} (open "
                f"{fence.generation}); this writer was fenced, reopen the WAL"
            )
        raise FencedError(f"{who}: object {key!r} was written by another writer; this one stops")

    await retrying(once, deadline, request_timeout)
