"""Helpers for the test suite and the benchmarks, which run imfed on loopback: a listening port
nobody else will take, a config dict written as a TOML file, and a store in memory for tests
of the application layer without a reactor."""

from __future__ import annotations

import random
import secrets
import socket
import sqlite3
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twisted.internet.defer import fail, succeed

from .storage import schema_files

__all__ = ["free_port", "write_toml", "MemoryDatabase", "postgresql_database"]


def postgresql_database(server_url: str, name: str | None = None, fresh: bool = True) -> str:
    """A database on the PostgreSQL server that ``server_url`` reaches (any database of it):
    ``name`` (new and empty if ``fresh``, else as it is if it exists), or a new one with a
    random name; answers its URL.  What the suite gives each role it starts when
    ``IMFED_TEST_DATABASE`` is set, and what the benchmarks use."""
    import psycopg

    name = name or "imfed_%s" % secrets.token_hex(6)
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (name,)).fetchone()
        if exists and fresh:
            conn.execute("DROP DATABASE %s WITH (FORCE)" % name)
        if not exists or fresh:
            conn.execute("CREATE DATABASE %s" % name)
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path="/" + name))


class MemoryDatabase:
    """A role's schema in one in-memory SQLite connection, in place of :class:`Database`:
    each ``runInteraction`` runs at once, on the caller's thread, committed or rolled back as
    adbapi would, and answers a Deferred that has fired.  With ``task.Clock`` for time, the
    handlers, the outbox and the unit of work run in a test in microseconds, no reactor
    turning.  Given a ``postgresql://`` URL (the suite's PostgreSQL run), the same on one
    synchronous connection to that database."""

    path = ":memory:"
    dialect = "sqlite"

    def __init__(self, role: str, location: str | None = None) -> None:
        if location is not None and location.startswith("postgresql://"):
            from .storage import migrate, postgresql

            migrate(location, role)
            self.conn: Any = postgresql.connect(location)
            self.path, self.dialect = location, "postgresql"
            return
        self.conn = sqlite3.connect(":memory:")
        self.conn.execute("PRAGMA foreign_keys=ON")
        for _, sql in schema_files(role):
            self.conn.executescript(sql)

    def read_now(self, fn, *args, **kwargs):
        cur = self.conn.cursor()
        try:
            result = fn(cur, *args, **kwargs)
        except BaseException:
            self.conn.rollback()
            raise
        self.conn.commit()
        return result

    def runInteraction(self, fn, *args, **kwargs):
        try:
            return succeed(self.read_now(fn, *args, **kwargs))
        except Exception:
            return fail()


# Below Linux's ephemeral range (32768-60999): a port chosen here cannot be taken, between the
# choice and the listen, by one of the many outgoing connections a federation on loopback makes.
_LOW, _HIGH = 20000, 32767
_given: set[int] = set()


def free_port() -> int:
    """A loopback port free now and not handed out before by this process."""
    for _ in range(1000):
        port = random.randint(_LOW, _HIGH)
        if port in _given:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        _given.add(port)
        return port
    raise RuntimeError("no free loopback port between %d and %d" % (_LOW, _HIGH))


def write_toml(data: dict, path: str) -> str:
    """A config dict as a TOML file (flat tables of strings, numbers and booleans)."""

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        return '"%s"' % v if isinstance(v, str) else repr(v)

    lines = ["%s = %s" % (k, value(v)) for k, v in data.items() if not isinstance(v, dict)]
    for key, table in data.items():
        if isinstance(table, dict):
            lines.append("[%s]" % key)
            lines.extend("%s = %s" % (k, value(v)) for k, v in table.items())
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path
