"""Observer hooks (pluggy).

Implementations register through the ``walstream.hooks`` entry-point group (or
``register()`` in-process). They are called through ``notify``, which isolates
each observer: a failing one is logged and never breaks the write that fired it.

Observers are plain functions called synchronously on the event loop of the
operation that fired them, so they must be quick: hand slow work to a queue or a
thread. Coroutine functions and hook wrappers are refused when registered.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Sequence
from typing import Any

import pluggy

from walstream import plugins
from walstream.message import MessageID
from walstream.walimpls.options import PChannelInfo

PROJECT = "walstream"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

log = logging.getLogger(__name__)


class WalstreamHookSpecs:
    """Every event walstream reports to observers."""

    @hookspec
    def walstream_wal_opened(self, pchannel: PChannelInfo, wal_name: str) -> None:
        """A WAL was opened on ``pchannel`` with backend ``wal_name``."""

    @hookspec
    def walstream_wal_closed(self, pchannel: PChannelInfo, wal_name: str) -> None:
        """A WAL was closed."""

    @hookspec
    def walstream_messages_appended(
        self, pchannel: PChannelInfo, message_ids: Sequence[MessageID]
    ) -> None:
        """A batch of messages was durably appended."""

    @hookspec
    def walstream_segment_created(
        self,
        pchannel: PChannelInfo,
        vchannel: str,
        collection_id: int,
        partition_id: int,
        segment_id: int,
    ) -> None:
        """A growing segment was created (its CreateSegment message was appended)."""

    @hookspec
    def walstream_txn_ended(
        self, pchannel: PChannelInfo, vchannel: str, txn_id: int, state: str
    ) -> None:
        """A transaction ended; ``state`` is its final state's name (COMMITTED, ROLLED_BACK...)."""

    @hookspec
    def walstream_segment_sealed(
        self, pchannel: PChannelInfo, vchannel: str, segment_id: int
    ) -> None:
        """A growing segment was sealed."""

    @hookspec
    def walstream_segment_flushed(
        self, pchannel: PChannelInfo, vchannel: str, segment_id: int
    ) -> None:
        """A sealed segment was written to object storage."""

    @hookspec
    def walstream_checkpoint_advanced(self, pchannel: PChannelInfo, checkpoint: MessageID) -> None:
        """The recovery checkpoint of ``pchannel`` moved forward."""

    @hookspec
    def walstream_pchannel_assigned(self, pchannel: PChannelInfo, node: str) -> None:
        """``pchannel`` was assigned to ``node`` at a new term."""

    @hookspec
    def walstream_pchannel_fenced(self, pchannel: PChannelInfo) -> None:
        """A writer of ``pchannel`` discovered it was fenced by a higher term."""


_manager: pluggy.PluginManager | None = None
_lock = threading.Lock()


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager, with entry-point observers loaded once (failures logged)."""
    global _manager
    if _manager is not None:  # the hot path: every observed append asks
        return _manager
    with _lock:
        if _manager is None:
            pm = pluggy.PluginManager(PROJECT)
            pm.add_hookspecs(WalstreamHookSpecs)
            for info in plugins.discover(plugins.HOOKS_GROUP):
                if info.status != "ok":
                    continue  # discover() already logged why
                try:
                    _refuse_unsupported(info.obj)
                    pm.register(info.obj, name=f"{info.distribution}:{info.name}")
                except (ValueError, pluggy.PluginValidationError) as exc:
                    log.warning("observer %s not registered (%s): %s", info.name, info.where, exc)
            _manager = pm
        return _manager


def _refuse_unsupported(observer: object) -> None:
    for attr in dir(observer):
        if not attr.startswith("walstream_"):
            continue
        impl = getattr(observer, attr)
        opts = getattr(impl, f"{PROJECT}_impl", None) or {}
        if inspect.iscoroutinefunction(impl) or inspect.isasyncgenfunction(impl):
            raise ValueError(
                f"observer {observer!r}: {attr} is async; observers are called synchronously"
            )
        if opts.get("wrapper") or opts.get("hookwrapper"):
            raise ValueError(
                f"observer {observer!r}: {attr} is a hook wrapper; observers are plain functions"
            )


def register(observer: object, name: str | None = None) -> None:
    """Register an observer object in this process (``ValueError`` for async or wrapper hooks)."""
    _refuse_unsupported(observer)
    get_plugin_manager().register(observer, name=name)


def unregister(observer: object) -> None:
    """Remove an observer registered with ``register``."""
    get_plugin_manager().unregister(observer)


def notify(hook_name: str, **kwargs: Any) -> None:
    """Call every implementation of ``hook_name``; an observer's exception is logged, not raised."""
    caller = getattr(get_plugin_manager().hook, hook_name)
    for impl in caller.get_hookimpls():
        try:
            impl.function(*(kwargs[arg] for arg in impl.argnames))
        except Exception:
            log.exception(
                "observer %s failed in %s; the operation goes on", impl.plugin_name, hook_name
            )


def has_observers(hook_name: str) -> bool:
    """Whether anyone listens, so hot paths can skip building the arguments."""
    return bool(getattr(get_plugin_manager().hook, hook_name).get_hookimpls())
