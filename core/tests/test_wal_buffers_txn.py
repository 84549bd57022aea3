"""The committed-transaction composite and the consume-side transaction buffer."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from walstream.backends.memory import MemoryMessageID
from walstream.errors import MessageError
from walstream.message import ImmutableMessage, MessageID, MessageType, new_message
from walstream.proto import messages_pb2 as pb
from walstream.tso import compose
from walstream.wal import ImmutableTxnMessage, TxnBuffer, expiry_timetick

_ids = itertools.count()


def make(
    mtype: MessageType,
    tt: int,
    *,
    txn: int | None = None,
    keepalive_ms: int = 10_000,
    vchannel: str | None = "v1",
    payload: bytes = b"",
    lc: int | None = None,
) -> ImmutableMessage:
    m = new_message(mtype, vchannel=vchannel, payload=payload).with_timetick(tt)
    if txn is not None:
        m.with_txn_context(pb.TxnContext(txn_id=txn, keepalive_milliseconds=keepalive_ms))
    if lc is not None:
        m.with_last_confirmed(MemoryMessageID(lc))
    return m.into_immutable(MemoryMessageID(next(_ids)))


def tick(tt: int) -> ImmutableMessage:
    return make(MessageType.TIME_TICK, tt, vchannel=None)


def ts(ms: int, logical: int = 0) -> int:
    return compose(ms, logical)


# --- the composite -------------------------------------------------------------------


def test_composite_takes_the_commits_position_and_holds_its_body() -> None:
    begin = make(MessageType.BEGIN_TXN, ts(1), txn=7, lc=1)
    b1 = make(MessageType.INSERT, ts(2), txn=7, payload=b"a" * 10, lc=2)
    b2 = make(MessageType.DELETE, ts(3), txn=7, payload=b"b" * 20)
    commit = (
        new_message(MessageType.COMMIT_TXN, vchannel="v1")
        .with_timetick(ts(4))
        .with_txn_context(pb.TxnContext(txn_id=7, keepalive_milliseconds=10_000))
        .with_last_confirmed(MemoryMessageID(3))
        .with_wal_term(5)
        .into_immutable(MemoryMessageID(100))
    )
    txn = ImmutableTxnMessage(begin, [b1, b2], commit)
    assert isinstance(txn, ImmutableMessage)
    assert txn.message_type is MessageType.TXN
    assert txn.message_id == commit.message_id
    assert txn.timetick == commit.timetick == ts(4)
    assert txn.last_confirmed_message_id == MemoryMessageID(3)
    assert txn.wal_term == 5
    assert txn.vchannel == "v1"
    assert txn.txn_id == 7
    assert txn.txn_context == commit.txn_context
    assert txn.size == begin.size + b1.size + b2.size + commit.size
    assert txn.payload == b""
    assert isinstance(txn.header(), pb.TxnMessageHeader)
    assert txn.is_persisted  # its parts are durable; it is never written itself
    assert txn.begin is begin
    assert txn.commit is commit
    # body in order, own ids and payloads, stamped with the commit's timetick
    assert [m.message_id for m in txn.body] == [b1.message_id, b2.message_id]
    assert [m.payload for m in txn] == [b1.payload, b2.payload]
    assert [m.message_type for m in txn.body] == [MessageType.INSERT, MessageType.DELETE]
    assert all(m.timetick == ts(4) for m in txn.body)
    assert all(m.last_confirmed_message_id == MemoryMessageID(3) for m in txn.body)
    # the stored messages are untouched
    assert b1.timetick == ts(2)
    assert b1.last_confirmed_message_id == MemoryMessageID(2)


def test_commit_using_its_own_id_as_last_confirmed() -> None:
    begin = make(MessageType.BEGIN_TXN, 1, txn=1)
    body = make(MessageType.INSERT, 2, txn=1)
    commit = (
        new_message(MessageType.COMMIT_TXN, vchannel="v1")
        .with_timetick(3)
        .with_txn_context(pb.TxnContext(txn_id=1))
        .with_last_confirmed_use_self()
        .into_immutable(MemoryMessageID(42))
    )
    txn = ImmutableTxnMessage(begin, [body], commit)
    assert txn.last_confirmed_message_id == MemoryMessageID(42)
    # "self" is the commit, not the body message
    assert txn.body[0].last_confirmed_message_id == MemoryMessageID(42)
    assert txn.body[0].message_id == body.message_id


def test_empty_transaction() -> None:
    txn = ImmutableTxnMessage(
        make(MessageType.BEGIN_TXN, 1, txn=1), [], make(MessageType.COMMIT_TXN, 2, txn=1)
    )
    assert txn.body == ()
    assert txn.timetick == 2


@pytest.mark.parametrize(
    "begin, body, commit, match",
    [
        (
            (MessageType.INSERT, 1, 1, "v1"),
            [],
            (MessageType.COMMIT_TXN, 3, 1, "v1"),
            "starts with a BeginTxn",
        ),
        (
            (MessageType.BEGIN_TXN, 1, 1, "v1"),
            [],
            (MessageType.ROLLBACK_TXN, 3, 1, "v1"),
            "ends with a CommitTxn",
        ),
        ((MessageType.BEGIN_TXN, 1, 1, "v1"), [], (MessageType.COMMIT_TXN, 3, 2, "v1"), "txn 2"),
        (
            (MessageType.BEGIN_TXN, 1, 1, "v1"),
            [],
            (MessageType.COMMIT_TXN, 3, 1, "v2"),
            "vchannel",
        ),
        (
            (MessageType.BEGIN_TXN, 1, 1, "v1"),
            [(MessageType.INSERT, 2, 9, "v1")],
            (MessageType.COMMIT_TXN, 3, 1, "v1"),
            "another txn",
        ),
        (
            (MessageType.BEGIN_TXN, 1, 1, "v1"),
            [(MessageType.INSERT, 2, 1, "v2")],
            (MessageType.COMMIT_TXN, 3, 1, "v1"),
            "vchannel",
        ),
        (
            (MessageType.BEGIN_TXN, 1, 1, "v1"),
            [(MessageType.DROP_COLLECTION, 2, 1, "v1")],
            (MessageType.COMMIT_TXN, 3, 1, "v1"),
            "Insert/Delete only",
        ),
        (
            (MessageType.BEGIN_TXN, 1, 1, "v1"),
            [(MessageType.INSERT, 4, 1, "v1")],
            (MessageType.COMMIT_TXN, 3, 1, "v1"),
            "after the commit",
        ),
    ],
)
def test_composite_refuses_parts_that_do_not_fit(
    begin: tuple[MessageType, int, int, str],
    body: list[tuple[MessageType, int, int, str]],
    commit: tuple[MessageType, int, int, str],
    match: str,
) -> None:
    def build(spec: tuple[MessageType, int, int, str]) -> ImmutableMessage:
        mtype, tt, txn, vc = spec
        return make(mtype, tt, txn=txn, vchannel=vc)

    with pytest.raises(MessageError, match=match):
        ImmutableTxnMessage(build(begin), [build(b) for b in body], build(commit))


def test_composite_needs_txn_contexts() -> None:
    with pytest.raises(MessageError, match="no txn context"):
        ImmutableTxnMessage(
            make(MessageType.BEGIN_TXN, 1), [], make(MessageType.COMMIT_TXN, 2, txn=1)
        )


# --- the buffer ------------------------------------------------------------------------


def feed(buf: TxnBuffer, messages: list[ImmutableMessage]) -> list[ImmutableMessage]:
    out = []
    for m in messages:
        r = buf.push(m)
        if r is not None:
            out.append(r)
    return out


def test_commit_emits_one_composite_at_the_commits_place() -> None:
    buf = TxnBuffer()
    a = make(MessageType.INSERT, 10)
    begin = make(MessageType.BEGIN_TXN, 11, txn=1)
    body1 = make(MessageType.INSERT, 12, txn=1, payload=b"1")
    b = make(MessageType.DELETE, 13)
    body2 = make(MessageType.DELETE, 14, txn=1, payload=b"2")
    commit = make(MessageType.COMMIT_TXN, 15, txn=1)
    c = make(MessageType.INSERT, 16)
    out = feed(buf, [a, begin, body1, b, body2, commit, c])
    assert [m.message_type for m in out] == [
        MessageType.INSERT,
        MessageType.DELETE,
        MessageType.TXN,
        MessageType.INSERT,
    ]
    assert out[0] is a and out[1] is b and out[3] is c
    txn = out[2]
    assert isinstance(txn, ImmutableTxnMessage)
    assert txn.message_id == commit.message_id
    assert [m.message_id for m in txn.body] == [body1.message_id, body2.message_id]
    assert txn.begin is begin
    assert buf.committed == 1
    assert len(buf) == 0
    assert buf.bytes == 0


def test_bytes_count_held_messages() -> None:
    buf = TxnBuffer()
    begin = make(MessageType.BEGIN_TXN, 1, txn=1)
    body = make(MessageType.INSERT, 2, txn=1, payload=b"z" * 50)
    feed(buf, [begin, body])
    assert len(buf) == 1
    assert buf.bytes == begin.size + body.size


def test_rollback_delivers_nothing() -> None:
    buf = TxnBuffer()
    out = feed(
        buf,
        [
            make(MessageType.BEGIN_TXN, 1, txn=1),
            make(MessageType.INSERT, 2, txn=1),
            make(MessageType.ROLLBACK_TXN, 3, txn=1),
            make(MessageType.COMMIT_TXN, 4, txn=1),  # too late: the txn is gone
        ],
    )
    assert out == []
    assert buf.rolled_back == 1
    assert buf.committed == 0
    assert buf.dropped == 1
    assert buf.bytes == 0


def test_expired_transaction_is_dropped_by_a_timetick() -> None:
    buf = TxnBuffer()
    begin = make(MessageType.BEGIN_TXN, ts(1000), txn=1, keepalive_ms=100)
    body = make(MessageType.INSERT, ts(1050), txn=1, keepalive_ms=100)
    expiry = expiry_timetick(body.timetick, 100)
    assert expiry == ts(1150)
    t_before = tick(expiry - 1)
    t_at = tick(expiry)
    out = feed(buf, [begin, body, t_before])
    assert out == [t_before]  # TimeTicks pass through
    assert len(buf) == 1, "one logical step before the expiry it is still open"
    out = feed(
        buf,
        [
            t_at,
            make(MessageType.INSERT, ts(1151), txn=1),
            make(MessageType.COMMIT_TXN, ts(1152), txn=1),
        ],
    )
    assert out == [t_at]
    assert buf.expired == 1
    assert buf.dropped == 2
    assert buf.committed == 0
    assert len(buf) == 0
    assert buf.bytes == 0


def test_body_appends_refresh_the_keepalive() -> None:
    buf = TxnBuffer()
    feed(buf, [make(MessageType.BEGIN_TXN, ts(0), txn=1, keepalive_ms=100)])
    feed(buf, [make(MessageType.INSERT, ts(90), txn=1, keepalive_ms=100)])
    assert buf.expire(ts(150)) == 0  # begin + 100 ms has passed, the body's has not
    assert buf.expire(ts(190)) == 1


def test_zero_keepalive_uses_the_default() -> None:
    buf = TxnBuffer(default_keepalive_ms=500)
    feed(buf, [make(MessageType.BEGIN_TXN, ts(0), txn=1, keepalive_ms=0)])
    assert buf.expire(ts(499)) == 0
    assert buf.expire(ts(500)) == 1
    with pytest.raises(ValueError, match="positive"):
        TxnBuffer(default_keepalive_ms=0)


def test_handle_expires_after_the_batch() -> None:
    buf = TxnBuffer()
    begin = make(MessageType.BEGIN_TXN, ts(0), txn=1, keepalive_ms=10)
    other = make(MessageType.BEGIN_TXN, ts(0), txn=2, keepalive_ms=10)
    commit = make(MessageType.COMMIT_TXN, ts(5), txn=1)
    out = buf.handle([begin, other, commit], ts(20))
    assert [m.message_type for m in out] == [MessageType.TXN]  # committed before the tick
    assert buf.expired == 1  # txn 2 expired at the tick
    assert len(buf) == 0


def test_interleaved_transactions() -> None:
    buf = TxnBuffer()
    msgs = [
        make(MessageType.BEGIN_TXN, 1, txn=1),
        make(MessageType.BEGIN_TXN, 2, txn=2),
        make(MessageType.INSERT, 3, txn=2, payload=b"2a"),
        make(MessageType.INSERT, 4, txn=1, payload=b"1a"),
        make(MessageType.BEGIN_TXN, 5, txn=3),
        make(MessageType.INSERT, 6, txn=3, payload=b"3a"),
        make(MessageType.INSERT, 7, txn=1, payload=b"1b"),
        make(MessageType.COMMIT_TXN, 8, txn=2),
        make(MessageType.ROLLBACK_TXN, 9, txn=3),
        make(MessageType.INSERT, 10, payload=b"plain"),
        make(MessageType.COMMIT_TXN, 11, txn=1),
    ]
    out = feed(buf, msgs)
    assert [m.timetick for m in out] == [8, 10, 11]
    t2, plain, t1 = out
    assert isinstance(t2, ImmutableTxnMessage) and isinstance(t1, ImmutableTxnMessage)
    assert (t2.txn_id, [m.payload for m in t2]) == (2, [b"2a"])
    assert plain.payload == b"plain"
    assert (t1.txn_id, [m.payload for m in t1]) == (1, [b"1a", b"1b"])
    assert (buf.committed, buf.rolled_back, buf.dropped) == (2, 1, 0)


def test_unknown_transaction_messages_are_dropped() -> None:
    buf = TxnBuffer()
    out = feed(
        buf,
        [
            make(MessageType.INSERT, 1, txn=9),  # began before this reader started
            make(MessageType.COMMIT_TXN, 2, txn=9),
            make(MessageType.ROLLBACK_TXN, 3, txn=8),
            make(MessageType.COMMIT_TXN, 4),  # no txn context at all
        ],
    )
    assert out == []
    assert buf.dropped == 4
    assert len(buf) == 0


def test_repeated_begin_keeps_the_first() -> None:
    buf = TxnBuffer()
    first = make(MessageType.BEGIN_TXN, 1, txn=1)
    out = feed(
        buf,
        [
            first,
            make(MessageType.INSERT, 2, txn=1),
            make(MessageType.BEGIN_TXN, 3, txn=1),
            make(MessageType.COMMIT_TXN, 4, txn=1),
        ],
    )
    assert len(out) == 1
    txn = out[0]
    assert isinstance(txn, ImmutableTxnMessage)
    assert txn.begin is first
    assert len(txn.body) == 1
    assert buf.dropped == 1


def test_a_malformed_transaction_is_dropped_whole() -> None:
    buf = TxnBuffer()
    out = feed(
        buf,
        [
            make(MessageType.BEGIN_TXN, 1, txn=1),
            make(MessageType.INSERT, 2, txn=1),
            make(MessageType.DROP_COLLECTION, 3, txn=1),  # not a legal body type
            make(MessageType.COMMIT_TXN, 4, txn=1),
        ],
    )
    assert out == []
    assert buf.dropped == 1
    assert buf.committed == 0
    assert buf.bytes == 0


@st.composite
def txn_workloads(draw: st.DrawFn) -> tuple[list[tuple[str, int | None]], dict[int, str]]:
    """Interleaved txns (each committed, rolled back or left open) plus plain messages."""
    n = draw(st.integers(0, 6))
    outcome = {t: draw(st.sampled_from(["commit", "rollback", "open"])) for t in range(1, n + 1)}
    events: list[tuple[str, int | None]] = []
    streams = []
    for t, end in outcome.items():
        body = draw(st.integers(0, 4))
        s: list[tuple[str, int | None]] = [("begin", t), *[("body", t)] * body]
        if end != "open":
            s.append((end, t))
        streams.append(s)
    streams.append([("plain", None)] * draw(st.integers(0, 6)))
    # merge preserving each stream's internal order
    while any(streams):
        live = [s for s in streams if s]
        s = draw(st.sampled_from(live))
        events.append(s.pop(0))
    return events, outcome


@settings(max_examples=200, deadline=None)
@given(txn_workloads())
def test_all_or_nothing(work: tuple[list[tuple[str, int | None]], dict[int, str]]) -> None:
    events, outcome = work
    kinds = {
        "begin": MessageType.BEGIN_TXN,
        "body": MessageType.INSERT,
        "commit": MessageType.COMMIT_TXN,
        "rollback": MessageType.ROLLBACK_TXN,
        "plain": MessageType.DELETE,
    }
    buf = TxnBuffer()
    messages = [
        make(kinds[kind], tt, txn=txn, payload=f"{kind}{txn}-{tt}".encode())
        for tt, (kind, txn) in enumerate(events, start=1)
    ]
    out = feed(buf, messages)
    expected: list[tuple[MessageID, list[MessageID] | None]] = []
    for m, (kind, txn) in zip(messages, events, strict=True):
        if kind == "plain":
            expected.append((m.message_id, None))
        elif kind == "commit":
            assert txn is not None
            body = [
                b.message_id
                for b, (k, t) in zip(messages, events, strict=True)
                if k == "body" and t == txn
            ]
            expected.append((m.message_id, body))
    got = [
        (
            m.message_id,
            [b.message_id for b in m.body] if isinstance(m, ImmutableTxnMessage) else None,
        )
        for m in out
    ]
    assert got == expected
    assert all(a.timetick < b.timetick for a, b in itertools.pairwise(out))
    open_txns = [t for t, end in outcome.items() if end == "open"]
    assert len(buf) == len(open_txns)
    assert buf.committed == sum(end == "commit" for end in outcome.values())
    # a timetick far in the future expires whatever is still open
    assert buf.expire(ts(10**9)) == len(open_txns)
    assert buf.bytes == 0
