"""walstream: a durable, ordered, replayable WAL service with pluggable backends.

Importing this package needs no plugin, no pytest and no server.
"""

from walstream.plugins import PLUGIN_API_VERSION

__version__ = "0.1.0"

__all__ = ["PLUGIN_API_VERSION", "__version__"]
