"""Recovery of a segment's torn tail.

A writer that died mid-flush can leave a partial block, or a complete block whose
fsync never finished and that was never acknowledged. The valid prefix (see
``block``) holds every acknowledged entry, because acknowledgements go out in
order and only after fsync; everything after it is cut off.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from walstream_woodpecker.block import Cursor, scan_valid_prefix
from walstream_woodpecker.layout import ChannelLayout

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecoveredSegment:
    """What recovery found in a segment."""

    segment: int
    end: Cursor  # just past the last valid block
    dropped_bytes: int  # bytes cut off after it


def recover_segment(layout: ChannelLayout, segment: int) -> RecoveredSegment:
    """Truncate ``segment`` after its last valid block and make that durable."""
    path = layout.segment_path(segment)
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        end, stop = scan_valid_prefix(fd, Cursor(segment))
        size = os.fstat(fd).st_size
        dropped = size - end.offset
        if dropped > 0:
            log.warning(
                "woodpecker recovery: %s: keeping %d blocks (%d entries, %d bytes), "
                "cutting %d bytes after them (%s%s)",
                path,
                end.block_no,
                end.entry,
                end.offset,
                dropped,
                stop.status.value,
                f": {stop.reason}" if stop.reason else "",
            )
            os.ftruncate(fd, end.offset)
            os.fsync(fd)
        return RecoveredSegment(segment, end, max(dropped, 0))
    finally:
        os.close(fd)
