"""Where a scanner starts for each deliver policy.

After a truncation, ``DeliverAll`` starts at the truncation point, and
``DeliverStartFrom``/``DeliverStartAfter`` ids below it are clamped up to it: the
entries before it may already be deleted, and delivering some but not all of them
would be worse than delivering none.
"""

from __future__ import annotations

import os

from walstream.errors import MessageIDMismatchError
from walstream.message import MessageID
from walstream.walimpls import (
    DeliverAll,
    DeliverLatest,
    DeliverPolicy,
    DeliverStartAfter,
    DeliverStartFrom,
)

from walstream_woodpecker.block import Cursor, scan_valid_prefix
from walstream_woodpecker.hub import ChannelHub
from walstream_woodpecker.layout import ChannelLayout
from walstream_woodpecker.message_id import WoodpeckerMessageID
from walstream_woodpecker.scanner import Floor
from walstream_woodpecker.truncation import read_truncation_point


def as_woodpecker_id(message_id: MessageID, what: str) -> WoodpeckerMessageID:
    """``message_id`` if it is a woodpecker id, else a clear error."""
    if not isinstance(message_id, WoodpeckerMessageID):
        raise MessageIDMismatchError(
            f"{what} needs a woodpecker message id, got a "
            f"{getattr(message_id, 'wal_name', type(message_id).__name__)!r} one"
        )
    return message_id


def resolve_start(
    layout: ChannelLayout, hub: ChannelHub, policy: DeliverPolicy
) -> tuple[Cursor, Floor]:
    """The first cursor to read and the smallest id to deliver (runs in a worker thread)."""
    point = read_truncation_point(layout)
    retained: Floor = point.sort_key() if point is not None else (0, 0)
    if isinstance(policy, DeliverAll):
        if point is not None:
            return Cursor(point.segment), retained
        segments = layout.list_segments()
        first = segments[0] if segments else 0
        return Cursor(first), (first, 0)
    if isinstance(policy, DeliverStartFrom):
        wanted = as_woodpecker_id(policy.message_id, "DeliverStartFrom").sort_key()
        floor = max(wanted, retained)
        return Cursor(floor[0]), floor
    if isinstance(policy, DeliverStartAfter):
        after = as_woodpecker_id(policy.message_id, "DeliverStartAfter")
        floor = max((after.segment, after.entry + 1), retained)
        return Cursor(floor[0]), floor
    if isinstance(policy, DeliverLatest):
        return _end_of_log(layout, hub)
    raise TypeError(f"unknown deliver policy {policy!r}")


def _end_of_log(layout: ChannelLayout, hub: ChannelHub) -> tuple[Cursor, Floor]:
    # The end of the valid (and, for a writer in this process, durable) prefix of the
    # last segment: everything appended later lands after it.
    for _ in range(3):
        segments = layout.list_segments()
        if not segments:
            return Cursor(0), (0, 0)
        last = segments[-1]
        try:
            fd = os.open(layout.segment_path(last), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # raced with a deletion; list again
        try:
            end, _ = scan_valid_prefix(fd, Cursor(last), hub.limit(last))
        finally:
            os.close(fd)
        return end, (end.segment, end.entry)
    return Cursor(0), (0, 0)
