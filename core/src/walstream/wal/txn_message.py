"""The committed-transaction composite a reader receives.

A transaction is stored in the log as separate messages: BeginTxn, its body
(Insert/Delete) and CommitTxn. Readers must see it all at once at the commit's
timetick, so the read side folds it into one ``TXN`` message. Like Milvus's
``ImmutableTxnMessage`` it exists only on the read side: it is never appended to
a backend nor stored in the write-ahead buffer.

It is a subclass of :class:`ImmutableMessage` (not a wrapper) so that every
consumer of immutable messages — filters, reorder, pending queues, handlers —
takes it unchanged: its type is ``TXN``, its position (message id, timetick,
last-confirmed id) is the commit's, its vchannel the transaction's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from walstream.errors import MessageError
from walstream.message import ImmutableMessage, MessageType
from walstream.message import properties as P
from walstream.message.headers import encode_proto
from walstream.proto import messages_pb2 as pb

__all__ = ["TXN_BODY_TYPES", "ImmutableTxnMessage"]

TXN_BODY_TYPES = frozenset({MessageType.INSERT, MessageType.DELETE})
"""The types a transaction body may hold (single-vchannel DML only)."""

# Properties of the commit that describe the composite's position and origin.
_POSITION_PROPERTIES = (
    P.TIMETICK,
    P.LAST_CONFIRMED,
    P.LAST_CONFIRMED_USE_SELF,
    P.TXN_CONTEXT,
    P.WAL_TERM,
)
_TXN_HEADER = encode_proto(pb.TxnMessageHeader())


def _txn_id(message: ImmutableMessage, role: str) -> int:
    ctx = message.txn_context
    if ctx is None:
        raise MessageError(f"{role} {message!r} of a transaction carries no txn context")
    return ctx.txn_id


def _at_commit(message: ImmutableMessage, commit: ImmutableMessage) -> ImmutableMessage:
    """A copy of a body message stamped with the commit's timetick and last-confirmed id.

    Why: the rows of a transaction become visible at the commit, so a consumer
    that indexes by timetick (MVCC, delegator) must see the commit's timetick on
    every body message, as Milvus does. The message keeps its own id.
    """
    props = dict(message.properties)
    props[P.TIMETICK] = str(commit.timetick)
    props.pop(P.LAST_CONFIRMED_USE_SELF, None)
    props.pop(P.LAST_CONFIRMED, None)
    last_confirmed = commit.last_confirmed_message_id
    if last_confirmed is not None:
        # "use self" on the commit means the commit's id, not the body's: write it out.
        props[P.LAST_CONFIRMED] = last_confirmed.to_property()
    return ImmutableMessage(message.payload, props, message.message_id)


class ImmutableTxnMessage(ImmutableMessage):
    """A committed transaction delivered as one message of type ``TXN``.

    - ``message_id``, ``timetick``, ``last_confirmed_message_id``, ``txn_context`` and
      ``wal_term`` are the commit's; ``vchannel`` is the transaction's.
    - ``body`` holds the Insert/Delete messages in timetick order, each re-stamped
      with the commit's timetick (their ids unchanged); ``begin`` and ``commit``
      are the original control messages.
    - ``size`` is the sum of the sizes of begin, body and commit as stored.
    - ``payload`` is empty (an empty ``TxnMessageBody``), as in Milvus: the content
      lives in ``body``.
    - ``is_persisted`` stays true: each part is durable in the log (and a scanner
      that only drops not-persisted TimeTicks must deliver it); the composite
      itself is never written anywhere.
    """

    __slots__ = ("_begin", "_body", "_commit", "_total_size", "_txn_id")

    def __init__(
        self,
        begin: ImmutableMessage,
        body: Iterable[ImmutableMessage],
        commit: ImmutableMessage,
    ) -> None:
        """Assemble a committed transaction; raise ``MessageError`` if the parts do not fit.

        The parts must be a BeginTxn, body messages of types in ``TXN_BODY_TYPES``
        and a CommitTxn, all with the same txn id and vchannel, with no body
        message after the commit's timetick.
        """
        parts = list(body)
        if begin.message_type is not MessageType.BEGIN_TXN:
            raise MessageError(f"a transaction starts with a BeginTxn, got {begin!r}")
        if commit.message_type is not MessageType.COMMIT_TXN:
            raise MessageError(f"a transaction ends with a CommitTxn, got {commit!r}")
        txn_id = _txn_id(begin, "begin")
        if _txn_id(commit, "commit") != txn_id:
            raise MessageError(
                f"commit of txn {_txn_id(commit, 'commit')} cannot close txn {txn_id}"
            )
        vchannel = begin.vchannel
        if commit.vchannel != vchannel:
            raise MessageError(
                f"txn {txn_id} began on vchannel {vchannel!r} but commits on {commit.vchannel!r}"
            )
        commit_tt = commit.timetick
        for msg in parts:
            if msg.message_type not in TXN_BODY_TYPES:
                raise MessageError(
                    f"txn {txn_id}: a transaction body holds Insert/Delete only, got {msg!r}"
                )
            if _txn_id(msg, "body message") != txn_id:
                raise MessageError(f"txn {txn_id}: body message {msg!r} belongs to another txn")
            if msg.vchannel != vchannel:
                raise MessageError(
                    f"txn {txn_id}: body message on vchannel {msg.vchannel!r}, txn is on {vchannel!r}"
                )
            if msg.timetick > commit_tt:
                raise MessageError(
                    f"txn {txn_id}: body message at timetick {msg.timetick} after the commit "
                    f"at {commit_tt}"
                )

        commit_props = commit.properties
        props = {
            P.VERSION: str(MessageType.TXN.version),
            P.TYPE: str(int(MessageType.TXN)),
            P.HEADER: _TXN_HEADER,
        }
        if vchannel:
            props[P.VCHANNEL] = vchannel
        for key in _POSITION_PROPERTIES:
            if key in commit_props:
                props[key] = commit_props[key]
        super().__init__(b"", props, commit.message_id)
        self._begin = begin
        self._commit = commit
        self._txn_id = txn_id
        self._body = tuple(_at_commit(m, commit) for m in parts)
        self._total_size = begin.size + commit.size + sum(m.size for m in parts)

    @property
    def begin(self) -> ImmutableMessage:
        """The BeginTxn message as stored."""
        return self._begin

    @property
    def commit(self) -> ImmutableMessage:
        """The CommitTxn message as stored."""
        return self._commit

    @property
    def body(self) -> tuple[ImmutableMessage, ...]:
        """The Insert/Delete messages in timetick order, stamped with the commit's timetick."""
        return self._body

    @property
    def txn_id(self) -> int:
        """The transaction id."""
        return self._txn_id

    @property
    def size(self) -> int:
        """Sum of the stored sizes of begin, body and commit."""
        return self._total_size

    def __iter__(self) -> Iterator[ImmutableMessage]:
        """Iterate over the body messages (Milvus ``RangeOver``)."""
        return iter(self._body)

    def __repr__(self) -> str:
        return (
            f"ImmutableTxnMessage(txn={self.txn_id}, vchannel={self.vchannel!r}, "
            f"body={len(self._body)}, id={self.message_id!r})"
        )
