"""Hypothesis strategies for the streaming WAL's workload check (``walstream.wal.workload``)."""

from __future__ import annotations

from hypothesis import strategies as st

from walstream.wal.workload import Op, OpKind

__all__ = ["OP_KINDS", "workload_ops"]

OP_KINDS: tuple[OpKind, ...] = (
    "insert",
    "insert",
    "insert",
    "delete",
    "create",
    "drop",
    "flush",
    "txn_commit",
    "txn_commit",
    "txn_rollback",
    "txn_expire",
)
"""The op kinds drawn from, repeated by weight: inserts and commits most often."""


def workload_ops(max_size: int, vchannels: int = 3) -> st.SearchStrategy[list[Op]]:
    """Plans of 1 to ``max_size`` ops over ``vchannels`` initial vchannels, for ``check_workload``."""
    return st.lists(
        st.builds(
            Op,
            kind=st.sampled_from(OP_KINDS),
            vchannel=st.integers(0, vchannels - 1),
            size=st.integers(1, 4),
            delay=st.integers(0, 6),
        ),
        min_size=1,
        max_size=max_size,
    )
