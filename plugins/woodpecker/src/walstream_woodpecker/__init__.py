"""walstream-woodpecker: the embedded default WAL backend.

Local mode (default): per pchannel a log of segment files on the local filesystem,
each a run of CRC32-protected blocks written with group commit and ``fdatasync``;
fencing by term with a marker file and ``flock``. Zero-disk mode (``storage="object"``,
``walstream_woodpecker.objectmode``): one immutable object per block in an object
store, metadata by compare-and-swap in a metastore, fencing by conditional creates.
See the package README for layout and guarantees.
"""

from walstream_woodpecker.builder import WoodpeckerBuilder
from walstream_woodpecker.message_id import WoodpeckerMessageID
from walstream_woodpecker.opener import WoodpeckerOpener
from walstream_woodpecker.settings import WoodpeckerSettings
from walstream_woodpecker.wal import WoodpeckerWAL

__all__ = [
    "WoodpeckerBuilder",
    "WoodpeckerMessageID",
    "WoodpeckerOpener",
    "WoodpeckerSettings",
    "WoodpeckerWAL",
]
