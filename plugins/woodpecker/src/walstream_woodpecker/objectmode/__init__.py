"""Woodpecker's zero-disk mode: block objects in an object store, metadata in a metastore.

One module per idea: ``layout`` (object keys and metastore keys), ``block_object``
(block, fence and footer formats), ``meta`` (the owner, segment and truncation
records, changed only by compare-and-swap), ``storeio`` (bounded retries of object
I/O), ``uploader`` (the exactly-once block put), ``fence`` (taking a pchannel over),
``writer``, ``start`` and ``scanner``, ``wal`` and ``opener``.
"""
