"""The outbox's lane heads, kept by triggers (schema 004), always match the queue itself; items
of an older queue survive the upgrades."""

from __future__ import annotations

import json
import random
import sqlite3

from imfed.node.store.outbox import heads
from imfed.storage import migrate, run_sync, schema_files
from imfed.wire import paths

from conftest import store_location


def _from_queue(cur, now_ms):
    """The lanes whose first item is due, read from the whole queue."""
    cur.execute("SELECT o.destination, o.lane FROM outbox o JOIN (SELECT MIN(seq) AS first "
                "FROM outbox GROUP BY destination, lane) h ON o.seq = h.first "
                "WHERE o.next_attempt <= ? ORDER BY o.seq", (now_ms,))
    return cur.fetchall()


def test_heads_follow_every_insert_delete_and_postponement(tmp_path):
    path = store_location(tmp_path, "node")  # the triggers of the store under test
    migrate(path, "node")

    def run(cur):
        rng = random.Random(4)
        seen_due = 0
        for step in range(3000):
            r = rng.random()
            if r < 0.5:
                cur.execute("INSERT INTO outbox (destination, lane, kind, payload, created_at, "
                            "next_attempt) VALUES (?, ?, 'chat', '{}', ?, ?)",
                            ("d%d" % rng.randint(0, 3), "l%d" % rng.randint(0, 5), step,
                             rng.randint(0, 100)))
            elif r < 0.8:  # delivered, or given up: any item, the head most often in practice
                cur.execute("SELECT seq FROM outbox ORDER BY seq LIMIT 1 OFFSET ?",
                            (rng.randint(0, 3),))
                row = cur.fetchone()
                if row:
                    cur.execute("DELETE FROM outbox WHERE seq = ?", (row[0],))
            elif r < 0.95:  # postponed
                cur.execute("SELECT seq FROM outbox ORDER BY random() LIMIT 1")
                row = cur.fetchone()
                if row:
                    cur.execute("UPDATE outbox SET next_attempt = ? WHERE seq = ?",
                                (rng.randint(0, 100), row[0]))
            else:  # a whole destination dropped at once
                cur.execute("DELETE FROM outbox WHERE destination = ?",
                            ("d%d" % rng.randint(0, 3),))
            now = rng.randint(0, 100)
            due = [tuple(r) for r in heads(cur, now, 10 ** 9)]
            assert due == [tuple(r) for r in _from_queue(cur, now)], "step %d" % step
            seen_due += bool(due)
        return seen_due

    assert run_sync(path, run) > 1000  # the comparison was not between two empty answers


def _store_at(tmp_path, version: int):
    """(path, open connection) of a node store at an older schema ``version``."""
    path = str(tmp_path / "node.sqlite3")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for number, sql in schema_files("node")[:version]:
        conn.executescript("BEGIN;" + sql + ";INSERT INTO schema_version VALUES (%d);COMMIT;"
                           % number)
    return path, conn


def test_heads_of_a_queue_that_existed_before_the_upgrade(tmp_path):
    """Schema 004 fills the heads from the items already queued."""
    path, conn = _store_at(tmp_path, 3)
    conn.executemany("INSERT INTO outbox (destination, lane, method, path, body, created_at, "
                     "next_attempt) VALUES (?, ?, 'POST', '/sns/chat', '{}', 0, ?)",
                     [("b", "x", 5), ("b", "x", 0), ("c", "y", 0), ("b", "z", 9)])
    conn.commit()
    conn.close()
    assert migrate(path, "node") >= 4
    conn = sqlite3.connect(path)
    assert heads(conn.cursor(), 5, 10 ** 9) == [("b", "x"), ("c", "y")]
    assert heads(conn.cursor(), 9, 10 ** 9) == [("b", "x"), ("c", "y"), ("b", "z")]
    # Issue #29, 15: an item due later than any backoff puts it was scheduled on a clock set
    # back since: due now.
    assert heads(conn.cursor(), 5, 8) == [("b", "x"), ("c", "y"), ("b", "z")]
    conn.close()


def test_items_queued_by_an_older_imfed_become_kinds_and_payloads(tmp_path):
    """Schema 006: an outbox row of method and path (imfed before the wire/paths.py split)
    is converted, the groupID of its query moved into its payload, and sent as before."""
    path, conn = _store_at(tmp_path, 5)
    rows = [("/sns/chat", '{"messageInfo":{}}'),
            ("/sns/notify/grpnotify?groupID=g1@node-a", '{"operType":1}'),
            ("/sns/invite/grprep?groupID=g2@node-b", '{"ownerID":"1@node-a","respResult":1}'),
            ("/sns/add/users", '{"userID":"2@node-b"}')]
    conn.executemany("INSERT INTO outbox (destination, lane, method, path, body, created_at, "
                     "next_attempt) VALUES ('node-b', 'x', 'POST', ?, ?, 0, 0)", rows)
    conn.commit()
    conn.close()
    migrate(path, "node")
    conn = sqlite3.connect(path)
    got = [(kind, json.loads(payload)) for kind, payload in
           conn.execute("SELECT kind, payload FROM outbox ORDER BY seq")]
    conn.close()
    assert got == [("chat", {"messageInfo": {}}),
                   ("notify_grpnotify", {"operType": 1, "groupID": "g1@node-a"}),
                   ("invite_grprep", {"ownerID": "1@node-a", "respResult": 1,
                                      "groupID": "g2@node-b"}),
                   ("add_users", {"userID": "2@node-b"})]
    for kind, payload in got:
        body, query = paths.queued(kind).split(payload)
        assert "groupID" not in body
