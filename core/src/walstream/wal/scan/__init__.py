"""The WAL's scanners, in small modules; the public names are re-exported by ``walstream.wal.scanner``.

- :mod:`.filters`: the vchannel and deliver filters.
- :mod:`.pipeline`: the consume side (reorder, transactions, TimeTick delivery, back-pressure).
- :mod:`.source`: the produce side (backend catch-up or write-ahead buffer tailing).
- :mod:`.scanner`: ``WALScanner`` and ``open_scanner``.
"""
