"""walstream-objectstore: object-store drivers for walstream on obstore.

Drivers (entry-point group ``walstream.objectstore``):

- ``local``: files under a root directory (``walstream_objectstore.local``);
- ``memory``: process memory, shared by name (``walstream_objectstore.memory``);
- ``s3``: AWS S3 and S3-compatible servers (``walstream_objectstore.s3``);
- ``gcs``: Google Cloud Storage (``walstream_objectstore.gcs``);
- ``azure``: Azure Blob Storage (``walstream_objectstore.azure``).

Open them through the core registry (``walstream.objectstore.open_store``), not
by importing this package.
"""
