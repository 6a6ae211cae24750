"""The store of a role through adbapi: SQLite by default (one writer connection, WAL, foreign
keys), or PostgreSQL when the role's ``database`` is a ``postgresql://`` URL
(imfed/storage/postgresql.py); one history of versioned schema files for both."""

from __future__ import annotations

import os
import re
import sqlite3
from importlib import resources
from typing import Any

from twisted.application.service import Service
from twisted.enterprise import adbapi

__all__ = ["Database", "StoreError", "check_integrity", "migrate", "schema_files", "transaction",
           "run_sync", "like_pattern", "writable", "days_left", "is_postgresql", "dialect_of",
           "write_lock", "begin_write", "safe_location"]

_FILE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_PG_FILE = re.compile(r"^(\d{3})_[a-z0-9_]+\.postgresql\.sql$")


def is_postgresql(location: str) -> bool:
    """Whether a role's store ``location`` (a file path or a URL) is PostgreSQL."""
    return location.startswith(("postgresql://", "postgres://"))


def dialect_of(cur) -> str:
    """"postgresql" or "sqlite": the store a cursor (or a unit of work) is on."""
    return getattr(cur, "dialect", "sqlite")


def begin_write(cur) -> None:
    """Begin a write transaction that holds the store's write lock from its first statement:
    SQLite's ``BEGIN IMMEDIATE`` (no other process, an operator's CLI say, writes in between);
    on PostgreSQL the advisory lock the write transactions of every process take turns on
    (postgresql.py).  Inside a transaction already under way (a ``@transaction`` function
    called by another, a unit of work in a batch) it does nothing: transactions compose.  A
    cursor that knows better (a PostgreSQL cursor, a unit of work) says how through its own
    ``begin_write``."""
    own = getattr(cur, "begin_write", None)
    if own is not None:
        own()
    elif not cur.connection.in_transaction:
        cur.execute("BEGIN IMMEDIATE")


def write_lock(cur) -> None:
    """Hold the store's write lock from here to the end of this transaction (SQLite's writer
    already holds it once it has written; on PostgreSQL the write transactions of every process
    take turns on one advisory lock).  For a write whose numbering must commit in order: an
    event's seq, an outbound item's."""
    if dialect_of(cur) == "postgresql":
        begin_write(cur)


class StoreError(RuntimeError):
    """A store the daemon must not start on (damaged, or from a newer imfed)."""


def _pragmas(conn) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a transaction is on disk when COMMIT returns (NORMAL, with WAL, may lose the last
    # ones at a power cut), so what we acknowledged to a peer or a user is never lost.  The
    # cost is one fsync per commit (docs/performance.md).
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")


def schema_files(role: str, dialect: str = "sqlite") -> list[tuple[int, str]]:
    """(version, SQL) of ``imfed/storage/schema/<role>/NNN_name.sql``, in order.  For
    PostgreSQL a version's ``NNN_name.postgresql.sql`` is taken instead where there is one, and
    the shared files' types are mapped (postgresql.schema_sql)."""
    folder = resources.files(__package__).joinpath("schema", role)
    out, own = [], {}
    for entry in folder.iterdir():
        m = _FILE.match(entry.name)
        if m:
            out.append((int(m.group(1)), entry.read_text("utf-8")))
        m = _PG_FILE.match(entry.name)
        if m:
            own[int(m.group(1))] = entry.read_text("utf-8")
    out.sort()
    if dialect == "postgresql":
        from .postgresql import schema_sql

        out = [(v, own[v] if v in own else schema_sql(sql)) for v, sql in out]
    versions = [v for v, _ in out]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError("schema files for %s are not numbered 001, 002, ...: %s"
                           % (role, versions))
    return out


def check_integrity(conn, path: str) -> None:
    """SQLite's quick_check of every page and index at start: a damaged store is refused with
    one clear line now, not found by the first request that reads the bad page (500)."""
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as e:
        raise StoreError("%s is damaged (%s): restore it from a backup" % (path, e)) from None
    if rows != [("ok",)]:
        detail = "; ".join(str(r[0]) for r in rows[:3])
        raise StoreError("%s is damaged (%s): restore it from a backup" % (path, detail))


def migrate(path: str, role: str) -> int:
    """Apply the role's schema files not yet applied; answer the version now in force.

    Runs synchronously at start, before the pool opens: a daemon never serves on a half-upgraded
    store.  An existing SQLite store is first copied to ``<path>.before-vNNN`` (NNN the version
    it goes to); on PostgreSQL the whole upgrade is one transaction, under a lock that makes
    processes starting together take turns.
    """
    if is_postgresql(path):
        return _migrate_postgresql(path, role)
    conn = sqlite3.connect(path)
    try:
        try:
            _pragmas(conn)
        except sqlite3.DatabaseError as e:
            raise StoreError("%s is damaged (%s): restore it from a backup" % (path, e)) \
                from None
        check_integrity(conn, path)
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        current = row[0] or 0
        files = schema_files(role)
        if current > len(files):
            raise StoreError("%s is at schema version %d, newer than this imfed knows (%d)"
                               % (path, current, len(files)))
        if 0 < current < len(files) and path != ":memory:":
            _keep_copy(conn, "%s.before-v%03d" % (path, len(files)))
        for version, sql in files[current:]:
            with conn:
                conn.executescript("BEGIN;" + sql + ";INSERT INTO schema_version VALUES (%d);"
                                   % version + "COMMIT;")
            current = version
        return current
    finally:
        conn.close()


def _migrate_postgresql(url: str, role: str) -> int:
    from . import postgresql

    try:
        conn = postgresql.connect(url, autocommit=True)
    except postgresql.Error as e:
        raise StoreError("cannot open the %s store at %s: %s"
                         % (role, safe_location(url), str(e).strip())) from None
    try:
        with conn.transaction():
            cur = conn.cursor()
            cur.execute("SELECT pg_advisory_xact_lock(?)", (postgresql.lock_key("migrate"),))
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            cur.execute("SELECT MAX(version) FROM schema_version")
            current = cur.fetchone()[0] or 0
            files = schema_files(role, "postgresql")
            if current > len(files):
                raise StoreError("%s is at schema version %d, newer than this imfed knows (%d)"
                                 % (safe_location(url), current, len(files)))
            for version, sql in files[current:]:
                # Several statements, untranslated (no parameters): a plain psycopg cursor.
                postgresql.psycopg.Cursor(conn).execute(sql)
                cur.execute("INSERT INTO schema_version VALUES (?)", (version,))
                current = version
        return current
    finally:
        conn.close()


def safe_location(url: str) -> str:
    """A database URL without its password, for messages."""
    return re.sub(r"(//[^:/@]*):[^@/]*@", r"\1:***@", url)


def _keep_copy(conn, target: str) -> None:
    """A copy of the store as it is, before its schema changes (SQLite's online backup):
    an upgrade that goes wrong can be undone by putting it back."""
    copy = sqlite3.connect(target)
    try:
        conn.backup(copy)
    finally:
        copy.close()


class _LostQuietly(adbapi.Connection):
    """A pooled connection to a database server whose loss (the server restarted, failed over,
    a network cut) is not a fault to log: adbapi's own logs a traceback or two at every
    transaction it rolls back on a dead connection.  This one drops the dead connection (the
    next transaction opens another) and lets the transaction's own error stand; the web layer
    answers it 503 and logs the outage once."""

    def rollback(self):
        try:
            self._connection.rollback()
            cursor = self._connection.cursor()
            cursor.execute(self._pool.good_sql)
            cursor.close()
            self._connection.commit()
        except Exception:
            self._pool.disconnect(self._connection)


class _ServerPool(adbapi.ConnectionPool):
    connectionFactory = _LostQuietly


class Database(Service):
    """The store of one role: ``<data_dir>/<role>.sqlite3``, or the PostgreSQL database at a
    ``postgresql://`` URL (``path`` either way: where run_sync and the CLI find it)."""

    def __init__(self, path: str, role: str, reactor, connections: int = 4) -> None:
        self.path, self.role = path, role
        self.dialect = "postgresql" if is_postgresql(path) else "sqlite"
        if self.dialect == "postgresql":
            self.version = migrate(path, role)
            self.pool: adbapi.ConnectionPool = _ServerPool(
                "imfed.storage.postgresql", path, cp_min=1, cp_max=connections,
                cp_reconnect=True, cp_good_sql="SELECT 1", cp_reactor=reactor)
            return
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.version = migrate(path, role)
        self.pool = adbapi.ConnectionPool(
            "sqlite3", path, cp_min=1, cp_max=1, check_same_thread=False,
            cp_openfun=_pragmas, cp_reactor=reactor)

    def runQuery(self, sql: str, args=()):
        return self.pool.runQuery(sql, args)

    def runOperation(self, sql: str, args=()):
        return self.pool.runOperation(sql, args)

    damaged: str | None = None
    """Why the store is known to be damaged (SQLite's "database disk image is malformed",
    met by any unit of work since the start), for /health; None while none was met."""

    def runInteraction(self, fn, *args, **kwargs):
        d = self.pool.runInteraction(fn, *args, **kwargs)
        d.addErrback(self._note_damage)
        return d

    def _note_damage(self, failure):
        if failure.check(sqlite3.DatabaseError) and "malformed" in str(failure.value):
            self.damaged = str(failure.value)
        return failure

    def read_now(self, fn, *args):
        """``fn(cursor, ...)`` synchronously, before the reactor runs (what a role loads at
        construction)."""
        return run_sync(self.path, fn, *args)

    def stopService(self):
        super().stopService()
        if self.pool.running:  # the reactor's own shutdown may have closed it already
            self.pool.close()


def _take_write_lock(cur) -> None:
    begin_write(cur)


async def writable(db, clock, timeout: float = 2.0) -> str:
    """"writable", or why not: the write lock taken (and given back) within ``timeout``
    seconds, and no unit of work has met a damaged store since the start.  A store that
    cannot be written (a disk gone read-only, another writer holding the lock, a pool that is
    gone) or is damaged (replaced under the daemon, say) fails, and /health answers in time
    whatever the store does."""
    if getattr(db, "damaged", None):
        return "damaged: %s (restore it from a backup, daemon stopped)" % db.damaged
    d = db.runInteraction(_take_write_lock)
    d.addTimeout(timeout, clock)
    try:
        await d
    except Exception as e:
        return "not writable: %s" % (str(e) or type(e).__name__)
    return "writable"


def days_left(certificate, clock) -> float:
    """Days until ``certificate`` expires, by ``clock``."""
    return (certificate.not_after.timestamp() - clock.seconds()) / 86400.0


def like_pattern(text: str) -> str:
    """A LIKE pattern for "contains ``text``", to be used with ``ESCAPE '\\'``."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def transaction(fn):
    """Mark ``fn(cursor, ...)`` as a whole write transaction: it starts with ``begin_write``, so
    its reads and writes hold SQLite's write lock from the first statement (no other process,
    an operator's CLI say, can write in between); on PostgreSQL, the write lock all processes
    share (postgresql.translate).  The runner commits or rolls back."""

    def txn(cur, *args, **kwargs):
        begin_write(cur)
        return fn(cur, *args, **kwargs)

    txn.__name__ = txn.__qualname__ = fn.__name__
    txn.__doc__ = fn.__doc__
    return txn


def run_sync(path: str, fn, *args, **kwargs):
    """Run ``fn(cursor, ...)`` on a store outside the reactor (the operator CLI), as adbapi's
    runInteraction would: commit on return, roll back on error."""
    if is_postgresql(path):
        import psycopg

        from . import postgresql

        try:
            conn: Any = postgresql.connect(path)
        except psycopg.OperationalError as e:
            # The operator's CLI: one line saying why, not a traceback (a wrong password, a
            # database that is not there, a server that is down).
            reason = (str(e).strip().splitlines() or ["cannot connect"])[-1]
            raise StoreError("cannot reach the PostgreSQL store %s: %s"
                             % (safe_location(path), reason)) from None
    else:
        conn = sqlite3.connect(path)
        _pragmas(conn)
    try:
        cur = conn.cursor()
        try:
            result = fn(cur, *args, **kwargs)
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
        return result
    finally:
        conn.close()
