"""The last-confirmed message id every appended message carries.

Guarantee: a reader that starts at the last-confirmed id ``L`` stamped on a
message ``M`` sees every message whose timetick is greater than ``M``'s, and
every part (begin and body) of every transaction that commits at such a
timetick, so it can assemble it.

How the id is found. Every successfully acknowledged message is pushed into a
min-heap ordered by message id, with its *end timestamp*: the last timetick the
ack manager had allocated when the message was acknowledged. The head of the
heap is popped, and ``L`` becomes its id, only when

1. its end timestamp is below the confirmed watermark (every allocated timetick
   up to the watermark is acknowledged). Any message with a smaller id was
   written before the head's append returned, so it was allocated before the
   head was acknowledged, so its timetick is at most the head's end timestamp,
   below the watermark: it is already acknowledged and therefore already in the
   heap (or popped). Nothing with a smaller id can enter any more;
2. it is not part of a transaction, or that transaction is resolved (committed,
   rolled back, expired or aborted): no commit can be allocated for it any more,
   so no later message needs it.

Popping in id order then means every id below ``L`` has been popped: each was
allocated before ``L`` was computed and is not needed by a later transaction,
so a message allocated afterwards (with a larger timetick) can safely be read
from ``L`` on.

Why ``L`` is the last popped id and not the smallest id still in the heap: a
message with a smaller id than the heap's head may still be in flight (its
append returned but it is not acknowledged yet, or the head's end timestamp is
not below the watermark). If it is a transaction body whose commit comes later,
starting at the head would lose it. The last popped id is always safe; reading
it again costs one message that the reader's timetick filter drops.

Why every ack enters the heap at once (Milvus adds only confirmed ones): it
makes condition 1 above self-contained. Adding only confirmed messages is also
safe, but only because a transaction's BeginTxn is acknowledged before any of
its bodies is allocated, so the begin (smaller id, unresolved) blocks the pop;
here the guarantee does not depend on that protocol.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from typing import Protocol

from walstream.message import MessageID

__all__ = ["LastConfirmedManager", "TxnResolution"]

log = logging.getLogger(__name__)


class TxnResolution(Protocol):
    """What the manager needs of a transaction: whether it can still commit."""

    @property
    def resolved(self) -> bool:
        """True once committed, rolled back, expired or aborted (it never flips back)."""
        ...


class LastConfirmedManager:
    """Tracks acknowledged messages by id and answers the last-confirmed id (see module docs).

    Single event loop; every method is synchronous so no await can split a
    check from the change it guards.
    """

    __slots__ = ("_heap", "_last", "_last_key", "_seq")

    def __init__(self, initial: MessageID) -> None:
        """Start at ``initial``: the id of the WAL's first TimeTick (written when it opened)."""
        self._last = initial
        # Ids of one WAL compare by their sort keys: plain tuples, cheaper than MessageID's
        # own comparisons on this per-message path.
        self._last_key = initial.sort_key()
        # (sort key, seq, end timestamp, id, txn); seq breaks ties without comparing txns.
        self._heap: list[tuple[tuple[int, ...], int, int, MessageID, TxnResolution | None]] = []
        self._seq = itertools.count()

    @property
    def message_id(self) -> MessageID:
        """The last popped id (as of the last :meth:`advance`)."""
        return self._last

    def push(self, message_id: MessageID, end_timestamp: int, txn: TxnResolution | None) -> None:
        """Record an acknowledged message; ``txn`` is its transaction, if it belongs to one."""
        key = message_id.sort_key()
        if key < self._last_key:
            # Only a backend handing out ids out of append order can do this; the
            # id is still tracked, and ``message_id`` never goes backwards.
            log.warning(
                "acknowledged message id %r is below the last-confirmed id %r; "
                "the backend returned ids out of append order",
                message_id,
                self._last,
            )
        heapq.heappush(self._heap, (key, next(self._seq), end_timestamp, message_id, txn))

    def advance(self, watermark: int) -> MessageID:
        """Pop every head that is safe at confirmed watermark ``watermark``; return the id."""
        heap = self._heap
        while heap:
            key, _, end, mid, txn = heap[0]
            if end >= watermark or (txn is not None and not txn.resolved):
                break
            heapq.heappop(heap)
            if key > self._last_key:
                self._last, self._last_key = mid, key
        return self._last

    def __len__(self) -> int:
        """Acknowledged messages not popped yet."""
        return len(self._heap)
