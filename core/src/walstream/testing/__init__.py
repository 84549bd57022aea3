"""Contract suites for plugin authors: subclass, override one fixture, run pytest.

Importing this module needs pytest and hypothesis (``pip install walstream[testing]``);
``import walstream`` never does.
"""

from walstream.testing.objectstore_contract import ObjectStoreContract, ObjectStoreSpec
from walstream.testing.spec import WALBackendSpec, run
from walstream.testing.wal_contract import WALBackendContract

__all__ = ["ObjectStoreContract", "ObjectStoreSpec", "WALBackendContract", "WALBackendSpec", "run"]
