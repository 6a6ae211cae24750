"""Retention and purge (issue #30): housekeeping removes history, uploads and copies of other
servers' files once older than the node's retention, keeping what is still queued; ``imfed
purge`` removes a user's or a conversation's data at once, audited."""

from __future__ import annotations

import json
import os

import pytest_twisted
import treq

from conftest import acquainted, join_node, node_rows, node_write, signed_up
from imfed.metrics import REGISTRY
from test_groups import make_group
from test_node_delivery import imfed

DAY_MS = 86400 * 1000


async def upload(client, data: bytes, name: str) -> str:
    response = await treq.post(client.node.client_url + "files", data=data,
                               params={"name": name},
                               headers={"Authorization": "Bearer " + client.token})
    answer = json.loads((await treq.content(response)).decode())
    assert response.code == 200, answer
    return answer["fileID"]


async def download(client, file_id: str) -> tuple[int, bytes]:
    response = await treq.get(client.node.client_url + "files/" + file_id,
                              headers={"Authorization": "Bearer " + client.token})
    return response.code, await treq.content(response)


async def send_file(sender, recv: str, file_id: str) -> None:
    await sender.ok("POST", "messages", {"recvID": recv, "messageType": "file",
                                         "content": {"fileID": file_id}})


def purged(kind: str) -> float:
    return REGISTRY.get_sample_value("imfed_purged_total",
                                     {"server": "node-a", "kind": kind}) or 0.0


def disk_files(node) -> set[str]:
    return {row[0] for row in node_rows(node, "SELECT path FROM files WHERE path IS NOT NULL")}


@pytest_twisted.ensureDeferred
async def test_housekeeping_purges_what_retention_no_longer_keeps(management, tmp_path):
    a = await join_node(management, str(tmp_path / "a"), "node-a", message_retention_days=7,
                        file_retention_days=7, file_cache_days=7)
    b = await join_node(management, str(tmp_path / "b"), "node-b")
    try:
        await acquainted(a, b)
        alice = await signed_up(a, "100", "Alice")
        amy = await signed_up(a, "101", "Amy")
        bob = await signed_up(b, "200", "Bob")
        # Bob's file, fetched by node-a when Alice downloads it (a copy); Alice's upload.
        theirs = await upload(bob, b"bob's report", "report.txt")
        await send_file(bob, "100@node-a", theirs)
        await alice.wait_event("message")
        assert await download(alice, theirs) == (200, b"bob's report")
        ours = await upload(alice, b"alice's notes", "notes.txt")
        await send_file(alice, "200@node-b", ours)
        await bob.wait_event("message")
        await alice.ok("POST", "messages", {"recvID": "200@node-b", "messageType": "text",
                                            "content": {"message": "old"}})
        gid = await make_group(alice, "team", [amy])
        await alice.ok("POST", "groups/%s/messages" % gid,
                       {"messageType": "text", "content": {"message": "old in group"}})
        await amy.wait_event("group_message")
        stored = disk_files(a)
        assert len(stored) == 2 and all(os.path.exists(p) for p in stored)

        # All of it ten days old; then one message of today, and one from ten days ago
        # still queued for its recipient's server.
        for table in ("messages", "group_messages", "files", "group_log"):
            node_write(a, "UPDATE %s SET created_at = created_at - ?" % table, 10 * DAY_MS)
        assert node_rows(a, "SELECT COUNT(*) FROM group_log") == [(1,)]  # Amy joined
        await alice.ok("POST", "messages", {"recvID": "200@node-b", "messageType": "text",
                                            "content": {"message": "today"}})
        node_write(a, "INSERT INTO messages (message_id, chat_type, sender_id, recv_id, "
                   "conversation, message_type, content, created_at, state) VALUES "
                   "('q1@node-a', 1, '100@node-a', '300@node-c', '100@node-a|300@node-c', "
                   "'text', '{\"message\":\"queued\"}', ?, 'queued')",
                   int(a.role.clock.seconds() * 1000) - 10 * DAY_MS)
        before = {k: purged(k) for k in ("messages", "groupMessages", "files", "cachedFiles")}

        await a.role.housekeeping.tick()

        left = node_rows(a, "SELECT content, state FROM messages ORDER BY seq")
        assert left == [('{"message":"today"}', "sent"), ('{"message":"queued"}', "queued")] \
            or left == [('{"message":"today"}', "received"),
                        ('{"message":"queued"}', "queued")]
        assert node_rows(a, "SELECT COUNT(*) FROM group_messages") == [(0,)]
        assert node_rows(a, "SELECT COUNT(*) FROM group_log") == [(0,)]  # its lines with it
        # Alice's upload is gone whole; the copy of Bob's file lost its bytes only.
        assert node_rows(a, "SELECT file_id FROM files WHERE file_id = ?", ours) == []
        assert node_rows(a, "SELECT path FROM files WHERE file_id = ?", theirs) == [(None,)]
        assert not any(os.path.exists(p) for p in stored)
        # node-b had not fetched Alice's file: its origin no longer keeps it.
        assert (await download(bob, ours))[0] == 404
        assert {k: purged(k) - before[k] for k in before} == {
            "messages": 3, "groupMessages": 1, "files": 1, "cachedFiles": 1}
        # The copy is fetched again from its origin when asked for.
        assert await download(alice, theirs) == (200, b"bob's report")

        await a.role.housekeeping.tick()  # nothing more to do
        assert len(node_rows(a, "SELECT seq FROM messages")) == 2
    finally:
        await b.stop()
        await a.stop()


@pytest_twisted.ensureDeferred
async def test_imfed_purge_user_and_conversation(pair):
    a, b = pair
    alice = await signed_up(a, "100", "Alice")
    amy = await signed_up(a, "101", "Amy")
    bob = await signed_up(b, "200", "Bob")
    file_id = await upload(alice, b"alice's file", "a.txt")
    await send_file(alice, "200@node-b", file_id)
    await bob.wait_event("message")
    assert await download(bob, file_id) == (200, b"alice's file")  # node-b keeps a copy
    for text in ("one", "two"):
        await alice.ok("POST", "messages", {"recvID": "101@node-a", "messageType": "text",
                                            "content": {"message": text}})
    await bob.ok("POST", "messages", {"recvID": "100@node-a", "messageType": "text",
                                      "content": {"message": "hi Alice"}})
    await alice.wait_event("message", match=lambda m: m["messageInfo"]["senderID"] ==
                           "200@node-b")
    await amy.ok("POST", "messages", {"recvID": "200@node-b", "messageType": "text",
                                      "content": {"message": "Amy to Bob"}})
    path = disk_files(a).pop()

    code, out = await imfed(a, "purge", "user", "100")
    assert code != 0 and "--yes" in out
    assert len(node_rows(a, "SELECT seq FROM messages")) == 5  # nothing removed

    code, out = await imfed(a, "purge", "conversation", "101", "200@node-b", "--yes")
    assert code == 0, out
    assert "1 messages" in out
    assert node_rows(a, "SELECT COUNT(*) FROM messages WHERE sender_id = '101@node-a' AND "
                     "recv_id = '200@node-b'") == [(0,)]

    code, out = await imfed(a, "purge", "user", "100", "--yes")
    assert code == 0, out
    assert "4 messages" in out and "1 files" in out
    assert node_rows(a, "SELECT COUNT(*) FROM messages") == [(0,)]
    assert node_rows(a, "SELECT COUNT(*) FROM files") == [(0,)]
    assert not os.path.exists(path)
    # Alice's account stays (imfed user del removes it), with nothing left in it.
    assert (await alice.ok("GET", "conversations"))["conversations"] == []
    code, out = await imfed(a, "node", "audit", "--json")
    actions = [(e["action"], e["subject"], e["detail"]) for e in json.loads(out)]
    assert ("purge-conversation", "101@node-a|200@node-b",
            {"messages": 1, "groupMessages": 0, "files": 0, "cachedFiles": 0}) in actions
    assert ("purge-user", "100@node-a",
            {"messages": 4, "groupMessages": 0, "files": 1, "cachedFiles": 0}) in actions
    # The copy node-b fetched is node-b's.
    assert await download(bob, file_id) == (200, b"alice's file")
