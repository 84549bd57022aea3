"""The persisted truncation point of a pchannel."""

from __future__ import annotations

from walstream_woodpecker.durable import Record
from walstream_woodpecker.layout import ChannelLayout
from walstream_woodpecker.message_id import WoodpeckerMessageID

_RECORD = Record(b"WPTR", "QQ", "truncation point")


def read_truncation_point(layout: ChannelLayout) -> WoodpeckerMessageID | None:
    """The first id still retained, or None if the pchannel was never truncated."""
    values = _RECORD.read(layout.truncation_path)
    if values is None:
        return None
    return WoodpeckerMessageID(values[0], values[1])


def write_truncation_point(layout: ChannelLayout, point: WoodpeckerMessageID) -> None:
    """Persist ``point`` atomically (temp file, fsync, rename, directory fsync)."""
    _RECORD.write(layout.truncation_path, point.segment, point.entry)
