"""The embedded metastore: one SQLite file (stdlib ``sqlite3``).

Layout of the file:

- ``kv``: the current state, one row per key (keys stored as UTF-8 BLOBs so the
  SQL byte order is exactly Python's code-point order and a prefix scan is a
  plain index range);
- ``changelog``: one row per revision (PUT or DELETE), the history a watch
  replays; compacted to the last ``changelog_retention`` revisions;
- ``meta``: the store revision, the compaction point and the schema version.

Durability: WAL journal mode with ``synchronous=FULL``, so a returned write has
been fsynced. Atomicity across processes: every write runs in a
``BEGIN IMMEDIATE`` transaction, which takes SQLite's single write lock before it
reads the revision or compares a ``mod_revision``, so two processes on one file
serialize and a compare-and-swap cannot be interleaved.

Watches: writes made through this handle wake the matching watches at once; a
watch also polls the change log every ``watch_poll_interval_ms`` to see writes
made by other processes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, TypeVar

from pydantic import Field

from walstream.errors import MetastoreError
from walstream.metastore.spi import (
    CompactedRevisionError,
    EventType,
    KeyValue,
    Metastore,
    MetastoreClosedError,
    Watch,
    WatchEvent,
)
from walstream.settings import WalstreamBaseSettings, driver_settings_config, load_driver_settings

__all__ = ["SQLiteMetastore", "SQLiteMetastoreSettings"]

T = TypeVar("T")

_SCHEMA_VERSION = 1
_PUT = 0
_DELETE = 1
# Events fetched per change-log query; a watch far behind catches up in steps.
_FETCH_LIMIT = 1000

_SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS kv (
    key BLOB PRIMARY KEY,
    value BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changelog (
    revision INTEGER PRIMARY KEY,
    kind INTEGER NOT NULL,
    key BLOB NOT NULL,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value)
    VALUES ('revision', 0), ('compacted', 0), ('schema_version', {_SCHEMA_VERSION});
COMMIT;
"""


class SQLiteMetastoreSettings(WalstreamBaseSettings):
    """Settings of the embedded SQLite metastore (``WALSTREAM_SQLITE_*``, ``[sqlite]``)."""

    model_config = driver_settings_config("sqlite")
    toml_table: ClassVar[str] = "sqlite"

    path: Path = Field(
        default=Path("walstream-data/meta.sqlite3"), description="The SQLite database file."
    )
    watch_poll_interval_ms: int = Field(
        default=100, gt=0, description="How often a watch looks for writes of other processes."
    )
    changelog_retention: int = Field(
        default=10_000, ge=1, description="How many recent revisions a watch can replay."
    )
    busy_timeout_ms: int = Field(
        default=30_000, ge=0, description="How long to wait for another process's write lock."
    )


def _key_bytes(key: str) -> bytes:
    if not isinstance(key, str):
        raise TypeError(f"metastore keys are str, got {type(key).__name__}")
    if not key:
        raise ValueError("metastore keys must not be empty")
    return key.encode("utf-8")


def _value_bytes(value: bytes) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"metastore values are bytes, got {type(value).__name__}")
    return bytes(value)


def _prefix_bounds(prefix: str) -> tuple[bytes, bytes | None]:
    """``[low, high)`` of the keys starting with ``prefix`` (``high`` None = no bound)."""
    if not isinstance(prefix, str):
        raise TypeError(f"metastore prefixes are str, got {type(prefix).__name__}")
    low = prefix.encode("utf-8")
    if not low:
        return low, None
    # UTF-8 never contains the byte 0xFF, so the last byte can always be
    # incremented: the result is the smallest byte string above every extension.
    return low, low[:-1] + bytes([low[-1] + 1])


def _range_clause(high: bytes | None) -> str:
    return "key >= ? AND key < ?" if high is not None else "key >= ?"


def _range_args(low: bytes, high: bytes | None) -> tuple[bytes, ...]:
    return (low, high) if high is not None else (low,)


class _SQLiteWatch(Watch):
    """A watch over one prefix; see :meth:`SQLiteMetastore.watch`."""

    def __init__(self, store: SQLiteMetastore, prefix: str, next_revision: int | None) -> None:
        self._store = store
        self._prefix = prefix
        self._bounds = _prefix_bounds(prefix)
        # None: "from the revision the store had when it was opened" (resolved in
        # the first fetch); see SQLiteMetastore.watch for why that is right.
        self._next = next_revision
        self._buffer: deque[WatchEvent] = deque()
        self._wake = asyncio.Event()
        self._closed = False
        self._store_closed = False

    @property
    def prefix(self) -> str:
        """The watched prefix."""
        return self._prefix

    def _notify(self) -> None:
        self._wake.set()

    def _on_store_closed(self) -> None:
        self._store_closed = True
        self._wake.set()

    async def __anext__(self) -> WatchEvent:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._store_closed:
                raise MetastoreClosedError("the metastore was closed under this watch")
            if self._buffer:
                return self._buffer.popleft()
            # Clear before fetching: a write that lands during the fetch sets the
            # event again, so we fetch once more instead of sleeping past it.
            self._wake.clear()
            events, nxt = await self._store._fetch_changes(self._bounds, self._next)
            self._next = nxt
            if events:
                self._buffer.extend(events)
                continue
            try:
                # asyncio.timeout, not wait_for: no helper task is created, so a
                # closed watch leaves nothing behind.
                async with asyncio.timeout(self._store._poll_interval):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def aclose(self) -> None:
        """Stop watching; a pending ``__anext__`` in another task returns at once."""
        self._closed = True
        self._buffer.clear()
        self._store._watches.discard(self)
        self._wake.set()


class SQLiteMetastore(Metastore):
    """The :class:`Metastore` on one SQLite file, shareable by several processes.

    The connection is opened lazily (or by ``open()`` / ``async with``). The
    constructor does no I/O, so it is safe to call on the event loop.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        watch_poll_interval_ms: int = 100,
        changelog_retention: int = 10_000,
        busy_timeout_ms: int = 30_000,
    ) -> None:
        if watch_poll_interval_ms <= 0:
            raise ValueError("watch_poll_interval_ms must be > 0")
        if changelog_retention < 1:
            raise ValueError("changelog_retention must be >= 1")
        if busy_timeout_ms < 0:
            raise ValueError("busy_timeout_ms must be >= 0")
        self._path = Path(path)
        self._poll_interval = watch_poll_interval_ms / 1000
        self._retention = changelog_retention
        self._busy_timeout = busy_timeout_ms / 1000
        # One connection guarded by a threading.Lock, used from asyncio.to_thread
        # workers. Why not one connection per thread: the default executor's
        # threads outlive us, so per-thread connections could not be closed by
        # close(); and all writes serialize on SQLite's write lock anyway. The
        # lock is a threading.Lock (not an asyncio one) because a cancelled
        # awaiter does not stop its worker thread: the lock must be held by the
        # thread for as long as it really uses the connection.
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        # Highest store revision this handle has observed (None until opened),
        # and the revision at open time. Written only by worker threads holding
        # self._lock; read on the loop (an int attribute read is atomic).
        self._revision: int | None = None
        self._open_revision = 0
        self._watches: weakref.WeakSet[_SQLiteWatch] = weakref.WeakSet()

    @classmethod
    def from_settings(cls, settings: SQLiteMetastoreSettings | None = None) -> SQLiteMetastore:
        """Build from settings (default: loaded from env and ``walstream.toml``)."""
        if settings is None:
            settings = load_driver_settings(SQLiteMetastoreSettings, {})
        return cls(
            settings.path,
            watch_poll_interval_ms=settings.watch_poll_interval_ms,
            changelog_retention=settings.changelog_retention,
            busy_timeout_ms=settings.busy_timeout_ms,
        )

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    def __repr__(self) -> str:
        return f"SQLiteMetastore({str(self._path)!r})"

    # --- plumbing (worker-thread side) -------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout,
            isolation_level=None,  # autocommit; transactions are explicit BEGINs
            check_same_thread=False,  # used from executor threads, under self._lock
        )
        try:
            mode = self._switch_to_wal(conn)
            if str(mode).lower() != "wal":
                raise MetastoreError(
                    f"{self._path}: cannot switch SQLite to WAL journal mode (got {mode!r}); "
                    f"is the file on a filesystem without shared-memory support?"
                )
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            version = self._meta(conn, "schema_version")
            if version != _SCHEMA_VERSION:
                raise MetastoreError(
                    f"{self._path}: metastore schema version {version} is not supported "
                    f"(this walstream reads version {_SCHEMA_VERSION})"
                )
            self._open_revision = self._meta(conn, "revision")
            self._revision = self._open_revision
        except BaseException:
            conn.close()
            raise
        return conn

    def _switch_to_wal(self, conn: sqlite3.Connection) -> object:
        """``PRAGMA journal_mode=WAL``, retried while another connection holds the file.

        SQLite answers "database is locked" to the journal-mode switch at once, without
        its busy handler, when another connection is opening the same fresh file; so
        several first opens at the same moment need this bounded retry (worker thread).
        """
        deadline = time.monotonic() + self._busy_timeout
        pause = 0.005
        while True:
            try:
                return conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    @staticmethod
    def _meta(conn: sqlite3.Connection, name: str) -> int:
        row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise MetastoreError(f"metastore is missing its {name!r} record; is the file corrupt?")
        return int(row[0])

    def _observe(self, revision: int) -> None:
        if self._revision is None or revision > self._revision:
            self._revision = revision

    def _locked(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            if self._conn is None:
                if self._closed:
                    raise MetastoreClosedError(f"{self!r} is closed")
                try:
                    self._conn = self._connect()
                except (sqlite3.Error, OSError) as exc:
                    raise MetastoreError(f"cannot open metastore {self._path}: {exc}") from exc
            try:
                return fn(self._conn)
            except sqlite3.Error as exc:
                raise MetastoreError(f"metastore {self._path}: {exc}") from exc

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise MetastoreClosedError(f"{self!r} is closed")
        return await asyncio.to_thread(self._locked, fn)

    @staticmethod
    def _read(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        # A deferred transaction makes the statements of one read see one snapshot.
        conn.execute("BEGIN")
        try:
            return fn(conn)
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def _write(
        self, conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], int | None]
    ) -> int | None:
        """Run ``fn`` (returns the revision it wrote, or None) in one write transaction."""
        # IMMEDIATE takes the database write lock before anything is read, which
        # is what makes compare-and-swap atomic across processes.
        conn.execute("BEGIN IMMEDIATE")
        try:
            revision = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if revision is not None:
            # Only once committed: a rolled-back revision number is reused by the
            # next write, and "watch from now" must not start past it.
            self._observe(revision)
        return revision

    def _record(self, conn: sqlite3.Connection, kind: int, key: bytes, value: bytes) -> int:
        """Take the next revision for one change and log it; call inside a write txn."""
        revision = self._meta(conn, "revision") + 1
        conn.execute(
            "INSERT INTO changelog (revision, kind, key, value) VALUES (?, ?, ?, ?)",
            (revision, kind, key, value),
        )
        conn.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (revision,))
        floor = revision - self._retention
        if floor > 0:
            # Keep the last `retention` revisions; the compaction point only moves
            # forward (another process may run with a longer retention).
            conn.execute(
                "UPDATE meta SET value = ? WHERE name = 'compacted' AND value < ?", (floor, floor)
            )
            conn.execute("DELETE FROM changelog WHERE revision <= ?", (floor,))
        return revision

    def _wake_watches(self, key: str) -> None:
        for watch in list(self._watches):
            if key.startswith(watch.prefix):
                watch._notify()

    # --- Metastore ---------------------------------------------------------------

    async def open(self) -> None:
        """Open (and if needed create) the database now."""
        await self._call(lambda conn: None)

    async def get(self, key: str) -> KeyValue | None:
        """The key's current value, or ``None`` if it does not exist."""
        k = _key_bytes(key)

        def op(conn: sqlite3.Connection) -> KeyValue | None:
            row = conn.execute(
                "SELECT value, create_revision, mod_revision FROM kv WHERE key = ?", (k,)
            ).fetchone()
            self._observe(self._meta(conn, "revision"))
            return None if row is None else KeyValue(key, bytes(row[0]), row[1], row[2])

        return await self._call(lambda conn: self._read(conn, op))

    async def put(self, key: str, value: bytes) -> int:
        """Set ``key`` unconditionally; returns the new store revision."""
        revision = await self._put(key, value, check=False, expected=None)
        assert revision is not None  # an unconditional put cannot fail its condition
        return revision

    async def put_if(self, key: str, expected_mod_revision: int | None, value: bytes) -> int | None:
        """Conditional put (see :meth:`Metastore.put_if`); atomic across processes."""
        if expected_mod_revision is not None and not isinstance(expected_mod_revision, int):
            raise TypeError("expected_mod_revision must be an int or None")
        return await self._put(key, value, check=True, expected=expected_mod_revision)

    async def _put(
        self, key: str, value: bytes, *, check: bool, expected: int | None
    ) -> int | None:
        k = _key_bytes(key)
        v = _value_bytes(value)

        def op(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "SELECT create_revision, mod_revision FROM kv WHERE key = ?", (k,)
            ).fetchone()
            if check:
                current = None if row is None else int(row[1])
                if current != expected:
                    return None
            revision = self._record(conn, _PUT, k, v)
            create = revision if row is None else int(row[0])
            conn.execute(
                "INSERT OR REPLACE INTO kv (key, value, create_revision, mod_revision) "
                "VALUES (?, ?, ?, ?)",
                (k, v, create, revision),
            )
            return revision

        revision = await self._call(lambda conn: self._write(conn, op))
        if revision is not None:
            self._wake_watches(key)
        return revision

    async def delete(self, key: str) -> bool:
        """Remove ``key``; ``True`` if it existed (only then is the revision bumped)."""
        k = _key_bytes(key)

        def op(conn: sqlite3.Connection) -> int | None:
            if conn.execute("DELETE FROM kv WHERE key = ?", (k,)).rowcount == 0:
                return None
            return self._record(conn, _DELETE, k, b"")

        revision = await self._call(lambda conn: self._write(conn, op))
        if revision is None:
            return False
        self._wake_watches(key)
        return True

    async def range(self, prefix: str, limit: int | None = None) -> list[KeyValue]:
        """Every key starting with ``prefix`` (``""`` = all), sorted by key, at most ``limit``."""
        if limit is not None and limit < 1:
            raise ValueError("limit must be >= 1 or None")
        low, high = _prefix_bounds(prefix)
        sql = (
            "SELECT key, value, create_revision, mod_revision FROM kv "
            f"WHERE {_range_clause(high)} ORDER BY key LIMIT ?"
        )
        args = (*_range_args(low, high), -1 if limit is None else limit)

        def op(conn: sqlite3.Connection) -> list[KeyValue]:
            rows = conn.execute(sql, args).fetchall()
            self._observe(self._meta(conn, "revision"))
            return [KeyValue(bytes(r[0]).decode("utf-8"), bytes(r[1]), r[2], r[3]) for r in rows]

        return await self._call(lambda conn: self._read(conn, op))

    async def current_revision(self) -> int:
        """The store's latest revision (0 for a never-written store)."""

        def op(conn: sqlite3.Connection) -> int:
            revision = self._meta(conn, "revision")
            self._observe(revision)
            return revision

        return await self._call(op)

    async def compacted_revision(self) -> int:
        """The newest revision no longer in the change log (0 if none was dropped)."""
        return await self._call(lambda conn: self._meta(conn, "compacted"))

    def watch(self, prefix: str, start_revision: int | None = None) -> Watch:
        """Changes under ``prefix`` in revision order (see :meth:`Metastore.watch`).

        Without ``start_revision`` the watch starts after the highest revision this
        handle has observed (by any call, or when it opened the file). Every write
        made through this handle after this call therefore has a higher revision
        and is seen; a write by another process that this handle had not yet
        observed may be seen too, which the contract allows (it raced the call).
        A compacted ``start_revision`` raises :class:`CompactedRevisionError` from
        the first ``__anext__``.
        """
        if self._closed:
            raise MetastoreClosedError(f"{self!r} is closed")
        if start_revision is not None and (
            not isinstance(start_revision, int) or start_revision < 1
        ):
            raise ValueError("start_revision must be an int >= 1 or None")
        if start_revision is None and self._revision is not None:
            start_revision = self._revision + 1
        # If the file is not open yet, no write of ours has happened: the first
        # fetch resolves the start to "after the revision seen at open time".
        watch = _SQLiteWatch(self, prefix, start_revision)
        self._watches.add(watch)
        return watch

    async def _fetch_changes(
        self, bounds: tuple[bytes, bytes | None], next_revision: int | None
    ) -> tuple[list[WatchEvent], int]:
        """Logged changes in ``bounds`` from ``next_revision``; and where to continue."""
        low, high = bounds
        sql = (
            "SELECT revision, kind, key, value FROM changelog "
            f"WHERE revision >= ? AND revision <= ? AND {_range_clause(high)} "
            "ORDER BY revision LIMIT ?"
        )

        def op(conn: sqlite3.Connection) -> tuple[list[WatchEvent], int]:
            start = self._open_revision + 1 if next_revision is None else next_revision
            current = self._meta(conn, "revision")
            compacted = self._meta(conn, "compacted")
            self._observe(current)
            if start <= compacted:
                raise CompactedRevisionError(start, compacted)
            rows = conn.execute(
                sql, (start, current, *_range_args(low, high), _FETCH_LIMIT)
            ).fetchall()
            events = [
                WatchEvent(
                    EventType.PUT if r[1] == _PUT else EventType.DELETE,
                    bytes(r[2]).decode("utf-8"),
                    bytes(r[3]),
                    int(r[0]),
                )
                for r in rows
            ]
            # A full page may stop short of `current`; otherwise every revision up
            # to `current` has been looked at (matching or not) and is skipped
            # next time. A start in the future stays where it is.
            nxt = events[-1].revision + 1 if len(rows) == _FETCH_LIMIT else max(start, current + 1)
            return events, nxt

        return await self._call(lambda conn: self._read(conn, op))

    async def close(self) -> None:
        """Close the file; open watches end with :class:`MetastoreClosedError`. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for watch in list(self._watches):
            watch._on_store_closed()
        self._watches.clear()

        def shut() -> None:
            # Taking the lock waits for a call already running in a worker thread.
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

        await asyncio.to_thread(shut)
