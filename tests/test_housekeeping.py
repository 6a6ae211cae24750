"""What a node stops keeping: old client events, in small batches, and expired sessions."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from conftest import join_node, node_rows, node_write, signed_up
from imfed.node.handlers.sessions import REMEMBER_SECONDS

DAY_MS = 86400 * 1000


@pytest_twisted.ensureDeferred
async def test_old_events_and_expired_sessions_go(management, tmp_path):
    node = await join_node(management, str(tmp_path / "a"), "node-a", event_retention_days=7)
    try:
        alice = await signed_up(node, "100", "Alice")
        bert = await signed_up(node, "101", "Bert")
        await alice.ok("POST", "messages", {"recvID": "101@node-a", "messageType": "text",
                                            "content": {"message": "recent"}})
        await bert.wait_event("message")
        recent = node_rows(node, "SELECT seq FROM events ORDER BY seq")
        assert recent
        now = int(node.role.clock.seconds() * 1000)
        # 12,000 events from ten days ago (more than two batches), numbered before the recent
        # ones as they would have been, and Bert's session expired yesterday.
        node_write(node, "INSERT INTO events (seq, user_id, type, payload, created_at) "
                   "VALUES (?, '101@node-a', 'message', '{}', ?)",
                   many=[(-20000 + i, now - 10 * DAY_MS + i) for i in range(12000)])
        node_write(node, "UPDATE sessions SET expires_at = ? WHERE user_id = '101@node-a'",
                   now - DAY_MS)
        assert len(node_rows(node, "SELECT seq FROM events")) == 12000 + len(recent)

        await node.role.housekeeping.tick()

        assert node_rows(node, "SELECT seq FROM events ORDER BY seq") == recent
        assert node_rows(node, "SELECT user_id FROM sessions") == [("100@node-a",)]
        # A session the daemon knows is asked about again after a second (REMEMBER_SECONDS).
        await deferLater(reactor, REMEMBER_SECONDS + 0.1, lambda: None)
        status, _ = await bert.call("GET", "me")
        assert status == 401
        assert (await alice.ok("GET", "me"))["userInfo"]["userID"] == "100@node-a"
        await node.role.housekeeping.tick()  # nothing more to do
        assert node_rows(node, "SELECT seq FROM events ORDER BY seq") == recent
    finally:
        await node.stop()
