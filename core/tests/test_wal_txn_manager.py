"""The write-side transaction manager and sessions: states, lease, commit waits, aborts."""

from __future__ import annotations

import asyncio

import pytest
from walstream.errors import WALClosedError
from walstream.message import MessageType, MutableMessage, new_message
from walstream.tso import compose
from walstream.wal import (
    DEFAULT_TXN_KEEPALIVE_MS,
    InvalidTransactionRequestError,
    InvalidTransactionStateError,
    TransactionAbortedError,
    TransactionError,
    TransactionExpiredError,
    TransactionNotFoundError,
    TxnManager,
    TxnSession,
    TxnState,
    WALInvariantError,
    expiry_timetick,
)

WAIT = 5.0
T0 = compose(1_000, 7)


def body(tt: int, mtype: MessageType = MessageType.INSERT, vchannel: str = "v1") -> MutableMessage:
    return new_message(mtype, vchannel=vchannel).with_timetick(tt)


def begin(keepalive_ms: int = 100, tt: int = T0, txns: TxnManager | None = None) -> TxnSession:
    return (txns or TxnManager()).begin("v1", keepalive_ms, tt)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# --- begin -----------------------------------------------------------------------------------


def test_begin_uses_the_timetick_as_id_and_stamps_the_context() -> None:
    txns = TxnManager()
    s = txns.begin("v1", 250, T0)
    assert s.txn_id == T0
    assert s.vchannel == "v1"
    assert s.state is TxnState.IN_FLIGHT
    assert not s.resolved
    assert s.keepalive_ms == 250
    assert s.txn_context.txn_id == T0
    assert s.txn_context.keepalive_milliseconds == 250
    assert s.begin_timetick == s.last_timetick == T0
    assert s.expiry_timetick == compose(1_250, 7) == expiry_timetick(T0, 250)
    assert txns.get(T0) is s
    assert len(txns) == 1
    assert not txns.is_resolved(T0)


def test_keepalive_zero_means_the_default() -> None:
    assert begin(0).keepalive_ms == DEFAULT_TXN_KEEPALIVE_MS == 10_000
    assert TxnManager(default_keepalive_ms=42).begin("v1", 0, T0).keepalive_ms == 42


@pytest.mark.parametrize("keepalive", [-1, -1000])
def test_keepalive_below_one_ms_is_refused(keepalive: int) -> None:
    with pytest.raises(InvalidTransactionRequestError, match=r">= 1 ms .*0 for the default"):
        begin(keepalive)


@pytest.mark.parametrize("keepalive", [0.5, "10", True])
def test_keepalive_must_be_an_int(keepalive: object) -> None:
    with pytest.raises(InvalidTransactionRequestError, match="int of milliseconds"):
        TxnManager().begin("v1", keepalive, T0)  # type: ignore[arg-type]


def test_begin_needs_a_vchannel_and_a_fresh_timetick() -> None:
    txns = TxnManager()
    with pytest.raises(InvalidTransactionRequestError, match="needs a vchannel"):
        txns.begin("", 0, T0)
    txns.begin("v1", 0, T0)
    with pytest.raises(InvalidTransactionRequestError, match="already exists"):
        txns.begin("v2", 0, T0)
    with pytest.raises(InvalidTransactionRequestError, match="2\\*\\*63"):
        txns.begin("v1", 0, 1 << 63)


def test_unknown_txn_is_not_found_and_counts_as_resolved() -> None:
    txns = TxnManager()
    with pytest.raises(TransactionNotFoundError, match="txn 99 is not known"):
        txns.get(99)
    assert txns.is_resolved(99)
    assert issubclass(TransactionNotFoundError, LookupError)


# --- bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mtype", [MessageType.CREATE_COLLECTION, MessageType.FLUSH, MessageType.MANUAL_FLUSH]
)
def test_only_insert_and_delete_are_bodies(mtype: MessageType) -> None:
    s = begin()
    with pytest.raises(InvalidTransactionRequestError, match=f"Insert/Delete only.*{mtype.name}"):
        s.add_body(body(T0 + 1, mtype))
    assert s.in_flight == 0
    s.add_body(body(T0 + 1, MessageType.DELETE))
    assert s.in_flight == 1


def test_a_body_on_another_vchannel_is_refused() -> None:
    s = begin()
    with pytest.raises(InvalidTransactionRequestError, match=r"'v1'.*'v2'"):
        s.add_body(body(T0 + 1, vchannel="v2"))


def test_successful_bodies_refresh_the_lease_and_failed_ones_do_not() -> None:
    s = begin(100)
    s.add_body(body(T0 + 5))
    s.add_body(body(T0 + 9))
    assert s.in_flight == 2
    s.body_done(T0 + 9, ok=True)
    s.body_done(T0 + 5, ok=True)  # out of order: the lease never moves back
    assert s.last_timetick == T0 + 9
    s.add_body(body(T0 + 20))
    s.body_done(T0 + 20, ok=False)
    assert s.last_timetick == T0 + 9
    assert s.in_flight == 0
    assert s.state is TxnState.IN_FLIGHT  # a failed body leaves the txn usable


def test_body_done_without_add_body_is_an_invariant_error() -> None:
    with pytest.raises(WALInvariantError, match="without a matching add_body"):
        begin().body_done(T0, ok=True)


# --- expiry ----------------------------------------------------------------------------------------


def test_expiry_boundary_is_inclusive_on_the_physical_part() -> None:
    s = begin(100)
    end = compose(1_100, 7)
    assert s.expiry_timetick == end
    s.add_body(body(end - 1))  # one logical step before: still alive
    s.body_done(end - 1, ok=False)
    with pytest.raises(TransactionExpiredError) as info:
        s.add_body(body(end))
    text = str(info.value)
    assert f"txn {T0}" in text and "'v1'" in text and "keepalive 100 ms" in text
    assert f"lease ended at timetick {end}" in text
    assert s.state is TxnState.EXPIRED
    assert s.resolved


async def test_once_expired_every_use_is_expired_even_at_earlier_timeticks() -> None:
    txns = TxnManager()
    s = txns.begin("v1", 100, T0)
    assert txns.cleanup_until(compose(1_100, 7)) == [s]
    assert txns.is_resolved(T0)
    assert len(txns) == 0
    assert txns.get(T0) is s  # remembered so the error stays precise
    with pytest.raises(TransactionExpiredError, match="expired"):
        s.add_body(body(T0 + 1))
    with pytest.raises(TransactionExpiredError):
        await s.commit(T0 + 1)
    with pytest.raises(TransactionExpiredError):
        s.rollback(T0 + 1)
    assert s.state is TxnState.EXPIRED


def test_cleanup_until_respects_the_refreshed_lease() -> None:
    txns = TxnManager()
    a = txns.begin("v1", 100, compose(1_000, 0))
    b = txns.begin("v1", 100, compose(1_000, 1))
    b.add_body(body(compose(1_050, 0)))
    b.body_done(compose(1_050, 0), ok=True)
    assert txns.cleanup_until(compose(1_099, 9)) == []
    assert txns.cleanup_until(compose(1_100, 0)) == [a]
    assert txns.cleanup_until(compose(1_149, 0)) == []
    assert txns.cleanup_until(compose(1_150, 0)) == [b]
    assert a.state is b.state is TxnState.EXPIRED


def test_a_commit_at_or_after_the_lease_end_is_expired() -> None:
    s = begin(100)
    with pytest.raises(TransactionExpiredError, match="request at timetick"):
        asyncio.run(s.commit(s.expiry_timetick))


async def test_sessions_committing_do_not_expire() -> None:
    txns = TxnManager()
    s = txns.begin("v1", 100, T0)
    await s.commit(T0 + 1)
    assert txns.cleanup_until(compose(5_000, 0)) == []
    assert s.state is TxnState.ON_COMMIT
    s.commit_done(ok=True)
    assert s.state is TxnState.COMMITTED


# --- commit and rollback ---------------------------------------------------------------------------


async def test_commit_then_done_commits_once() -> None:
    ended: list[TxnSession] = []
    txns = TxnManager(on_end=ended.append)
    s = txns.begin("v1", 0, T0)
    await asyncio.wait_for(s.commit(T0 + 1), WAIT)
    assert s.state is TxnState.ON_COMMIT
    assert not s.resolved and not txns.is_resolved(T0)
    s.commit_done(ok=True)
    assert s.state is TxnState.COMMITTED
    assert s.resolved and txns.is_resolved(T0)
    assert ended == [s]
    with pytest.raises(InvalidTransactionStateError, match=r"committed.*each be called once"):
        await s.commit(T0 + 2)
    with pytest.raises(InvalidTransactionStateError, match=r"append a body.*committed"):
        s.add_body(body(T0 + 2))
    with pytest.raises(InvalidTransactionStateError, match="roll back"):
        s.rollback(T0 + 2)


async def test_second_commit_while_committing_is_refused() -> None:
    s = begin()
    await s.commit(T0 + 1)
    with pytest.raises(InvalidTransactionStateError, match="on_commit"):
        await s.commit(T0 + 2)
    with pytest.raises(InvalidTransactionStateError, match="on_commit"):
        s.add_body(body(T0 + 2))


def test_rollback_then_done_rolls_back_once() -> None:
    txns = TxnManager()
    s = txns.begin("v1", 0, T0)
    s.rollback(T0 + 1)
    assert s.state is TxnState.ON_ROLLBACK
    with pytest.raises(InvalidTransactionStateError, match="on_rollback"):
        s.rollback(T0 + 2)
    s.rollback_done(ok=True)
    assert s.state is TxnState.ROLLED_BACK
    assert txns.is_resolved(T0)
    with pytest.raises(InvalidTransactionStateError, match="rolled_back"):
        asyncio.run(s.commit(T0 + 3))


async def test_commit_waits_for_in_flight_bodies() -> None:
    s = begin(10_000)
    s.add_body(body(T0 + 1))
    s.add_body(body(T0 + 2))
    commit = asyncio.create_task(s.commit(T0 + 3))
    await settle()
    assert not commit.done()
    assert s.state is TxnState.ON_COMMIT
    with pytest.raises(InvalidTransactionStateError):
        s.add_body(body(T0 + 4))  # no body after the commit request
    s.body_done(T0 + 1, ok=True)
    await settle()
    assert not commit.done()
    s.body_done(T0 + 2, ok=False)
    await asyncio.wait_for(commit, WAIT)
    s.commit_done(ok=True)
    assert s.state is TxnState.COMMITTED


async def test_cancelling_a_waiting_commit_fails_the_txn() -> None:
    txns = TxnManager()
    s = txns.begin("v1", 0, T0)
    s.add_body(body(T0 + 1))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(s.commit(T0 + 2), 0.05)
    assert s.state is TxnState.FAILED
    assert "cancelled" in s.abort_reason
    assert txns.is_resolved(T0)
    s.body_done(T0 + 1, ok=True)  # the body still finishes; the lease stays
    assert s.last_timetick == T0


async def test_fail_all_wakes_a_waiting_commit_with_aborted() -> None:
    txns = TxnManager()
    s = txns.begin("v1", 0, T0)
    s.add_body(body(T0 + 1))
    commit = asyncio.create_task(s.commit(T0 + 2))
    await settle()
    assert txns.fail_all("the WAL is closing") == [s]
    with pytest.raises(TransactionAbortedError, match="WAL is closing"):
        await asyncio.wait_for(commit, WAIT)
    s.commit_done(ok=True)  # a late done after an abort is ignored
    assert s.state is TxnState.FAILED


@pytest.mark.parametrize("what", ["commit", "rollback"])
async def test_a_failed_control_append_fails_the_txn(what: str) -> None:
    s = begin()
    if what == "commit":
        await s.commit(T0 + 1)
        s.commit_done(ok=False)
    else:
        s.rollback(T0 + 1)
        s.rollback_done(ok=False)
    assert s.state is TxnState.FAILED
    assert s.resolved
    assert f"{what} append failed" in s.abort_reason


def test_done_in_the_wrong_state_is_an_invariant_error() -> None:
    s = begin()
    with pytest.raises(WALInvariantError, match="commit_done in state IN_FLIGHT"):
        s.commit_done(ok=True)
    with pytest.raises(WALInvariantError, match="rollback_done"):
        s.rollback_done(ok=True)


# --- aborts ----------------------------------------------------------------------------------------


async def test_fail_txns_at_aborts_only_in_flight_sessions_of_that_vchannel() -> None:
    txns = TxnManager()
    a = txns.begin("v1", 0, T0)
    b = txns.begin("v2", 0, T0 + 1)
    c = txns.begin("v1", 0, T0 + 2)
    await c.commit(T0 + 3)
    assert txns.fail_txns_at("v1") == [a]
    assert a.state is TxnState.FAILED
    assert b.state is TxnState.IN_FLIGHT
    assert c.state is TxnState.ON_COMMIT
    with pytest.raises(
        TransactionAbortedError, match=r"aborted \(an exclusive message took vchannel 'v1'\)"
    ):
        a.add_body(body(T0 + 4))
    with pytest.raises(TransactionAbortedError, match="begin a new transaction"):
        await a.commit(T0 + 4)
    assert txns.fail_txns_at("") == [b]  # pchannel-wide


def test_close_refuses_new_transactions_and_aborts_open_ones() -> None:
    txns = TxnManager()
    s = txns.begin("v1", 0, T0)
    txns.close()
    assert s.state is TxnState.FAILED
    with pytest.raises(WALClosedError, match="no new transactions"):
        txns.begin("v1", 0, T0 + 1)
    txns.close()


def test_ended_sessions_are_remembered_up_to_a_bound() -> None:
    txns = TxnManager(ended_kept=2)
    sessions = [txns.begin("v1", 0, T0 + i) for i in range(3)]
    for s in sessions:
        s.fail("test")
    with pytest.raises(TransactionNotFoundError):
        txns.get(T0)
    assert txns.get(T0 + 1) is sessions[1]
    assert txns.get(T0 + 2) is sessions[2]


def test_every_refusal_is_a_transaction_error() -> None:
    for cls in (
        InvalidTransactionRequestError,
        InvalidTransactionStateError,
        TransactionExpiredError,
        TransactionAbortedError,
        TransactionNotFoundError,
    ):
        assert issubclass(cls, TransactionError)
