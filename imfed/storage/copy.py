"""``imfed db copy``: a role's SQLite store into an empty PostgreSQL database, every row, in one
PostgreSQL transaction (all or nothing), checked by counting both sides before it commits."""

from __future__ import annotations

import sqlite3
import time

from . import StoreError, begin_write, migrate, postgresql

__all__ = ["copy_to_postgresql", "DERIVED"]

DERIVED = {"outbox_heads"}
"""Tables PostgreSQL's triggers fill from the rows copied (not copied themselves)."""
SEEDED = {"acl_mode"}
"""Tables the schema itself fills (replaced by the source's rows)."""

_FIRST = ("users", "groups")  # what other tables' foreign keys name
_BATCH = 2000


def _tables(conn) -> list[str]:
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name != 'schema_version' ORDER BY name")]
    return [t for t in _FIRST if t in names] + [t for t in names if t not in _FIRST]


def copy_to_postgresql(source: str, target: str, role: str, progress=lambda line: None) -> dict:
    """Copy the SQLite store at ``source`` into the PostgreSQL database ``target`` (made
    current first; it must hold no rows).  Answers {"tables": {name: rows}, "rows": total,
    "seconds": elapsed}."""
    started = time.monotonic()
    version = migrate(source, role)  # the source brought to this imfed's schema first
    if migrate(target, role) != version:
        raise StoreError("the two stores are at different schema versions")
    src = sqlite3.connect("file:%s?mode=ro" % source, uri=True)
    dst = postgresql.connect(target)
    try:
        src.execute("BEGIN")  # one snapshot of the source for the whole copy
        tables = _tables(src)
        cur = dst.cursor()
        begin_write(cur)  # the write lock: no process writes meanwhile
        for table in tables:
            if table in SEEDED:
                cur.execute("DELETE FROM %s" % table)
                continue
            cur.execute("SELECT EXISTS (SELECT 1 FROM %s)" % table)
            if cur.fetchone()[0]:
                raise StoreError("the PostgreSQL database already holds rows (%s): copy into "
                                 "an empty one" % table)
        counts = {}
        for table in tables:
            if table in DERIVED:
                continue
            columns = [r[1] for r in src.execute("PRAGMA table_info(%s)" % table)]
            sql = "INSERT INTO %s (%s) VALUES (%s)" % (
                table, ", ".join(columns), ", ".join("?" * len(columns)))
            rows = src.execute("SELECT %s FROM %s" % (", ".join(columns), table))
            n = 0
            while True:
                batch = rows.fetchmany(_BATCH)
                if not batch:
                    break
                cur.executemany(sql, batch)
                n += len(batch)
            counts[table] = n
            progress("%-20s %9d rows" % (table, n))
        _restart_identities(cur)
        for table in tables:  # both sides agree, or nothing is committed
            expected = src.execute("SELECT COUNT(*) FROM %s" % table).fetchone()[0]
            cur.execute("SELECT COUNT(*) FROM %s" % table)
            got = cur.fetchone()[0]
            if got != expected:
                raise StoreError("%s: %d rows copied of %d" % (table, got, expected))
        dst.commit()
    except BaseException:
        dst.rollback()
        raise
    finally:
        dst.close()
        src.close()
    return {"tables": counts, "rows": sum(counts.values()),
            "seconds": time.monotonic() - started}


def _restart_identities(cur) -> None:
    """Each identity column (seq, gseq...) goes on after the highest value copied."""
    cur.execute("SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND is_identity = 'YES'")
    for table, column in cur.fetchall():
        cur.execute("SELECT MAX(%s) FROM %s" % (column, table))
        top = cur.fetchone()[0]
        if top is None:
            cur.execute("SELECT setval(pg_get_serial_sequence(?, ?), 1, false)", (table, column))
        else:
            cur.execute("SELECT setval(pg_get_serial_sequence(?, ?), CAST(? AS BIGINT))",
                        (table, column, top))
