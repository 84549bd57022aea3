"""The streaming node's WAL over any backend: ``open_wal`` and ``StreamingWAL``.

Append path (outermost first): redo -> lock -> vchannel -> timetick/txn ->
segment assignment (unless ``segment_assignment`` is off) ->
``interceptors_extra`` -> the backend append. A time-tick sync task covers
acknowledged messages with TimeTicks and feeds the write-ahead buffer that
tailing scanners read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from walstream import hooks
from walstream.errors import FencedError, MessageError, ReadOnlyWALError, WALClosedError
from walstream.message import ImmutableMessage, MessageType, MutableMessage, new_message
from walstream.policy import PolicySettings, SealPolicyChain, load_policy_settings
from walstream.policy import build_chain as build_seal_chain
from walstream.proto import messages_pb2 as pb
from walstream.wal.ack import AckManager, TimestampAllocator
from walstream.wal.backend_append import BackendAppender
from walstream.wal.chain import (
    AppendFunc,
    AppendResult,
    BatchAppendFunc,
    Interceptor,
    Outcome,
    batchable,
    build_batch_chain,
    build_chain,
    receive_early_outcomes,
)
from walstream.wal.errors import SelfControlledMessageError
from walstream.wal.interceptors import (
    LockInterceptor,
    RedoInterceptor,
    TimeTickInterceptor,
    TxnDispatcher,
    VChannelInterceptor,
)
from walstream.wal.options import WALReadOption
from walstream.wal.scan.source import LatestStart
from walstream.wal.segments import SegmentAssignInterceptor
from walstream.wal.settings import WALSettings, load_wal_settings
from walstream.wal.timetick_sync import TimeTickSync
from walstream.wal.txn_handle import TxnHandle
from walstream.wal.txn_manager import TxnManager
from walstream.wal.txn_session import TxnSession
from walstream.wal.vchannels import VChannelRegistry, recover_vchannels
from walstream.wal.wab import WriteAheadBuffer
from walstream.walimpls import AccessMode, PChannelInfo, WALImpl

if TYPE_CHECKING:
    from walstream.wal.scanner import WALScanner

__all__ = ["InterceptorBuildParam", "InterceptorFactory", "StreamingWAL", "open_wal"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InterceptorBuildParam:
    """What an extra interceptor (e.g. segment assignment) may use, given at WAL open."""

    wal: StreamingWAL
    channel: PChannelInfo
    settings: WALSettings
    first_timetick_message: ImmutableMessage
    wab: WriteAheadBuffer
    ack_manager: AckManager
    txn_manager: TxnManager
    vchannels: VChannelRegistry


InterceptorFactory = Callable[[InterceptorBuildParam], Interceptor]
"""Builds an extra interceptor once the WAL exists (it can then ``append_internal``)."""


class _RWState:
    """What only an RW WAL has."""

    def __init__(
        self,
        backend: BackendAppender,
        wab: WriteAheadBuffer,
        ack: AckManager,
        txns: TxnManager,
        vchannels: VChannelRegistry,
    ) -> None:
        self.backend = backend
        self.wab = wab
        self.ack = ack
        self.txns = txns
        self.vchannels = vchannels
        self.interceptors: list[Interceptor] = []
        self.chain: AppendFunc = backend
        self.batch_chain: BatchAppendFunc = backend.append_batch
        self.sync: TimeTickSync | None = None
        self.segments: SegmentAssignInterceptor | None = None


class StreamingWAL:
    """A pchannel's WAL as the streaming node serves it; create it with :func:`open_wal`."""

    def __init__(self, impl: WALImpl, settings: WALSettings, rw: _RWState | None) -> None:
        """Use :func:`open_wal`."""
        self._impl = impl
        self._settings = settings
        self._rw = rw
        self._closing = False
        self._close_task: asyncio.Task[None] | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # Concurrent plain appends waiting for the next batch (see ``_run_batch``).
        self._queued: list[tuple[MutableMessage, asyncio.Future[AppendResult]]] = []
        self._batches: set[asyncio.Task[None]] = set()
        self._appending: set[int] = set()  # ids of client messages being appended

    # --- inspection ---------------------------------------------------------------

    @property
    def channel(self) -> PChannelInfo:
        """The pchannel, term and access mode."""
        return self._impl.channel

    @property
    def impl(self) -> WALImpl:
        """The backend WAL (owned: closed with this WAL)."""
        return self._impl

    @property
    def settings(self) -> WALSettings:
        """The settings in force."""
        return self._settings

    @property
    def read_only(self) -> bool:
        """Whether this WAL serves reads only."""
        return self._rw is None

    @property
    def wab(self) -> WriteAheadBuffer | None:
        """The write-ahead buffer (``None`` on a read-only WAL)."""
        return self._rw.wab if self._rw is not None else None

    @property
    def last_timetick(self) -> int:
        """The newest TimeTick given to readers (0 on a read-only WAL)."""
        return self._rw.wab.last_timetick if self._rw is not None else 0

    @property
    def vchannels(self) -> frozenset[str]:
        """The alive vchannels (empty on a read-only WAL)."""
        return self._rw.vchannels.alive if self._rw is not None else frozenset()

    @property
    def txn_manager(self) -> TxnManager | None:
        """The transaction table (``None`` on a read-only WAL)."""
        return self._rw.txns if self._rw is not None else None

    @property
    def segments(self) -> SegmentAssignInterceptor | None:
        """The segment-assignment step (``None`` when off or on a read-only WAL)."""
        return self._rw.segments if self._rw is not None else None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closing

    # --- append ---------------------------------------------------------------------

    def _writer(self) -> _RWState:
        if self._rw is None:
            raise ReadOnlyWALError(
                f"pchannel {self.channel.name!r} was opened read-only: it serves reads only; "
                f"append through the RW WAL of the current term"
            )
        self._rw.backend.check_usable()
        if self._closing:
            raise WALClosedError(f"the WAL of pchannel {self.channel.name!r} is closed")
        return self._rw

    async def append(self, message: MutableMessage) -> AppendResult:
        """Append a client message through the whole chain.

        Refuses types only the WAL writes (:class:`SelfControlledMessageError`),
        DML on unknown/dropped vchannels, and any append on a read-only, fenced
        (``FencedError`` forever) or closed WAL.
        """
        mtype = message.message_type
        if mtype.is_self_controlled or mtype is MessageType.TXN:
            raise SelfControlledMessageError(
                f"a client cannot append a {mtype.name} message: the WAL generates "
                f"TimeTick, CreateSegment, Flush and Txn messages itself"
            )
        rw = self._writer()
        key = id(message)
        if key in self._appending:
            # The chain stamps the message object itself: two appends of one object at
            # once would overwrite each other's timetick.
            raise MessageError(
                f"this {mtype.name} message is already being appended; build a new message "
                f"for each append (or wait for the first append to return)"
            )
        message.with_wal_term(self.channel.term)
        self._appending.add(key)
        if self._settings.append_batch_max > 1 and batchable(message):
            # Counted in flight until its batch ends, even if this caller is cancelled:
            # close() must not close the backend under it.
            return await self._enqueue(message)
        self._in_flight += 1
        self._idle.clear()
        try:
            return await rw.chain(message)
        finally:
            self._appending.discard(key)
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    def _enqueue(self, message: MutableMessage) -> asyncio.Future[AppendResult]:
        """Queue a plain message for the next batch through the chain.

        Appends made in the same event-loop iteration go through the chain together
        (one lock, ack and backend pass per batch, as a Kafka producer batches what
        arrives within its linger): what concurrent callers gain, with no added wait.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AppendResult] = loop.create_future()
        self._in_flight += 1
        self._idle.clear()
        queued = self._queued
        queued.append((message, future))
        if len(queued) == 1:
            loop.call_soon(self._start_batch)
        return future

    def _start_batch(self) -> None:
        limit = self._settings.append_batch_max
        while self._queued:
            batch, self._queued = self._queued[:limit], self._queued[limit:]
            task = asyncio.get_running_loop().create_task(self._run_batch(batch))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _run_batch(
        self, batch: list[tuple[MutableMessage, asyncio.Future[AppendResult]]]
    ) -> None:
        # A caller cancelled while waiting does not take its message out: it may be stored.
        try:
            await self._append_batch(batch)
        finally:
            for message, _ in batch:
                self._appending.discard(id(message))
            self._in_flight -= len(batch)
            if self._in_flight == 0:
                self._idle.set()

    async def _append_batch(
        self, batch: list[tuple[MutableMessage, asyncio.Future[AppendResult]]]
    ) -> None:
        futures = {id(message): future for message, future in batch}

        def settle(message: MutableMessage, outcome: Outcome) -> None:
            future = futures.get(id(message))
            if future is None or future.done():
                return
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

        receive_early_outcomes(settle)  # this task's context only
        try:
            rw = self._rw
            assert rw is not None
            # Fencing only: these appends were accepted before a close() began, and
            # close() waits for them.
            rw.backend.check_usable()
            outcomes = await rw.batch_chain([message for message, _ in batch])
        except BaseException as exc:
            for _, future in batch:
                if future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (message, _), outcome in zip(batch, outcomes, strict=True):
            settle(message, outcome)

    async def append_internal(self, message: MutableMessage) -> AppendResult:
        """Append any message type through the chain (time-tick sync, segment manager)."""
        rw = self._writer()
        message.with_wal_term(self.channel.term)
        self._in_flight += 1
        self._idle.clear()
        try:
            return await rw.chain(message)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def begin_txn(self, vchannel: str, keepalive_ms: int = 0) -> TxnHandle:
        """Begin a transaction on ``vchannel`` (keepalive 0: ``txn_default_keepalive_ms``)."""
        header = pb.BeginTxnMessageHeader(keepalive_milliseconds=keepalive_ms)
        result = await self.append(
            new_message(MessageType.BEGIN_TXN, vchannel=vchannel, header=header)
        )
        return TxnHandle(self, vchannel, result)

    async def sync(self, persisted: bool = False) -> None:
        """Run a time-tick sync now and wait for it; ``persisted`` forces a backend TimeTick."""
        rw = self._writer()
        assert rw.sync is not None
        await rw.sync.sync(persisted)

    # --- read ------------------------------------------------------------------------

    async def read(self, option: WALReadOption) -> WALScanner:
        """Open a scanner of this WAL (:func:`walstream.wal.scanner.open_scanner`).

        An RW WAL's scanners tail the write-ahead buffer; a read-only one's read
        the backend only.
        """
        if self._closing:
            raise WALClosedError(f"the WAL of pchannel {self.channel.name!r} is closed")
        from walstream.wal.scanner import open_scanner  # the scanner imports the WAL's pieces

        force_sync: Callable[[], Awaitable[None]] | None = None
        latest_start: LatestStart | None = None
        if self._rw is not None:
            force_sync = self._force_sync
            ack = self._rw.ack
            # Everything at or below the confirmed watermark is stored already; reading from
            # the last-confirmed id sees everything above it, acknowledged or in flight.
            latest_start = LatestStart(ack.last_confirmed_message_id, ack.last_confirmed_timetick)
        return open_scanner(
            self._impl,
            option,
            wab=self.wab,
            force_sync=force_sync,
            txn_keepalive_ms=self._settings.txn_default_keepalive_ms,
            latest_start=latest_start,
        )

    async def _force_sync(self) -> None:
        # A scanner catching up needs a persisted TimeTick it will reach in the log.
        await self.sync(persisted=True)

    # --- close -------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop syncing, write a final persisted TimeTick, abort open txns, release all.

        Idempotent; a cancelled caller leaves the close running to its end.
        """
        self._closing = True
        if self._close_task is None:
            self._close_task = asyncio.get_running_loop().create_task(self._close())
        await asyncio.shield(self._close_task)

    async def _close(self) -> None:
        rw = self._rw
        try:
            if rw is not None:
                await self._close_rw(rw)
        finally:
            await self._impl.close()
            hooks.notify(
                "walstream_wal_closed", pchannel=self.channel, wal_name=self._impl.wal_name
            )

    async def _close_rw(self, rw: _RWState) -> None:
        try:
            async with asyncio.timeout(self._settings.close_timeout_s):
                await self._idle.wait()
        except TimeoutError:
            log.warning(
                "closing WAL %s with %d appends still in flight", self.channel.name, self._in_flight
            )
        # Abort open txns first: resolved sessions let the last-confirmed id move on.
        rw.txns.close()
        if rw.sync is not None:
            await rw.sync.stop()
            try:
                await rw.sync.final_sync()
            except Exception as exc:
                log.warning("final time-tick sync of %s failed: %s", self.channel.name, exc)
        rw.wab.close()
        for interceptor in reversed(rw.interceptors):
            try:
                await interceptor.close()
            except Exception:
                log.exception("closing interceptor %s failed", interceptor.name)

    def __repr__(self) -> str:
        mode = "ro" if self.read_only else "rw"
        return f"StreamingWAL({self.channel.name!r}, term={self.channel.term}, {mode})"


_SEGMENT_DDL = frozenset(
    {
        MessageType.CREATE_COLLECTION,
        MessageType.CREATE_PARTITION,
        MessageType.DROP_COLLECTION,
        MessageType.DROP_PARTITION,
    }
)


async def open_wal(
    impl: WALImpl,
    *,
    tso: TimestampAllocator,
    settings: WALSettings | None = None,
    interceptors_extra: Sequence[Interceptor | InterceptorFactory] = (),
    vchannels: Iterable[str] | None = None,
    policy_settings: PolicySettings | None = None,
    seal_chain: SealPolicyChain | None = None,
    seal_interval_s: float | None = None,
) -> StreamingWAL:
    """Open the streaming WAL over ``impl`` (which it then owns and closes).

    RW: writes the first (persisted) TimeTick, seeds the write-ahead buffer with
    it, recovers the vchannels (``vchannels`` if given, else by replaying the log
    up to that TimeTick), builds the chain and starts the time-tick sync.
    RO: a WAL that serves ``read`` and refuses appends. ``interceptors_extra``
    (instances, or factories taking :class:`InterceptorBuildParam`) sit between
    the segment-assignment step and the backend append.

    Segment assignment (``settings.segment_assignment``): its seal policies are
    ``seal_chain`` if given, else built from ``policy_settings`` (default: the
    ``[segment_policy]`` settings); its periodic check runs every
    ``seal_interval_s`` (default ``check_interval_seconds``) from open to close.
    Its collections and partitions are recovered by replaying the log with the
    vchannels; with ``vchannels`` given there is no replay and it starts empty.
    """
    settings = settings if settings is not None else load_wal_settings()
    if impl.channel.access_mode is AccessMode.RO:
        wal = StreamingWAL(impl, settings, None)
        hooks.notify("walstream_wal_opened", pchannel=impl.channel, wal_name=impl.wal_name)
        return wal

    # Settings errors surface before anything is written.
    seal_policies: SealPolicyChain | None = None
    seal_interval = 0.0
    if settings.segment_assignment:
        if policy_settings is None and (seal_chain is None or seal_interval_s is None):
            policy_settings = load_policy_settings()
        seal_policies = seal_chain if seal_chain is not None else build_seal_chain(policy_settings)
        if seal_interval_s is not None:
            seal_interval = seal_interval_s
        else:
            assert policy_settings is not None
            seal_interval = policy_settings.check_interval_seconds

    def on_fenced(exc: FencedError) -> None:
        hooks.notify("walstream_pchannel_fenced", pchannel=impl.channel)

    backend = BackendAppender(
        impl, retry_timeout_s=settings.append_retry_timeout_s, on_fenced=on_fenced
    )
    first = (
        new_message(MessageType.TIME_TICK, vchannel=None)
        .with_timetick(await tso.allocate())
        .with_last_confirmed_use_self()
        .with_wal_term(impl.channel.term)
    )
    stored = await backend(first)
    first_tick = first.into_immutable(stored.message_id)
    recovered: list[ImmutableMessage] = []
    if vchannels is not None:
        registry = VChannelRegistry(impl.channel.name, alive=vchannels)
    else:
        registry = await recover_vchannels(
            impl,
            stored.message_id,
            lambda m: recovered.append(m) if m.message_type in _SEGMENT_DDL else None,
        )
    ack = AckManager(
        tso,
        last_confirmed_timetick=first_tick.timetick,
        last_confirmed_message_id=stored.message_id,
    )
    wab = WriteAheadBuffer(
        first_tick, capacity_bytes=settings.wab_capacity_bytes, keepalive=settings.wab_keepalive_s
    )
    dispatcher: TxnDispatcher | None = None

    def on_txn_end(session: TxnSession) -> None:
        log.debug("txn %s ended: %s", session.txn_id, session.state.name)
        if dispatcher is not None:
            dispatcher.forget(session)
        if rw.segments is not None:
            rw.segments.txn_ended(session.txn_id)
        if hooks.has_observers("walstream_txn_ended"):
            hooks.notify(
                "walstream_txn_ended",
                pchannel=impl.channel,
                vchannel=session.vchannel,
                txn_id=session.txn_id,
                state=session.state.name,
            )

    txns = TxnManager(default_keepalive_ms=settings.txn_default_keepalive_ms, on_end=on_txn_end)
    dispatcher = TxnDispatcher(txns, settings.txn_max_bytes)
    rw = _RWState(backend, wab, ack, txns, registry)
    wal = StreamingWAL(impl, settings, rw)
    param = InterceptorBuildParam(wal, impl.channel, settings, first_tick, wab, ack, txns, registry)
    extra = [item if isinstance(item, Interceptor) else item(param) for item in interceptors_extra]
    segments: list[Interceptor] = []
    if seal_policies is not None:
        segment_interceptor = SegmentAssignInterceptor(
            pchannel=impl.channel,
            chain=seal_policies,
            append_system=wal.append_internal,
        )
        for message in recovered:
            segment_interceptor.observe(message)
        segments.append(segment_interceptor)
        rw.segments = segment_interceptor
    rw.interceptors = [
        RedoInterceptor(settings.redo_max_attempts, settings.redo_ready_timeout_s),
        LockInterceptor(impl.channel.name, txns),
        VChannelInterceptor(impl.channel.name, registry),
        TimeTickInterceptor(ack, dispatcher),
        *segments,
        *extra,
    ]
    rw.chain = build_chain(rw.interceptors, backend)
    rw.batch_chain = build_batch_chain(rw.interceptors, backend.append_batch)

    def hint_id() -> Any:
        return backend.last_message_id or stored.message_id

    def on_batch(messages: Sequence[ImmutableMessage]) -> None:
        if hooks.has_observers("walstream_messages_appended"):
            hooks.notify(
                "walstream_messages_appended",
                pchannel=impl.channel,
                message_ids=[m.message_id for m in messages],
            )

    async def append_tick(message: MutableMessage) -> AppendResult:
        return await rw.chain(message.with_wal_term(impl.channel.term))

    rw.sync = TimeTickSync(
        ack_manager=ack,
        wab=wab,
        append=append_tick,
        hint_id=hint_id,
        interval_s=settings.timetick_interval_ms / 1000,
        on_batch=on_batch,
    )
    rw.sync.start()
    if rw.segments is not None:
        rw.segments.start(seal_interval)
    hooks.notify("walstream_wal_opened", pchannel=impl.channel, wal_name=impl.wal_name)
    return wal
