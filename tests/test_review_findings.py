"""The security review's findings (issue: hardening), each as what an attacker tried and what
must now happen instead.  Limits on bodies, connections and answers: test_limits.py; logins:
test_login.py; files and the store at start: test_faults.py."""

from __future__ import annotations

import pytest_twisted

from conftest import (add_user, json_of, node_rows, node_write, signed_up,
                      start_management, wait_until, join_node)
from test_groups import make_group
from test_management import M, Applicant
from test_node_input import message


async def federation_call(frm, to, method, path, body=None, query=None):
    peer = frm.role.directory.get(to.server_id)
    return await frm.role.client.call(to.server_id, peer.address, method, path, body, query)


@pytest_twisted.ensureDeferred
async def test_search_refuses_control_characters_and_degenerate_queries(pair):
    a, b = pair
    alice = await signed_up(a, "100", "Alice")
    add_user(b, "200", "Bob")
    add_user(b, "201", "Bobby")
    for q in ("\x00", "a\x00", "\u200b", "%", "  ", "_%_", "\x1b[2J"):
        status, answer = await alice.call("GET", "users/search", params={"q": q})
        assert (status, answer["errcode"]) == (400, "bad_q"), (q, answer)
        remote = await federation_call(a, b, "GET", "/sns/find/users", query={"queryStr": q})
        assert (remote.status, remote.body["errcode"]) == (400, "bad_queryStr"), (q, remote)
    # One character finds an exact phone number, not every name holding that letter.
    remote = await federation_call(a, b, "GET", "/sns/find/users", query={"queryStr": "B"})
    assert remote.ok and remote.body["users"] == []
    remote = await federation_call(a, b, "GET", "/sns/find/users", query={"queryStr": "Bob"})
    assert sorted(u["userID"] for u in remote.body["users"]) == ["200@node-b", "201@node-b"]


@pytest_twisted.ensureDeferred
async def test_a_master_cannot_grant_our_users_a_local_private_file(pair):
    """notify/grpchat naming one of B's own files (Bob's private upload) must not entitle
    Carol, B's other user, to it; nor may a server send messages for a group B holds no
    view of, or to users who are not members."""
    a, b = pair
    alice = await signed_up(a, "100", "Alice")
    bob = await signed_up(b, "200", "Bob")
    carol = await signed_up(b, "201", "Carol")
    uploaded = await bob.ok("POST", "files?name=secret.txt", b"Bob's private notes")
    file_id = uploaded["fileID"]
    before = node_rows(b, "SELECT * FROM file_access ORDER BY file_id, user_id")
    attack = {"userIDs": ["201@node-b"], "messageInfo": message(
        type=2, recvID="g0000000000001@node-a", messageType="file", messageID="m1@node-a",
        content={"fileID": file_id, "size": uploaded["size"], "md5": uploaded["md5"],
                 "name": "x"})}
    # No such group here: refused.
    answer = await federation_call(a, b, "POST", "/sns/notify/grpchat", {
        "userIDs": ["201@node-b"], "messageInfo": message(
            type=2, recvID="g0000000000001@node-a", messageID="m0@node-a")},
        {"groupID": "g0000000000001@node-a"})
    assert (answer.status, answer.body["errcode"]) == (404, "unknown_group")
    # A real group with Carol in it: a fileID of B's own is still refused.
    gid = await make_group(alice, "team", [carol])
    attack["messageInfo"]["recvID"] = gid
    answer = await federation_call(a, b, "POST", "/sns/notify/grpchat", attack,
                                   {"groupID": gid})
    assert (answer.status, answer.body["errcode"]) == (400, "bad_fileID")
    status, answer = await carol.call("GET", "files/" + file_id)
    assert status == 404
    # Only members are shown a group message: Bob is not one.
    text = {"userIDs": ["200@node-b"], "messageInfo": message(
        type=2, recvID=gid, messageID="m2@node-a")}
    answer = await federation_call(a, b, "POST", "/sns/notify/grpchat", text, {"groupID": gid})
    assert (answer.status, answer.body["errcode"]) == (403, "not_member")
    # A membership change adding Bob, who was never invited, changes nothing.
    answer = await federation_call(a, b, "POST", "/sns/notify/grpnotify", {
        "operType": 1, "groupInfo": {"groupID": gid, "groupName": "team"},
        "users": [{"userID": "200@node-b"}]}, {"groupID": gid})
    assert answer.ok
    assert node_rows(b, "SELECT user_id FROM group_members WHERE group_id = ?", gid) == \
        [("201@node-b",)]
    assert not node_rows(b, "SELECT 1 FROM file_access WHERE file_id = ? AND user_id != "
                            "'200@node-b'", file_id)
    assert [r for r in before if r[0] == file_id] == [(file_id, "200@node-b")]


@pytest_twisted.ensureDeferred
async def test_a_remote_recall_after_the_window_is_refused(management, tmp_path):
    a = await join_node(management, str(tmp_path / "a"), "node-a")
    b = await join_node(management, str(tmp_path / "b"), "node-b", recall_window_seconds=1,
                        recall_grace_seconds=1)
    try:
        await a.role.refresher.refresh()
        await wait_until(lambda: a.role.directory.active("node-b") and
                         b.role.directory.active("node-a"), what="directories")
        add_user(a, "100", "Alice")
        add_user(b, "200", "Bob")
        sent = await federation_call(a, b, "POST", "/sns/chat", {"messageInfo": message()})
        assert sent.ok
        # Made to look two minutes old.
        node_write(b, "UPDATE messages SET created_at = created_at - 120000")
        repeal = message(messageType="repeal", content=None)
        answer = await federation_call(a, b, "POST", "/sns/chat", {"messageInfo": repeal})
        assert (answer.status, answer.body["errcode"]) == (409, "recall_window_passed")
        assert node_rows(b, "SELECT recalled FROM messages") == [(0,)]
    finally:
        await b.stop()
        await a.stop()


@pytest_twisted.ensureDeferred
async def test_malformed_numbers_and_deep_json_answer_400(pair):
    a, b = pair
    alice = await signed_up(a, "100", "Alice")
    add_user(b, "200", "Bob")
    for params in ({"since": "²"}, {"wait": "١"}, {"since": "9" * 40}):
        status, answer = await alice.call("GET", "events", params=params)
        assert status == 400 and answer["code"] == 1, (params, answer)
    deep = b'{"recvID": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    status, answer = await alice.call("POST", "messages", deep)
    assert (status, answer["errcode"]) == (400, "malformed_json")
    answer = await federation_call(a, b, "POST", "/sns/chat", {"messageInfo": message(
        type="²")})
    assert (answer.status, answer.body["errcode"]) == (400, "bad_type")
    answer = await federation_call(a, b, "POST", "/sns/rsp/users", {
        "userID": "200@node-b", "ownerID": "100@node-a", "isAgree": "١"})
    assert (answer.status, answer.body["errcode"]) == (400, "bad_isAgree")
    nested = {"messageInfo": message()}
    for _ in range(40):
        nested = {"x": nested}
    answer = await federation_call(a, b, "POST", "/sns/chat", nested)
    assert (answer.status, answer.body["errcode"]) == (400, "malformed_json")


@pytest_twisted.ensureDeferred
async def test_management_refuses_lookalikes_shared_addresses_and_application_floods(tmp_path):
    running = start_management(str(tmp_path / "m"), apply_per_source_per_hour=5)
    try:
        first = Applicant("node-a", str(tmp_path / "a"), running,
                          address="https://im.example:9443")
        await first.apply()
        # Same address, another serverId: refused while node-a's application waits...
        status, answer = await Applicant("node-x", str(tmp_path / "x"), running,
                                         address="https://IM.example:9443/").post(
            M + "apply", Applicant("node-x", "", running,
                                   address="https://IM.example:9443/").body())
        assert (status, answer["errcode"]) == (409, "address_taken"), answer
        # ...and a serverId differing only in case.
        upper = Applicant("NODE-A", str(tmp_path / "A"), running)
        status, answer = await upper.post(M + "apply", upper.body())
        assert (status, answer["errcode"]) == (409, "server_id_lookalike"), answer
        # Five attempts an hour from one address, then 429 with Retry-After.
        for i in range(2):
            await Applicant("node-%d" % i, str(tmp_path / str(i)), running).apply()
        extra = Applicant("node-z", str(tmp_path / "z"), running)
        status, answer = await extra.post(M + "apply", extra.body())
        assert (status, answer["errcode"]) == (429, "throttled"), answer
        pending = [t for t, rows in running.db_snapshot() if t == "applications"]
        assert pending
    finally:
        await running.service.stopService()


@pytest_twisted.ensureDeferred
async def test_membership_comes_from_the_masters_answer_without_a_grpnotify(pair):
    """A master that answers code 0 to our user's agreement but never sends grpnotify (the
    standard keeps member servers' state minimal) still leaves our user able to post."""
    a, b = pair
    alice = await signed_up(a, "100", "Alice")
    bob = await signed_up(b, "200", "Bob")
    gid = (await alice.ok("POST", "groups", {"groupName": "quiet"}))["groupInfo"]["groupID"]
    # The master's grpnotify to B is lost: A's outbox stops before Bob agrees.
    await alice.ok("POST", "groups/%s/invite" % gid, {"userIDs": ["200@node-b"]})
    invitation = await bob.wait_event("group_invitation")
    await a.role.outbox.stopService()
    await bob.ok("POST", "groups/invitations/%s/answer" % invitation["invitationID"],
                 {"agree": True})
    await wait_until(lambda: node_rows(a, "SELECT user_id FROM group_members WHERE "
                                          "group_id = ? AND user_id = '200@node-b'", gid),
                     what="Bob a member at the master")
    node_write(a, "DELETE FROM outbox")  # the grpnotify announcing Bob: never sent
    joined = await bob.wait_event("group_joined")
    assert joined["groupID"] == gid
    assert node_rows(b, "SELECT user_id FROM group_members WHERE group_id = ?", gid) == \
        [("200@node-b",)]
    a.role.outbox.startService()
    await bob.ok("POST", "groups/%s/messages" % gid, {"messageType": "text",
                                                      "content": {"message": "hi all"}})
    await wait_until(lambda: node_rows(a, "SELECT 1 FROM group_messages WHERE group_id = ?",
                                       gid), what="Bob's message at the master")


@pytest_twisted.ensureDeferred
async def test_a_signed_request_replayed_after_the_receiver_restarts_is_refused(pair):
    """Within the ±300 s window, after a clean restart (nonces kept) and after a crash (no
    nonces kept: requests signed before the start are refused)."""
    import json as _json
    import os

    from twisted.internet import reactor

    from conftest import PlainClientPolicy, RunningNode, http
    from imfed.crypto.signing import sign_request

    a, b = pair
    add_user(b, "200", "Bob")
    n = a.config.node
    policy = PlainClientPolicy(n.ca_file, n.cert_file, n.key_file)
    url = "https://127.0.0.1:%d/sns/chat" % b.config.node.listen.port

    def signed(message_id: str) -> tuple[bytes, dict]:
        body = _json.dumps({"messageInfo": message(messageID=message_id)}).encode()
        auth, _ = sign_request(a.role.signing_key, "POST", "/sns/chat", "node-a", "node-b",
                               body, int(reactor.seconds() * 1000))
        return body, {"Authorization": auth, "Content-Type": "application/json"}

    for crash in (False, True):
        body, headers = signed("replay%d@node-a" % crash)
        status, _, content = await http(policy, "POST", url, body, headers)
        assert status == 200, content
        node_write(b, "DELETE FROM messages")  # what a replay would bring back
        await b.stop()
        nonces = os.path.join(b.config.data_dir, "node-nonces.json")
        # SQLite: the nonces are saved at stop (a killed daemon saves nothing); PostgreSQL:
        # they are in the database as each request is taken, crash or not.
        in_store = b.role.db.dialect == "postgresql"
        assert os.path.exists(nonces) is not in_store
        if crash and not in_store:
            os.unlink(nonces)  # a killed daemon saved nothing
        b = RunningNode(b.config).start()
        status, _, content = await http(policy, "POST", url, body, headers)
        assert status == 401, content
        assert ("before this server started" if crash and not in_store else "already used") \
            in json_of(content)["error"]
        assert node_rows(b, "SELECT COUNT(*) FROM messages") == [(0,)]
        # A request signed now still passes.
        body, headers = signed("fresh%d@node-a" % crash)
        status, _, content = await http(policy, "POST", url, body, headers)
        assert status == 200, content
    await b.stop()


@pytest_twisted.ensureDeferred
async def test_every_spelling_of_a_registered_address_is_taken(tmp_path):
    """Issue #29, 11: the same machine and port under another spelling is the same address."""
    running = start_management(str(tmp_path / "m"), apply_per_source_per_hour=100)
    try:
        await Applicant("node-a", str(tmp_path / "a"), running,
                        address="https://127.0.0.1:9443").apply()
        for i, host in enumerate(("127.1", "2130706433", "0x7f.0.0.1", "[::ffff:127.0.0.1]",
                                  "017700000001", "127.000.000.001", "localhost",
                                  "LOCALHOST.")):
            other = Applicant("node-x%d" % i, str(tmp_path / ("x%d" % i)), running,
                              address="https://%s:9443" % host)
            status, answer = await other.post(M + "apply", other.body())
            assert (status, answer["errcode"]) == (409, "address_taken"), (host, answer)
        # Another port of the same machine is another address.
        await Applicant("node-b", str(tmp_path / "b"), running,
                        address="https://127.1:9444").apply()
    finally:
        await running.service.stopService()
