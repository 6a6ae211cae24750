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


@pytest_twisted.ensureDeferred
async def test_units_arriving_during_a_commit_go_together_and_fail_alone(tmp_path):
    """Group commit (imfed/node/store/unit.py): a lone unit goes at once; the units that arrive
    while it commits go next as one transaction, each in its own savepoint."""
    from imfed.node.store import events, users
    from imfed.node.store.unit import NodeStore
    from imfed.metrics import REGISTRY
    from imfed.storage import transaction
    from twisted.internet.defer import DeferredList

    from conftest import store_location

    db = Database(store_location(tmp_path, "group"), "node", reactor)
    db.startService()
    pokes = []

    class Hub:
        def poke(self, ids, events=None):
            pokes.append(set(ids))

    server = "group-commit-%s" % id(db)  # this store's own series in the metrics
    store = NodeStore(db, Hub(), reactor, server)

    def counted(name):
        return REGISTRY.get_sample_value("imfed_store_%s_total" % name, {"server": server})

    woke = []
    store.on_queued.append(lambda: woke.append(True))

    def add(work, phone):
        user = users.add_user(work, "node-a", phone, "U" + phone, "x", 1)
        events.emit(work, user.user_id, "hello", {"phone": phone}, 1)
        return user.user_id

    @transaction
    def add_then_fail(work, phone):
        users.add_user(work, "node-a", phone, "U" + phone, "x", 1)
        events.emit(work, phone + "@node-a", "hello", {}, 1)
        raise ValueError("refused after writing")

    try:
        units = [store.run(add, "100")]
        units += [store.run(add_then_fail if i == 3 else add, str(101 + i)) for i in range(6)]
        outcomes = await DeferredList(units, consumeErrors=True)
        assert (counted("commits"), counted("units")) == (2, 7)
        assert [ok for ok, _ in outcomes] == [True, True, True, True, False, True, True]
        assert outcomes[4][1].check(ValueError)
        assert outcomes[0][1] == "100@node-a" and outcomes[6][1] == "106@node-a"
        rows = await db.runQuery("SELECT phone FROM users ORDER BY phone")
        assert [r[0] for r in rows] == ["100", "101", "102", "103", "105", "106"]
        rows = await db.runQuery("SELECT user_id FROM events ORDER BY seq")
        assert [r[0] for r in rows] == ["%d@node-a" % p for p in (100, 101, 102, 103, 105, 106)]
        assert pokes == [{"100@node-a"}, {"%d@node-a" % p for p in (101, 102, 103, 105, 106)}]
        assert woke == []
        # A lone unit that fails (its own transaction), then a batch of a good and a bad one.
        failed = await DeferredList([store.run(add, "100"), store.run(add, "200"),
                                     store.run(add_then_fail, "300")], consumeErrors=True)
        assert [ok for ok, _ in failed] == [False, True, False]
        assert counted("commits") == 4
        rows = await db.runQuery("SELECT COUNT(*) FROM users")
        assert rows[0][0] == 7
    finally:
        db.stopService()
