"""Where a pchannel's files live.

::

    <root>/<pchannel>/
        LOCK                       flock target: exclusive to fence, shared to flush
        FENCE                      highest read-write term and its open generation
        TRUNCATE                   truncation point (segment, entry)
        00000000000000000000.seg   segment files, numbered 0, 1, 2, ... without gaps
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_SEGMENT_NAME = re.compile(r"^(\d{20})\.seg$")


@dataclass(frozen=True, slots=True)
class ChannelLayout:
    """Paths of one pchannel's directory."""

    directory: Path

    @property
    def lock_path(self) -> Path:
        """The lock file (its content is never used)."""
        return self.directory / "LOCK"

    @property
    def fence_path(self) -> Path:
        """The fence marker."""
        return self.directory / "FENCE"

    @property
    def truncation_path(self) -> Path:
        """The persisted truncation point."""
        return self.directory / "TRUNCATE"

    def segment_path(self, segment: int) -> Path:
        """The file of segment number ``segment``."""
        return self.directory / f"{segment:020d}.seg"

    def segment_exists(self, segment: int) -> bool:
        """Whether segment ``segment`` has been created (and not deleted)."""
        return self.segment_path(segment).exists()

    def list_segments(self) -> list[int]:
        """Numbers of the existing segments, ascending."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            match = _SEGMENT_NAME.match(name)
            if match:
                found.append(int(match.group(1)))
        found.sort()
        return found

    def key(self) -> str:
        """Identity of this pchannel in this process: the directory's real path."""
        return os.path.realpath(self.directory)
