"""The interceptor chain runs outermost first and passes results back."""

from __future__ import annotations

from walstream.backends.memory import MemoryMessageID
from walstream.message import MutableMessage
from walstream.wal.chain import AppendFunc, AppendResult, Interceptor, build_chain


class Tag(Interceptor):
    name = "tag"

    def __init__(self, label: str, log: list[str]) -> None:
        self.label = label
        self.log = log

    async def do_append(self, message: MutableMessage, next_: AppendFunc) -> AppendResult:
        self.log.append(f"in {self.label}")
        result = await next_(message)
        self.log.append(f"out {self.label}")
        return result


async def test_outermost_first_and_results_flow_back() -> None:
    log: list[str] = []

    async def terminal(message: MutableMessage) -> AppendResult:
        log.append("backend")
        mid = MemoryMessageID(7)
        return AppendResult(mid, 42, mid)

    append = build_chain([Tag("a", log), Tag("b", log)], terminal)
    result = await append(MutableMessage.raw(b"x"))
    assert result.timetick == 42
    assert log == ["in a", "in b", "backend", "out b", "out a"]
