"""SQLite through adbapi: one writer connection, WAL, foreign keys, versioned schema files."""

from __future__ import annotations

import os
import re
import sqlite3
from importlib import resources

from twisted.application.service import Service
from twisted.enterprise import adbapi

__all__ = ["Database", "StoreError", "check_integrity", "migrate", "schema_files", "transaction",
           "run_sync", "like_pattern", "writable", "days_left"]

_FILE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


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


def schema_files(role: str) -> list[tuple[int, str]]:
    """(version, SQL) of ``imfed/storage/schema/<role>/NNN_name.sql``, in order."""
    folder = resources.files(__package__).joinpath("schema", role)
    out = []
    for entry in folder.iterdir():
        m = _FILE.match(entry.name)
        if m:
            out.append((int(m.group(1)), entry.read_text("utf-8")))
    out.sort()
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
    store.  An existing store is first copied to ``<path>.before-vNNN`` (NNN the version it
    goes to).
    """
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


def _keep_copy(conn, target: str) -> None:
    """A copy of the store as it is, before its schema changes (SQLite's online backup):
    an upgrade that goes wrong can be undone by putting it back."""
    copy = sqlite3.connect(target)
    try:
        conn.backup(copy)
    finally:
        copy.close()


class Database(Service):
    """The store of one role: ``<data_dir>/<role>.sqlite3``."""

    def __init__(self, path: str, role: str, reactor) -> None:
        self.path, self.role = path, role
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

    def runInteraction(self, fn, *args, **kwargs):
        return self.pool.runInteraction(fn, *args, **kwargs)

    def read_now(self, fn, *args):
        """``fn(cursor, ...)`` synchronously, before the reactor runs (what a role loads at
        construction)."""
        return run_sync(self.path, fn, *args)

    def stopService(self):
        super().stopService()
        if self.pool.running:  # the reactor's own shutdown may have closed it already
            self.pool.close()


def _take_write_lock(cur) -> None:
    cur.execute("BEGIN IMMEDIATE")


async def writable(db, clock, timeout: float = 2.0) -> str:
    """"writable", or why not: the write lock taken (and given back) within ``timeout``
    seconds.  A store that cannot be written (a disk gone read-only, another writer holding
    the lock, a pool that is gone) fails, and /health answers in time whatever the store
    does."""
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
    """Mark ``fn(cursor, ...)`` as a whole write transaction: it starts with BEGIN IMMEDIATE, so
    its reads and writes hold SQLite's write lock from the first statement (no other process,
    an operator's CLI say, can write in between).  The runner commits or rolls back."""

    def txn(cur, *args, **kwargs):
        cur.execute("BEGIN IMMEDIATE")
        return fn(cur, *args, **kwargs)

    txn.__name__ = txn.__qualname__ = fn.__name__
    txn.__doc__ = fn.__doc__
    return txn


def run_sync(path: str, fn, *args, **kwargs):
    """Run ``fn(cursor, ...)`` on a store outside the reactor (the operator CLI), as adbapi's
    runInteraction would: commit on return, roll back on error."""
    conn = sqlite3.connect(path)
    try:
        _pragmas(conn)
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
