"""Names: the object keys of a pchannel's log and its records in the metastore.

Objects (every number zero-padded, so keys sort in numeric order)::

    <log>/<segment:020d>/<block:012d>.blk   one block of entries, or a fence object
    <log>/<segment:020d>/footer.blk         the block index of a completed segment

Metastore keys (``<p>`` is ``metastore_prefix``)::

    <p>/logs/<log>/owner                    term and open generation of the owner
    <p>/logs/<log>/segments/<segment:020d>  state, writer term, last entry, block count
    <p>/logs/<log>/truncation               the truncation point

``<log>`` is the pchannel name made a safe key segment: every byte outside
``[A-Za-z0-9_-]`` is percent-encoded (dots too, so ``.`` and ``..`` cannot occur, and
``%`` itself, so the mapping is one-to-one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from walstream.errors import InvalidPChannelError

BLOCK_DIGITS = 12
SEGMENT_DIGITS = 20
FOOTER_NAME = "footer.blk"
_BLOCK_NAME = re.compile(rf"^(\d{{{BLOCK_DIGITS}}})\.blk$")
_MAX_LOG_BYTES = 600  # leaves room for the rest of a key under the 1024-byte limit


def log_segment(pchannel: str) -> str:
    """``pchannel`` escaped into one safe key segment."""
    if not pchannel:
        raise InvalidPChannelError("a pchannel name must not be empty")
    escaped = quote(pchannel, safe="-_").replace(".", "%2E")
    if len(escaped) > _MAX_LOG_BYTES:
        raise InvalidPChannelError(
            f"pchannel name {pchannel[:40]!r}... is too long for an object key "
            f"({len(escaped)} bytes escaped, at most {_MAX_LOG_BYTES})"
        )
    return escaped


@dataclass(frozen=True, slots=True)
class LogLayout:
    """Object keys and metastore keys of one pchannel."""

    log: str  # the escaped pchannel name
    meta_prefix: str

    @classmethod
    def of(cls, pchannel: str, meta_prefix: str) -> LogLayout:
        """The layout of ``pchannel`` with records under ``meta_prefix``."""
        return cls(log_segment(pchannel), meta_prefix)

    # --- objects ---------------------------------------------------------------------

    def segment_prefix(self, segment: int) -> str:
        """The prefix listing every object of ``segment``."""
        return f"{self.log}/{segment:0{SEGMENT_DIGITS}d}/"

    def block_key(self, segment: int, block: int) -> str:
        """Key of block ``block`` of ``segment`` (or of the fence object placed there)."""
        return f"{self.segment_prefix(segment)}{block:0{BLOCK_DIGITS}d}.blk"

    def footer_key(self, segment: int) -> str:
        """Key of ``segment``'s footer."""
        return f"{self.segment_prefix(segment)}{FOOTER_NAME}"

    def block_number(self, key: str, segment: int) -> int | None:
        """The block number of ``key`` if it names a block object of ``segment``."""
        prefix = self.segment_prefix(segment)
        if not key.startswith(prefix):
            return None
        match = _BLOCK_NAME.match(key[len(prefix) :])
        return int(match.group(1)) if match else None

    # --- metastore -----------------------------------------------------------------------

    @property
    def _meta_root(self) -> str:
        return f"{self.meta_prefix}/logs/{self.log}"

    @property
    def owner_key(self) -> str:
        """The owner record."""
        return f"{self._meta_root}/owner"

    @property
    def truncation_key(self) -> str:
        """The truncation record."""
        return f"{self._meta_root}/truncation"

    @property
    def segments_prefix(self) -> str:
        """Prefix of every segment record."""
        return f"{self._meta_root}/segments/"

    def segment_key(self, segment: int) -> str:
        """The record of ``segment``."""
        return f"{self.segments_prefix}{segment:0{SEGMENT_DIGITS}d}"

    def segment_of_key(self, key: str) -> int:
        """The segment number of a segment record key."""
        return int(key[len(self.segments_prefix) :])

    @property
    def hub_key(self) -> str:
        """What identifies this log among the hubs of this process (with the store URL)."""
        return f"{self.meta_prefix}/{self.log}"
