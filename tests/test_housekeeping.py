"""What a node stops keeping: old client events, in small batches, and expired sessions."""

from __future__ import annotations

import sqlite3

import pytest_twisted

from conftest import ApiClient, add_user, join_node

DAY_MS = 86400 * 1000


def _rows(node, sql, *args):
    conn = sqlite3.connect(node.role.db.path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


@pytest_twisted.ensureDeferred
async def test_old_events_and_expired_sessions_go(management, tmp_path):
    node = await join_node(management, str(tmp_path / "a"), "node-a", event_retention_days=7)
    try:
        add_user(node, "100", "Alice")
        add_user(node, "101", "Bert")
        alice = await ApiClient(node, "100").login()
        bert = await ApiClient(node, "101").login()
        await alice.ok("POST", "messages", {"recvID": "101@node-a", "messageType": "text",
                                            "content": {"message": "recent"}})
        await bert.wait_event("message")
        recent = _rows(node, "SELECT seq FROM events ORDER BY seq")
        assert recent
        now = int(node.role.clock.seconds() * 1000)
        conn = sqlite3.connect(node.role.db.path)
        with conn:
            # 12,000 events from ten days ago (more than two batches), numbered before the
            # recent ones as they would have been, and Bert's session expired yesterday.
            conn.executemany(
                "INSERT INTO events (seq, user_id, type, payload, created_at) "
                "VALUES (?, '101@node-a', 'message', '{}', ?)",
                [(-20000 + i, now - 10 * DAY_MS + i) for i in range(12000)])
            conn.execute("UPDATE sessions SET expires_at = ? WHERE user_id = '101@node-a'",
                         (now - DAY_MS,))
        conn.close()
        assert len(_rows(node, "SELECT seq FROM events")) == 12000 + len(recent)

        await node.role.housekeeping.tick()

        assert _rows(node, "SELECT seq FROM events ORDER BY seq") == recent
        assert _rows(node, "SELECT user_id FROM sessions") == [("100@node-a",)]
        status, _ = await bert.call("GET", "me")
        assert status == 401
        assert (await alice.ok("GET", "me"))["userInfo"]["userID"] == "100@node-a"
        await node.role.housekeeping.tick()  # nothing more to do
        assert _rows(node, "SELECT seq FROM events ORDER BY seq") == recent
    finally:
        await node.stop()
