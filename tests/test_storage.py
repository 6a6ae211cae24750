"""Versioned schema files and the adbapi pool settings."""

from __future__ import annotations

import sqlite3

import pytest
import pytest_twisted
from twisted.internet import reactor

from imfed.storage import Database, migrate, schema_files


def test_migrate_applies_each_version_once(tmp_path):
    path = str(tmp_path / "m.sqlite3")
    latest = len(schema_files("management"))
    assert migrate(path, "management") == latest
    assert migrate(path, "management") == latest
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == latest
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute("INSERT INTO schema_version VALUES (999)")
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        migrate(path, "management")


@pytest_twisted.ensureDeferred
async def test_pool_connections_enforce_foreign_keys(tmp_path):
    db = Database(str(tmp_path / "n.sqlite3"), "node", reactor)
    db.startService()
    try:
        rows = await db.runQuery("PRAGMA foreign_keys")
        assert rows == [(1,)]
        rows = await db.runQuery("PRAGMA journal_mode")
        assert rows == [("wal",)]
    finally:
        db.stopService()


@pytest_twisted.ensureDeferred
async def test_services_stop_one_at_a_time_last_first():
    """The store is closed only after what was added after it has finished stopping."""
    from twisted.application.service import Service
    from twisted.internet.defer import Deferred

    from imfed.listening import InOrder

    log, slow_stop = [], Deferred()

    class Recorder(Service):
        def __init__(self, name, wait=None):
            self.name, self.wait = name, wait

        def stopService(self):
            super().stopService()
            log.append("stopping " + self.name)
            if self.wait is not None:
                return self.wait.addCallback(lambda _: log.append("stopped " + self.name))
            log.append("stopped " + self.name)

    top = InOrder()
    for service in (Recorder("store"), Recorder("timer", slow_stop), Recorder("listener")):
        service.setServiceParent(top)
    top.startService()
    stopping = top.stopService()
    assert log == ["stopping listener", "stopped listener", "stopping timer"]
    slow_stop.callback(None)
    await stopping
    assert log[3:] == ["stopped timer", "stopping store", "stopped store"]
