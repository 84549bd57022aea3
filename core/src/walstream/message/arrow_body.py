"""Insert and Delete bodies: Arrow IPC stream bytes holding one record batch.

pyarrow is imported on first use so that ``import walstream`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from walstream.errors import MessageDecodeError, MessageError

if TYPE_CHECKING:
    import pyarrow as pa


def encode_batch(batch: pa.RecordBatch | pa.Table) -> bytes:
    """Serialize a record batch (or a one-chunk table) as an Arrow IPC stream."""
    import pyarrow as pa

    if isinstance(batch, pa.Table):
        batch = (
            batch.combine_chunks().to_batches()[0]
            if batch.num_rows
            else pa.RecordBatch.from_pylist([], schema=batch.schema)
        )
    if not isinstance(batch, pa.RecordBatch):
        raise MessageError(
            f"an Insert/Delete body must be a pyarrow RecordBatch, got {type(batch).__name__}"
        )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue().to_pybytes())


def decode_batch(data: bytes) -> pa.RecordBatch:
    """Parse Arrow IPC stream bytes into exactly one record batch."""
    import pyarrow as pa

    try:
        reader = pa.ipc.open_stream(pa.py_buffer(data))
        batches = list(reader)
        if len(batches) != 1:
            raise MessageDecodeError(f"expected one record batch in the body, found {len(batches)}")
        batch = batches[0]
        batch.validate(full=True)
    except MessageDecodeError:
        raise
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise MessageDecodeError(f"body is not a valid Arrow IPC record batch: {exc}") from exc
    return batch
