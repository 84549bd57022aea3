"""A hypothesis state machine that drives a backend and an in-memory model side by side."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from walstream.errors import FencedError
from walstream.message import MessageID, MutableMessage
from walstream.testing.spec import WALBackendSpec
from walstream.walimpls import (
    AccessMode,
    DeliverAll,
    DeliverStartAfter,
    DeliverStartFrom,
    Opener,
    PChannelInfo,
    ReadOption,
    WALImpl,
)
from walstream.walimpls.registry import build_opener


class WALModelMachine(RuleBasedStateMachine):
    """Model: the list of acknowledged (id, payload, properties) and a truncation index."""

    spec: WALBackendSpec

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.opener: Opener = build_opener(self.spec.name, dict(self.spec.settings))
        from walstream.testing.wal_contract import unique_pchannel

        self.name = unique_pchannel("model")
        self.term = 1
        self.wal: WALImpl = self._run(self.opener.open(PChannelInfo(self.name, self.term)))
        self.log: list[tuple[MessageID, bytes, dict[str, str]]] = []
        self.truncated = 0

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 30))

    @initialize()
    def start(self) -> None:
        """Nothing to do: the constructor opened the pchannel."""

    @rule(payload=st.binary(max_size=300), value=st.text(max_size=20), burst=st.integers(1, 4))
    def append(self, payload: bytes, value: str, burst: int) -> None:
        """Append ``burst`` messages concurrently."""
        msgs = [
            MutableMessage.raw(payload + bytes([i]), {"v": value, "i": str(i)})
            for i in range(burst)
        ]

        async def go() -> list[MessageID]:
            return list(await asyncio.gather(*(self.wal.append(m) for m in msgs)))

        ids = self._run(go())
        for mid, m in sorted(zip(ids, msgs, strict=True), key=lambda p: p[0]):
            assert not self.log or self.log[-1][0] < mid, "new id not above every earlier id"
            self.log.append((mid, m.payload, dict(m.properties)))

    @precondition(lambda self: len(self.log) > 0)
    @rule(data=st.data())
    def read_from(self, data: st.DataObject) -> None:
        """StartFrom or StartAfter a random acknowledged id yields exactly the model's suffix."""
        index = data.draw(st.integers(self.truncated, len(self.log) - 1))
        after = data.draw(st.booleans())
        policy = (
            DeliverStartAfter(self.log[index][0]) if after else DeliverStartFrom(self.log[index][0])
        )
        expected = self.log[index + 1 :] if after else self.log[index:]
        got = self._read(ReadOption("model-from", policy), len(expected))
        assert got == expected

    @precondition(lambda self: len(self.log) > 0)
    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        """Truncate at a random id at or above the current point."""
        index = data.draw(st.integers(self.truncated, len(self.log) - 1))
        self._run(self.wal.truncate(self.log[index][0]))
        self.truncated = index

    @rule()
    def new_term(self) -> None:
        """Reopen RW at the next term; the previous writer is fenced or closed."""
        old = self.wal
        self.term += 1
        self.wal = self._run(self.opener.open(PChannelInfo(self.name, self.term, AccessMode.RW)))
        probe = MutableMessage.raw(b"fenced?")
        try:
            probe_id = self._run(old.append(probe))
        except FencedError:
            pass
        else:
            if self.opener.capabilities.fencing:
                raise AssertionError("a lower-term writer appended after a higher term opened")
            self.log.append(
                (probe_id, probe.payload, dict(probe.properties))
            )  # it is in the log now
        self._run(old.close())

    @invariant()
    def all_matches_model(self) -> None:
        """Reading everything gives the model from the truncation point on (older kept entries unchanged)."""
        if not self.log:
            return
        got = self._read(ReadOption("model-all", DeliverAll()), None)
        kept = [e for e in got if e[0] >= self.log[self.truncated][0]]
        assert kept == self.log[self.truncated :]
        model = {e[0]: e for e in self.log}
        assert all(model.get(e[0]) == e for e in got), (
            "a read returned something never acknowledged"
        )

    def _read(
        self, option: ReadOption, count: int | None
    ) -> list[tuple[MessageID, bytes, dict[str, str]]]:
        last = self.log[-1][0]

        async def go() -> list[tuple[MessageID, bytes, dict[str, str]]]:
            out: list[tuple[MessageID, bytes, dict[str, str]]] = []
            if count == 0:
                return out
            async with await self.wal.read(option) as scanner:
                async for m in scanner:
                    out.append((m.message_id, m.payload, dict(m.properties)))
                    if count is not None and len(out) == count:
                        break
                    if count is None and m.message_id >= last:
                        break
            return out

        result: list[tuple[MessageID, bytes, dict[str, str]]] = self._run(go())
        return result

    def teardown(self) -> None:
        """Close everything, including the event loop."""
        try:
            self._run(self.wal.close())
            self._run(self.opener.close())
        finally:
            self.loop.close()


def run_model_machine(spec: WALBackendSpec, max_examples: int = 15, steps: int = 20) -> None:
    """Run the machine against ``spec``'s backend."""
    machine = type("BoundWALModelMachine", (WALModelMachine,), {"spec": spec})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=max_examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        ),
    )
