"""The WAL backend contract suite, modelled on Milvus's per-backend WAL test framework.

A plugin author subclasses ``WALBackendContract`` in a test module and overrides
one fixture, ``wal_backend``, returning a ``WALBackendSpec`` for a fresh, empty
backend. The suite opens the backend by its entry-point name, so packaging
mistakes fail it too. Optional cases are gated on the opener's ``Capabilities``.
Replacing a test is allowed only with ``@pytest.mark.xfail(reason=...)``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass

import pytest

from walstream._crash_writer import crash_payload
from walstream.errors import (
    FencedError,
    MessageDecodeError,
    MessageTooLargeError,
    ReadOnlyWALError,
    WalstreamError,
)
from walstream.message import ImmutableMessage, MessageID, MutableMessage
from walstream.testing.guard import undeclared_overrides
from walstream.testing.spec import WALBackendSpec, run
from walstream.walimpls import (
    AccessMode,
    Capabilities,
    DeliverAll,
    DeliverLatest,
    DeliverStartAfter,
    DeliverStartFrom,
    Opener,
    PChannelInfo,
    ReadOption,
    Scanner,
    WALImpl,
)
from walstream.walimpls.registry import build_opener, get_builder, unmarshal_message_id


def unique_pchannel(prefix: str = "contract") -> str:
    """A pchannel name no earlier test used."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@dataclass
class Written:
    """What the writer knows of one acknowledged append."""

    message_id: MessageID
    message: MutableMessage


async def read_n(scanner: Scanner, n: int, timeout: float = 30.0) -> list[ImmutableMessage]:
    """Exactly ``n`` messages from ``scanner``, or fail after ``timeout``."""

    async def go() -> list[ImmutableMessage]:
        out: list[ImmutableMessage] = []
        async for msg in scanner:
            out.append(msg)
            if len(out) == n:
                break
        return out

    return await asyncio.wait_for(go(), timeout)


async def read_until(
    scanner: Scanner, key: str, value: str, timeout: float = 60.0
) -> list[ImmutableMessage]:
    """Messages up to and including the first whose property ``key`` equals ``value``."""

    async def go() -> list[ImmutableMessage]:
        out: list[ImmutableMessage] = []
        async for msg in scanner:
            out.append(msg)
            if msg.properties.get(key) == value:
                return out
        raise AssertionError(f"scanner ended before a message with {key}={value}")

    return await asyncio.wait_for(go(), timeout)


async def read_idle(scanner: Scanner, quiet: float = 0.3) -> list[ImmutableMessage]:
    """Whatever ``scanner`` delivers until it has been quiet for ``quiet`` seconds."""
    out: list[ImmutableMessage] = []
    while True:
        try:
            out.append(await asyncio.wait_for(scanner.__anext__(), quiet))
        except (TimeoutError, StopAsyncIteration):
            return out


def assert_strictly_increasing(messages: list[ImmutableMessage]) -> None:
    """Ids of ``messages`` go strictly up."""
    for a, b in itertools.pairwise(messages):
        assert a.message_id < b.message_id, (
            f"ids not strictly increasing: {a.message_id!r} then {b.message_id!r}"
        )


def assert_same_stream(got: list[ImmutableMessage], expected: list[Written]) -> None:
    """``got`` is exactly ``expected``: same ids, byte-equal payloads, equal properties."""
    assert len(got) == len(expected), f"read {len(got)} messages, wrote {len(expected)}"
    for g, w in zip(got, expected, strict=True):
        assert g.message_id == w.message_id, f"read {g.message_id!r}, expected {w.message_id!r}"
        assert g.payload == w.message.payload, f"payload differs at {g.message_id!r}"
        assert dict(g.properties) == dict(w.message.properties), (
            f"properties differ at {g.message_id!r}"
        )


class WALBackendContract:
    """Subclass in your plugin's tests and override the ``wal_backend`` fixture."""

    overridable_fixtures: tuple[str, ...] = ("wal_backend",)
    """The fixtures a subclass must override; nothing else but tuning attributes may change."""

    message_count = 100
    """Messages written per term in the read/write case (Milvus uses 100)."""
    crash_rounds = 50
    """SIGKILL rounds of the durability case."""
    concurrency = 5
    """Appends in flight at once in the read/write case."""
    invalid_message_ids: tuple[bytes, ...] = (b"", b"\x00", b"not a message id!", b"\xff" * 33)
    """Bytes that ``unmarshal`` must refuse; extend it with what is invalid in your format."""

    @pytest.fixture
    def wal_backend(self) -> WALBackendSpec:
        """Return a spec of a fresh, empty backend; must be overridden."""
        raise NotImplementedError("override the wal_backend fixture to return a WALBackendSpec")

    # --- helpers -----------------------------------------------------------------

    @staticmethod
    def opener(spec: WALBackendSpec) -> Opener:
        """Build an opener of ``spec`` through the entry-point registry."""
        return build_opener(spec.name, dict(spec.settings))

    @staticmethod
    def require(spec: WALBackendSpec, capability: str) -> Capabilities:
        """Skip the calling test when the backend lacks ``capability``."""
        caps = build_opener(spec.name, dict(spec.settings)).capabilities
        if not getattr(caps, capability):
            pytest.skip(f"backend {spec.name!r} declares no {capability!r} capability")
        return caps

    # --- the cases ------------------------------------------------------------------

    def test_no_overrides_DO_NOT_OVERRIDE(self) -> None:
        """A contract test may only be replaced by one marked xfail with a reason."""
        bad = undeclared_overrides(WALBackendContract, type(self))
        assert not bad, f"contract tests overridden or removed without xfail(reason=...): {bad}"

    def test_builder_loads_by_entry_point_name(self, wal_backend: WALBackendSpec) -> None:
        """The backend is found in ``walstream.wal`` under its own name."""
        builder = get_builder(wal_backend.name)
        assert builder.name == wal_backend.name
        assert builder.message_id_class.wal_name == wal_backend.name

    def test_read_write_three_pchannels_three_terms(self, wal_backend: WALBackendSpec) -> None:
        """Concurrent appends, two tail readers, policies, RO refusal; ids rise across terms."""
        self.require(wal_backend, "tail_read")
        run(self._read_write_all(wal_backend), timeout=600)

    async def _read_write_all(self, spec: WALBackendSpec) -> None:
        self._spec_name = spec.name
        async with self.opener(spec) as opener:
            await asyncio.gather(
                *(self._one_pchannel(opener, unique_pchannel(f"rw{i}")) for i in range(3))
            )

    async def _one_pchannel(self, opener: Opener, name: str) -> None:
        history: list[Written] = []
        for term in (1, 2, 3):
            wal = await opener.open(PChannelInfo(name, term, AccessMode.RW))
            assert wal.channel.name == name and wal.channel.term == term
            assert wal.channel.access_mode is AccessMode.RW
            assert wal.wal_name == self._spec_name, f"WAL reports backend {wal.wal_name!r}"
            readers = [
                await wal.read(ReadOption(name=f"r{i}-{term}", deliver_policy=DeliverAll()))
                for i in range(2)
            ]
            assert [r.name for r in readers] == [f"r0-{term}", f"r1-{term}"]
            reading = [asyncio.create_task(read_until(r, "term", str(term))) for r in readers]
            written = await self._write_term(wal, term)
            history.extend(sorted(written, key=lambda w: w.message_id))
            for task, reader in zip(reading, readers, strict=True):
                got = await task
                await reader.close()
                assert_strictly_increasing(got)
                assert_same_stream(got, history)
            await self._check_policies(wal, history)
            await wal.close()
            ro = await opener.open(PChannelInfo(name, term, AccessMode.RO))
            with pytest.raises(ReadOnlyWALError):
                await ro.append(MutableMessage.raw(b"x"))
            with pytest.raises(ReadOnlyWALError):
                await ro.truncate(history[0].message_id)
            async with await ro.read(ReadOption(name="ro")) as scanner:
                assert_same_stream(await read_n(scanner, len(history)), history)
            await ro.close()

    async def _write_term(self, wal: WALImpl, term: int) -> list[Written]:
        slots = asyncio.Semaphore(self.concurrency)

        async def one(i: int) -> Written:
            payload = f"term {term} message {i} ✓".encode() + bytes([i % 256]) * (i % 17)
            msg = MutableMessage.raw(payload, {"id": str(i), "const": "t", "unicode": "ñ✓😀"})
            async with slots:
                return Written(await wal.append(msg), msg)

        written = list(await asyncio.gather(*(one(i) for i in range(self.message_count - 1))))
        last = MutableMessage.raw(
            b"", {"id": str(self.message_count - 1), "const": "t", "term": str(term)}
        )
        written.append(Written(await wal.append(last), last))
        ids = [w.message_id for w in written]
        assert len(set(ids)) == len(ids), "two appends got the same message id"
        assert max(ids) == written[-1].message_id, "the last append must get the largest id"
        return written

    async def _check_policies(self, wal: WALImpl, history: list[Written]) -> None:
        mid = len(history) // 2
        async with await wal.read(
            ReadOption("from", DeliverStartFrom(history[mid].message_id))
        ) as s:
            assert_same_stream(await read_n(s, len(history) - mid), history[mid:])
        async with await wal.read(
            ReadOption("after", DeliverStartAfter(history[mid].message_id))
        ) as s:
            assert_same_stream(await read_n(s, len(history) - mid - 1), history[mid + 1 :])
        async with await wal.read(ReadOption("latest", DeliverLatest())) as s:
            assert await read_idle(s, 0.5) == [], (
                "Latest delivered a message written before it opened"
            )
            fresh = MutableMessage.raw(b"after latest", {"fresh": "1"})
            fresh_id = await wal.append(fresh)
            history.append(Written(fresh_id, fresh))
            got = await read_n(s, 1)
            assert_same_stream(got, history[-1:])

    def test_scanners_open_and_close_at_once(self, wal_backend: WALBackendSpec) -> None:
        """Ten scanners opened and closed together, half of them waiting at the tail:
        every waiting read ends (StopAsyncIteration), nothing hangs, no task leaks."""
        self.require(wal_backend, "tail_read")

        async def go() -> None:
            async with self.opener(wal_backend) as opener:
                wal = await opener.open(PChannelInfo(unique_pchannel("fast"), 1))
                await wal.append(MutableMessage.raw(b"one"))
                await asyncio.sleep(0.1)
                baseline = len(asyncio.all_tasks())
                scanners = await asyncio.gather(
                    *(wal.read(ReadOption(f"s{i}", DeliverLatest())) for i in range(10))
                )
                waiting = [asyncio.create_task(s.__anext__()) for s in scanners[:5]]
                await asyncio.sleep(0.2)
                assert not any(t.done() for t in waiting), "Latest delivered an old message"
                await asyncio.wait_for(asyncio.gather(*(s.close() for s in scanners)), 10)
                outcomes = await asyncio.wait_for(
                    asyncio.gather(*waiting, return_exceptions=True), 10
                )
                for outcome in outcomes:
                    assert isinstance(outcome, StopAsyncIteration), (
                        f"a read waiting at the tail ended with {outcome!r} when its scanner closed"
                    )
                for _ in range(100):
                    if len(asyncio.all_tasks()) <= baseline:
                        break
                    await asyncio.sleep(0.02)
                assert len(asyncio.all_tasks()) <= baseline, "closing scanners left tasks running"
                await wal.close()

        run(go(), timeout=60)

    def test_close_ends_scanners(self, wal_backend: WALBackendSpec) -> None:
        """Closing a WAL ends the reads of its scanners that wait at the tail."""
        self.require(wal_backend, "tail_read")

        async def go() -> None:
            async with self.opener(wal_backend) as opener:
                wal = await opener.open(PChannelInfo(unique_pchannel("closing"), 1))
                scanner = await wal.read(ReadOption("waiting", DeliverLatest()))
                waiting = asyncio.create_task(scanner.__anext__())
                await asyncio.sleep(0.2)
                await asyncio.wait_for(wal.close(), 10)
                with pytest.raises(StopAsyncIteration):
                    await asyncio.wait_for(waiting, 10)
                await scanner.close()

        run(go(), timeout=60)

    def test_truncate_then_reopen(self, wal_backend: WALBackendSpec) -> None:
        """Truncation works, a reopen after it works, and truncated entries never come back as new."""

        async def go() -> None:
            name = unique_pchannel("trunc")
            async with self.opener(wal_backend) as opener:
                wal = await opener.open(PChannelInfo(name, 1))
                written = [
                    Written(await wal.append(m), m)
                    for m in (MutableMessage.raw(f"m{i}".encode()) for i in range(20))
                ]
                await wal.truncate(written[10].message_id)
                await wal.close()
                wal = await opener.open(PChannelInfo(name, 1))
                more = MutableMessage.raw(b"after truncate")
                more_id = await wal.append(more)
                assert written[-1].message_id < more_id
                async with await wal.read(ReadOption("all")) as s:
                    got = await read_idle_until(s, more_id)
                assert all(m.message_id >= written[0].message_id for m in got)
                kept = [m for m in got if m.message_id >= written[10].message_id]
                assert_same_stream(kept, [*written[10:], Written(more_id, more)])
                # truncated entries may still be stored, but only as what they were, in order
                assert_strictly_increasing(got)
                old = {w.message_id: w for w in written}
                for m in got:
                    if m.message_id in old:
                        assert m.payload == old[m.message_id].message.payload
                await wal.close()
                wal = await opener.open(PChannelInfo(name, 2))
                await wal.truncate(more_id)
                await wal.close()

        run(go(), timeout=60)

    def test_fencing(self, wal_backend: WALBackendSpec) -> None:
        """A higher-term RW open fences the lower-term writer; its failed appends are never visible."""
        self.require(wal_backend, "fencing")

        async def go() -> None:
            name = unique_pchannel("fence")
            async with self.opener(wal_backend) as opener:
                old = await opener.open(PChannelInfo(name, 1))
                acked: list[Written] = []
                for i in range(5):
                    m = MutableMessage.raw(f"old {i}".encode(), {"w": "old"})
                    acked.append(Written(await old.append(m), m))

                async def old_append(i: int) -> Written | BaseException:
                    m = MutableMessage.raw(f"racing {i}".encode(), {"w": "old-racing"})
                    try:
                        return Written(await old.append(m), m)
                    except FencedError as exc:
                        return exc

                racing = [asyncio.create_task(old_append(i)) for i in range(20)]
                new = await opener.open(PChannelInfo(name, 2))
                outcomes = await asyncio.gather(*racing)
                acked += [o for o in outcomes if isinstance(o, Written)]
                for i in range(3):
                    with pytest.raises(FencedError):
                        await old.append(
                            MutableMessage.raw(f"late {i}".encode(), {"w": "old-late"})
                        )
                m = MutableMessage.raw(b"new", {"w": "new"})
                new_id = await new.append(m)
                acked.append(Written(new_id, m))
                async with await new.read(ReadOption("all")) as s:
                    got = await read_idle_until(s, new_id)
                by_payload = {w.message.payload for w in acked}
                seen = [x.payload for x in got]
                assert len(seen) == len(set(seen)), "a message was delivered twice"
                assert set(seen) == by_payload, (
                    f"visible set differs from acknowledged set: extra {set(seen) - by_payload}, "
                    f"missing {by_payload - set(seen)}"
                )
                await old.close()
                await new.close()
                try:
                    stale = await opener.open(PChannelInfo(name, 1))
                except FencedError:
                    pass
                else:
                    with pytest.raises(FencedError):
                        await stale.append(MutableMessage.raw(b"stale"))
                    await stale.close()
            # Nothing a fenced writer was refused may surface later either (e.g. flushed at
            # close): look again through a fresh opener at a higher term.
            async with self.opener(wal_backend) as opener:
                later = await opener.open(PChannelInfo(name, 3))
                end = MutableMessage.raw(b"end", {"w": "end"})
                end_id = await later.append(end)
                acked.append(Written(end_id, end))
                async with await later.read(ReadOption("all-again")) as s:
                    again = await read_idle_until(s, end_id)
                await later.close()
            payloads = [x.payload for x in again]
            expected = {w.message.payload for w in acked}
            assert len(payloads) == len(set(payloads)) and set(payloads) == expected, (
                f"after close: extra {set(payloads) - expected}, missing {expected - set(payloads)}"
            )

        run(go(), timeout=60)

    def test_durability_under_sigkill(self, wal_backend: WALBackendSpec) -> None:
        """A writer SIGKILLed at random points loses nothing acknowledged; nothing is duplicated or corrupt."""
        self.require(wal_backend, "durable_across_processes")
        name = unique_pchannel("crash")
        rng = random.Random(os.environ.get("WALSTREAM_CRASH_SEED", "walstream"))
        acked: dict[tuple[int, int], None] = {}
        for round_no in range(self.crash_rounds):
            # Kill after a random number of acknowledgements, then a random moment later:
            # every round is sure to have acknowledged something, and dies mid-stream.
            seqs = _crash_round(
                wal_backend, name, round_no, rng.randint(1, 300), rng.uniform(0, 0.05)
            )
            assert seqs, f"round {round_no}: the writer acknowledged nothing before it was killed"
            for seq in seqs:
                acked[(round_no, seq)] = None

        async def verify() -> None:
            async with self.opener(wal_backend) as opener:
                wal = await opener.open(PChannelInfo(name, self.crash_rounds + 1))
                marker = MutableMessage.raw(b"", {"end": "1"})
                end_id = await wal.append(marker)
                async with await wal.read(ReadOption("verify")) as s:
                    got = await read_idle_until(s, end_id)
                await wal.close()
            seen: set[tuple[int, int]] = set()
            assert_strictly_increasing(got)
            for m in got[:-1]:
                key = (int(m.properties["round"]), int(m.properties["seq"]))
                assert key not in seen, f"message {key} delivered twice"
                seen.add(key)
                assert m.payload == crash_payload(*key), f"message {key} is corrupt"
            missing = [k for k in acked if k not in seen]
            assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:5]}"

        run(verify(), timeout=300)

    def test_edge_messages(self, wal_backend: WALBackendSpec) -> None:
        """Empty payload, exactly the size limit, one byte over it, unicode and binary-like properties."""

        async def go() -> None:
            async with self.opener(wal_backend) as opener:
                limit = opener.capabilities.max_message_bytes
                wal = await opener.open(PChannelInfo(unique_pchannel("edge"), 1))
                props = {
                    "ключ": "значение",
                    "emoji😀": "✓",
                    "nul": "a\x00b",
                    "latin": "".join(map(chr, range(1, 256))),
                }
                empty = MutableMessage.raw(b"", props)
                big = MutableMessage.raw(b"", {"k": "v"})
                big = MutableMessage.raw(os.urandom(limit - big.size), {"k": "v"})
                assert big.size == limit
                over = MutableMessage.raw(
                    os.urandom(limit - big.size + len(big.payload) + 1), {"k": "v"}
                )
                written = [
                    Written(await wal.append(empty), empty),
                    Written(await wal.append(big), big),
                ]
                with pytest.raises(MessageTooLargeError) as info:
                    await wal.append(over)
                assert str(limit) in str(info.value)
                tail = MutableMessage.raw(b"\x00\xff" * 10, {"after": "oversize"})
                written.append(Written(await wal.append(tail), tail))
                async with await wal.read(ReadOption("edge")) as s:
                    assert_same_stream(await read_n(s, 3), written)
                await wal.close()

        run(go(), timeout=120)

    def test_append_many(self, wal_backend: WALBackendSpec) -> None:
        """``append_many``: one outcome per message, an oversize one fails alone, the rest are
        stored once each, unchanged, and their ids order them as a reader gets them."""

        async def go() -> None:
            async with self.opener(wal_backend) as opener:
                limit = opener.capabilities.max_message_bytes
                wal = await opener.open(PChannelInfo(unique_pchannel("many"), 1))
                messages = [
                    MutableMessage.raw(
                        f"many {i} ✓".encode() + bytes([i]) * (i % 7), {"i": str(i), "u": "ñ😀"}
                    )
                    for i in range(50)
                ]
                over = 25
                messages[over] = MutableMessage.raw(os.urandom(limit + 1), {"i": str(over)})
                outcomes = await asyncio.wait_for(wal.append_many(messages), 60)
                assert len(outcomes) == len(messages), "append_many must give one outcome each"
                for i, outcome in enumerate(outcomes):
                    if i == over:
                        assert isinstance(outcome, MessageTooLargeError), (
                            f"the oversize message got {outcome!r}"
                        )
                        assert str(limit) in str(outcome)
                    else:
                        assert isinstance(outcome, MessageID), f"message {i} got {outcome!r}"
                written = sorted(
                    (
                        Written(outcome, message)
                        for outcome, message in zip(outcomes, messages, strict=True)
                        if isinstance(outcome, MessageID)
                    ),
                    key=lambda w: w.message_id,
                )
                ids = [w.message_id for w in written]
                assert len(set(ids)) == len(ids), "two messages of a batch got the same id"
                tail = MutableMessage.raw(b"after many", {"i": "tail"})
                tail_id = await wal.append(tail)
                assert ids[-1] < tail_id, "an append after append_many must get a larger id"
                written.append(Written(tail_id, tail))
                async with await wal.read(ReadOption("many", deliver_policy=DeliverAll())) as s:
                    got = await read_n(s, len(written))
                    assert await read_idle(s, 0.5) == [], "a message was stored twice"
                assert_strictly_increasing(got)
                assert_same_stream(got, written)  # the batch's ids sort it in read order
                await wal.close()

        run(go(), timeout=120)

    def test_message_id_contract(self, wal_backend: WALBackendSpec) -> None:
        """LT/LTE/EQ truth table, marshal round trip through the registry, garbage refused."""

        async def go() -> list[MessageID]:
            async with self.opener(wal_backend) as opener:
                wal = await opener.open(PChannelInfo(unique_pchannel("ids"), 1))
                ids = [await wal.append(MutableMessage.raw(bytes([i]))) for i in range(3)]
                await wal.close()
                return ids

        a, b, c = run(go())
        for x, y in ((a, b), (b, c), (a, c)):
            assert x.lt(y) and x.lte(y) and not x.eq(y)
            assert not y.lt(x) and not y.lte(x) and not y.eq(x)
        for x in (a, b, c):
            assert x.eq(x) and x.lte(x) and not x.lt(x)
            same = unmarshal_message_id(wal_backend.name, x.marshal())
            assert same == x and hash(same) == hash(x)
            assert type(x).from_property(x.to_property()) == x
        for g in self.invalid_message_ids:
            with pytest.raises(MessageDecodeError):
                unmarshal_message_id(wal_backend.name, g)

    def test_state_machine_against_model(self, wal_backend: WALBackendSpec) -> None:
        """Random appends, reads, truncations and term changes agree with an in-memory model."""
        from walstream.testing.wal_model import run_model_machine

        run_model_machine(wal_backend)


async def read_idle_until(
    scanner: Scanner, last: MessageID, timeout: float = 60.0
) -> list[ImmutableMessage]:
    """Every message up to and including id ``last``."""

    async def go() -> list[ImmutableMessage]:
        out: list[ImmutableMessage] = []
        async for msg in scanner:
            out.append(msg)
            if msg.message_id >= last:
                return out
        raise AssertionError(f"scanner ended before {last!r}")

    return await asyncio.wait_for(go(), timeout)


def _crash_round(
    spec: WALBackendSpec, pchannel: str, round_no: int, kill_after_acks: int, delay: float
) -> list[int]:
    """Start a writer child, SIGKILL it ``delay`` seconds after its ``kill_after_acks``-th
    acknowledgement, and return every sequence number it reported acknowledged."""
    args = {
        "name": spec.name,
        "settings": spec.settings,
        "pchannel": pchannel,
        "term": round_no + 1,
        "round": round_no,
    }
    with tempfile.TemporaryFile(mode="w+") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "walstream._crash_writer", json.dumps(args)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        acks: list[int] = []
        killed = False
        try:
            first = lines.get(timeout=60)
            if first is None or first.strip() != "ready":
                raise WalstreamError(f"crash writer did not open its WAL: {first!r}")
            deadline = time.monotonic() + 60
            while True:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
                if line is None:
                    break  # the child ended by itself: only an error does that
                if line.startswith("ack ") and line.endswith("\n"):
                    acks.append(int(line.split()[1]))
                    if len(acks) == kill_after_acks:
                        time.sleep(delay)
                        os.kill(proc.pid, signal.SIGKILL)
                        killed = True
        except queue.Empty:
            raise WalstreamError(
                f"crash writer round {round_no} stalled (no output for 60 s)"
            ) from None
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
            reader.join(timeout=30)
        if not killed:
            stderr.seek(0)
            raise WalstreamError(
                f"crash writer round {round_no} exited by itself (code {proc.returncode}) after "
                f"{len(acks)} acks: {stderr.read()[-3000:]}"
            )
    return acks


__all__ = ["WALBackendContract", "WALBackendSpec"]
