"""``imfed db``: a node moved from SQLite to PostgreSQL with every row (imfed db copy), and
``imfed db migrate`` on either store."""

from __future__ import annotations

import pytest
import pytest_twisted

from imfed.config import load
from imfed.storage import run_sync
from imfed.testing import postgresql_database, write_toml

from conftest import ApiClient, RunningNode, signed_up, table_names, wait_until
from test_node_delivery import _received
from test_operations import cli

pytestmark = pytest.mark.postgresql


def _everything(location: str) -> dict:
    """Every row of every table of a store, in a comparable form."""
    def read(cur):
        out = {}
        for table in table_names(cur):
            if table in ("schema_version", "seen_nonces"):
                continue
            cur.execute("SELECT * FROM %s" % table)
            out[table] = sorted(tuple(r) for r in cur.fetchall())
        return out

    return run_sync(location, read)


@pytest_twisted.ensureDeferred
async def test_a_node_moves_from_sqlite_to_postgresql_with_every_row(sqlite_pair, tmp_path,
                                                                     postgresql_server):
    a, b = sqlite_pair
    alice = await signed_up(a, "100", "Alice")
    bob = await signed_up(b, "200", "Bob")
    await alice.ok("POST", "friends/requests", {"userID": "200@node-b", "remark": "hi"})
    request = await bob.wait_event("friend_request")
    await bob.ok("POST", "friends/requests/%s/answer" % request["requestID"], {"agree": True})
    for i in range(30):
        await alice.ok("POST", "messages", {"recvID": "200@node-b", "messageType": "text",
                                            "content": {"message": "m%d" % i}})
    gid = (await alice.ok("POST", "groups", {"groupName": "搬家"}))["groupInfo"]["groupID"]
    await alice.ok("POST", "groups/%s/invite" % gid, {"userIDs": ["200@node-b"]})
    await wait_until(lambda: len(_received(b, "100@node-a")) == 30, what="B to have all 30")
    target = postgresql_database(postgresql_server)

    # Refused while the daemon runs: what it wrote after the copy would be lost.
    code, out = await cli("db", "copy", "--config", a.config_path, "--to", target)
    assert code == 1 and "stop the daemon first" in out, out
    # B goes away, so A's deliveries to it wait in A's queue: the queue moves too.
    await b.stop()
    for i in range(5):
        await alice.ok("POST", "messages", {"recvID": "200@node-b", "messageType": "text",
                                            "content": {"message": "queued%d" % i}})
    await a.stop()
    before = _everything(a.role.db.path)
    assert before["outbox"] and before["outbox_heads"] and before["friends"]

    code, out = await cli("db", "copy", "--config", a.config_path, "--to", target)
    assert code == 0, out
    assert "copied %d rows in " % sum(len(v) for t, v in before.items()
                                      if t != "outbox_heads") in out, out
    after = _everything(target)
    assert after == before  # outbox_heads too: PostgreSQL's triggers made the same heads
    # Not twice into the same database.
    code, out = await cli("db", "copy", "--config", a.config_path, "--to", target)
    assert code == 1 and "already holds rows" in out, out

    # The node runs on PostgreSQL from its config: same users, history, queue.
    data = {"data_dir": a.config.data_dir, "node": dict(_node_table(a), database=target)}
    write_toml(data, a.config_path)
    code, out = await cli("db", "migrate", "--config", a.config_path)
    assert code == 0 and "node store postgresql://" in out and "schema version" in out, out
    moved = RunningNode(load(a.config_path)).start()
    b = RunningNode(b.config).start()
    try:
        assert moved.role.db.dialect == "postgresql"
        alice = await ApiClient(moved, "100").login()
        history = await alice.ok("GET", "conversations/200@node-b/messages",
                                 params={"limit": "100"})
        assert len(history["messages"]) == 35
        texts = ["m%d" % i for i in range(30)] + ["queued%d" % i for i in range(5)]
        await wait_until(lambda: _received(b, "100@node-a") == texts, timeout=30,
                         what="the queued messages delivered from PostgreSQL")
        groups = await alice.ok("GET", "groups")
        assert [g["groupInfo"]["groupID"] for g in groups["groups"]] == [gid]
        assert [f["userID"] for f in (await alice.ok("GET", "friends"))["friends"]] == [
            "200@node-b"]
        await alice.ok("POST", "messages", {"recvID": "200@node-b", "messageType": "text",
                                            "content": {"message": "after the move"}})
        await wait_until(lambda: _received(b, "100@node-a")[-1:] == ["after the move"],
                         what="a new message")
    finally:
        await moved.stop()
        await b.stop()


def _node_table(node) -> dict:
    """The [node] table the test suite wrote for ``node`` (its imfed.toml)."""
    import tomllib

    with open(node.config_path, "rb") as f:
        return tomllib.load(f)["node"]


def test_migrate_on_a_missing_config_is_one_line(tmp_path):
    from imfed.cli import main

    assert main(["db", "migrate", "--config", str(tmp_path / "none.toml")]) == 1
