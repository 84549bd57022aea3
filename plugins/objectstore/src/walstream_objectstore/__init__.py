"""walstream-objectstore: object-store drivers for walstream on obstore.

Drivers (entry-point group ``walstream.objectstore``):

- ``local``: files under a root directory (``walstream_objectstore.local``);
- ``memory``: process memory, shared by name (``walstream_objectstore.memory``).

Open them through the core registry (``walstream.objectstore.open_store``), not
by importing this package.
"""
