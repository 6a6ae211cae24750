"""Durable delivery, access control and suspension between two nodes on loopback."""

from __future__ import annotations

import os
import sqlite3
import sys

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue

from imfed.management import review

from conftest import REPO, ApiClient, RunningNode, add_user, wait_until


def _received(node, sender: str) -> list[str]:
    conn = sqlite3.connect(node.role.db.path)
    try:
        rows = conn.execute("SELECT content FROM messages WHERE sender_id = ? ORDER BY seq",
                            (sender,)).fetchall()
    finally:
        conn.close()
    import json

    return [json.loads(r[0])["message"] for r in rows]


async def imfed(node, group: str, command: str, *args) -> tuple[int, str]:
    """``imfed GROUP COMMAND --config <node's file> ARGS`` as the operator would run it."""
    out, err, code = await getProcessOutputAndValue(
        sys.executable, ["-m", "imfed.cli", group, command, "--config", node.config_path, *args],
        env=dict(os.environ, PYTHONPATH=REPO), path=REPO)
    return code, (out + err).decode()


@pytest_twisted.ensureDeferred
async def test_hundred_messages_to_a_server_that_was_down(pair):
    a, b = pair
    add_user(a, "100", "Alice")
    add_user(b, "200", "Bob")
    alice = await ApiClient(a, "100").login()
    await b.stop()
    texts = ["m%03d" % i for i in range(100)]
    for text in texts:
        sent = await alice.ok("POST", "messages", {"recvID": "200@node-b",
                                                   "messageType": "text",
                                                   "content": {"message": text}})
        assert sent["message"]["state"] == "queued"
    b = RunningNode(b.config).start()
    try:
        await wait_until(lambda: len(_received(b, "100@node-a")) >= 100, timeout=30,
                         what="all 100 messages")
        assert _received(b, "100@node-a") == texts  # once each, in order
        bob = await ApiClient(b, "200").login()
        history = await bob.ok("GET", "conversations/100@node-a/messages",
                               params={"limit": "200"})
        assert [m["messageInfo"]["content"]["message"] for m in history["messages"]] == \
            texts[::-1]

        async def all_sent():
            answer = await alice.ok("GET", "conversations/200@node-b/messages",
                                    params={"limit": "200"})
            return all(m["state"] == "sent" for m in answer["messages"])

        await wait_until(all_sent, what="every message marked sent")
    finally:
        await b.stop()
        pair[1].service = b.service  # the fixture stops what is running


@pytest_twisted.ensureDeferred
async def test_access_control_both_ways_changed_at_run_time(pair):
    a, b = pair
    add_user(a, "100", "Alice")
    add_user(b, "200", "Bob")
    alice = await ApiClient(a, "100").login()
    bob = await ApiClient(b, "200").login()

    async def send(who, to, text):
        return await who.call("POST", "messages", {"recvID": to, "messageType": "text",
                                                   "content": {"message": text}})

    # B refuses A inbound: A's message is refused there and shown failed to Alice.
    code, out = await imfed(b, "acl", "mode", "in", "blacklist")
    assert code == 0, out
    code, out = await imfed(b, "acl", "add", "in", "blacklist", "node-a")
    assert code == 0, out
    await _expire(b)
    status, answer = await send(alice, "200@node-b", "blocked?")
    assert status == 200
    mid = answer["message"]["messageInfo"]["messageID"]
    failed = await alice.wait_event("delivery", match=lambda d: d["messageID"] == mid)
    assert failed["state"] == "failed" and "403" in failed["error"]
    assert _received(b, "100@node-a") == []

    # Off the list again: delivered, without a restart.
    code, out = await imfed(b, "acl", "remove", "in", "blacklist", "node-a")
    assert code == 0, out
    await _expire(b)
    status, answer = await send(alice, "200@node-b", "allowed")
    mid = answer["message"]["messageInfo"]["messageID"]
    sent = await alice.wait_event("delivery", match=lambda d: d["messageID"] == mid)
    assert sent["state"] == "sent" and _received(b, "100@node-a") == ["allowed"]

    # A whitelists outbound without B: Alice cannot even send.
    code, out = await imfed(a, "acl", "mode", "out", "whitelist")
    assert code == 0, out
    await _expire(a)
    status, answer = await send(alice, "200@node-b", "nope")
    assert status == 403 and answer["errcode"] == "refused_by_policy"
    code, out = await imfed(a, "acl", "add", "out", "whitelist", "node-b")
    assert code == 0, out
    await _expire(a)
    status, _ = await send(alice, "200@node-b", "whitelisted")
    assert status == 200

    # B blacklists A outbound: Bob cannot write to Alice; inbound from A still works.
    code, out = await imfed(b, "acl", "mode", "out", "blacklist")
    code, out = await imfed(b, "acl", "add", "out", "blacklist", "node-a")
    await _expire(b)
    status, answer = await send(bob, "100@node-a", "to alice")
    assert status == 403 and answer["errcode"] == "refused_by_policy"
    code, out = await imfed(b, "acl", "show")
    assert "outbound blacklist" in out and "node-a" in out
    await wait_until(lambda: "whitelisted" in _received(b, "100@node-a"), what="delivery")


async def _expire(node):
    """The daemon re-reads the rules at most a second after a change: wait that second."""
    from twisted.internet.task import deferLater

    await deferLater(reactor, node.role.acl.ttl + 0.1, lambda: None)


@pytest_twisted.ensureDeferred
async def test_suspended_server_is_refused_both_ways(pair, management):
    a, b = pair
    add_user(a, "100", "Alice")
    add_user(b, "200", "Bob")
    alice = await ApiClient(a, "100").login()
    bob = await ApiClient(b, "200").login()
    start = reactor.seconds()
    await management.role.store.run(review.set_status, "node-a", 1, "test", "audit",
                                    management.role.store.now_ms())
    # B hears of it through receivenotify and refreshes its directory.
    await wait_until(lambda: b.role.directory.active("node-a") is None, timeout=60,
                     what="B to see A suspended")
    assert reactor.seconds() - start < 60
    # A's signed calls are refused by B now.
    peer = a.role.directory.active("node-b")
    answer = await a.role.client.call("node-b", peer.address, "GET", "/sns/users",
                                      query={"userID": "200@node-b"})
    assert answer.status == 401
    # Messages both ways wait instead of going through.
    await alice.ok("POST", "messages", {"recvID": "200@node-b", "messageType": "text",
                                        "content": {"message": "while suspended"}})
    await bob.ok("POST", "messages", {"recvID": "100@node-a", "messageType": "text",
                                      "content": {"message": "to a suspended server"}})
    await wait_until(lambda: _outbox(b) and _outbox(a), what="both queued")
    assert _received(b, "100@node-a") == [] and _received(a, "200@node-b") == []
    # Resumed: both arrive.
    await management.role.store.run(review.set_status, "node-a", 0, "test", "resolved",
                                    management.role.store.now_ms())
    await a.role.directory.refresh()
    await wait_until(lambda: b.role.directory.active("node-a"), what="B to see A resumed")
    b.role.outbox.wake()
    await wait_until(lambda: _received(b, "100@node-a") == ["while suspended"], timeout=30,
                     what="A's message")
    await wait_until(lambda: _received(a, "200@node-b") == ["to a suspended server"],
                     timeout=30, what="B's message")


def _outbox(node) -> list:
    conn = sqlite3.connect(node.role.db.path)
    try:
        return conn.execute("SELECT destination, last_error FROM outbox").fetchall()
    finally:
        conn.close()
