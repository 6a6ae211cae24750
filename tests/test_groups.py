"""Groups across three servers: the master (A) orders and fans out, B and C follow."""

from __future__ import annotations

import json

import pytest_twisted

from conftest import (ApiClient, RunningNode, add_user, join_node, node_rows, node_write,
                      signed_up, wait_until)


@pytest_twisted.async_yield_fixture
async def trio(management, tmp_path):
    nodes = [await join_node(management, str(tmp_path / n), "node-" + n) for n in "abc"]
    for node in nodes:
        await node.role.refresher.refresh()
    await wait_until(lambda: all(n.role.directory.active("node-" + x) for n in nodes
                                 for x in "abc" if n.server_id != "node-" + x),
                     what="directories")
    yield nodes
    for node in reversed(nodes):
        await node.stop()


def _group_texts(node: RunningNode, group_id: str) -> list[str]:
    import json

    rows = node_rows(node, "SELECT content FROM group_messages WHERE group_id = ? ORDER BY ord",
                     group_id)
    return [json.loads(r[0])["message"] for r in rows]


async def make_group(owner: ApiClient, name: str, members: list[ApiClient]) -> str:
    """A group on the owner's server with ``members`` invited, each having accepted and been
    told of their own joining; its groupID."""
    gid = (await owner.ok("POST", "groups", {"groupName": name}))["groupInfo"]["groupID"]
    await owner.ok("POST", "groups/%s/invite" % gid, {
        "userIDs": ["%s@%s" % (m.login_name, m.node.server_id) for m in members]})
    for client in members:
        invitation = await client.wait_event("group_invitation")
        await client.ok("POST", "groups/invitations/%s/answer" % invitation["invitationID"],
                        {"agree": True})
        me = "%s@%s" % (client.login_name, client.node.server_id)
        await client.wait_event("group_notify", match=lambda n, me=me: n["operType"] == 1 and
                                any(u["userID"] == me for u in n["users"]))
    return gid


@pytest_twisted.ensureDeferred
async def test_group_across_three_servers(trio):
    a, b, c = trio
    owner = await signed_up(a, "100", "Owner")
    local = await signed_up(a, "101", "Local Member")
    bob = await signed_up(b, "200", "Bob")
    carol = await signed_up(c, "300", "Carol")
    dave = await signed_up(c, "301", "Dave")

    created = await owner.ok("POST", "groups", {"groupName": "跨服务器群"})
    gid = created["groupInfo"]["groupID"]
    assert gid.endswith("@node-a")
    sent = await owner.ok("POST", "groups/%s/invite" % gid, {
        "userIDs": ["101@node-a", "200@node-b", "300@node-c", "301@node-c"]})
    assert sent["invited"] == 4

    # Invitations reach every server; Dave refuses, the others accept.
    for client in (local, bob, carol, dave):
        invitation = await client.wait_event("group_invitation")
        assert invitation["groupInfo"] == {"groupID": gid, "groupName": "跨服务器群"}
        await client.ok("POST", "groups/invitations/%s/answer" % invitation["invitationID"],
                        {"agree": client is not dave})

    async def members_at_master():
        answer = await owner.ok("GET", "groups/" + gid)
        return sorted(m["userInfo"]["userID"] for m in answer["members"])

    expected = ["100@node-a", "101@node-a", "200@node-b", "300@node-c"]
    await wait_until(lambda: _equals(members_at_master(), expected), what="members")
    # B sees the group through its master.
    info = await bob.ok("GET", "groups/" + gid)
    assert info["groupInfo"]["groupMemberNum"] == 4
    assert {m["userType"] for m in info["members"] if m["userInfo"]["userID"] == "100@node-a"} \
        == {3}

    # Messages from B, A and C: every member, on every server, once, in the master's order.
    for client, text in ((bob, "from B 1"), (owner, "from A"), (carol, "from C"),
                         (bob, "from B 2")):
        await client.ok("POST", "groups/%s/messages" % gid,
                        {"messageType": "text", "content": {"message": text}})
    order = ["from B 1", "from A", "from C", "from B 2"]
    for node in (a, b, c):
        await wait_until(lambda node=node: len(_group_texts(node, gid)) >= 4, timeout=20,
                         what="messages on %s" % node.server_id)
    master_order = _group_texts(a, gid)
    assert sorted(master_order) == sorted(order)
    assert _group_texts(b, gid) == master_order and _group_texts(c, gid) == master_order
    assert master_order.index("from B 1") < master_order.index("from B 2")  # B's own order
    for client in (owner, local, bob, carol):
        history = await client.ok("GET", "groups/%s/messages" % gid)
        assert [m["messageInfo"]["content"]["message"] for m in history["messages"]] == \
            master_order
    assert (await dave.call("GET", "groups/%s/messages" % gid))[0] == 404

    # grpchat: a server with members reads the master's history after a messageID.
    first = (await owner.ok("GET", "groups/%s/messages" % gid))["messages"][0]
    peer = b.role.directory.active("node-a")
    answer = await b.role.client.call("node-a", peer.address, "GET", "/sns/grpchat", query={
        "groupID": gid, "messageID": first["messageInfo"]["messageID"]})
    assert answer.ok and len(answer.body["messages"]) == 3
    assert answer.body["newestMessageID"] == answer.body["messages"][-1]["messageID"]

    # Carol quits: everyone hears of it (operType 2); her server keeps no membership.
    await carol.ok("POST", "groups/%s/quit" % gid)
    note = await bob.wait_event("group_notify", match=lambda n: n["operType"] == 2)
    assert [u["userID"] for u in note["users"]] == ["300@node-c"]
    await wait_until(lambda: _equals(members_at_master(), expected[:3]), what="Carol gone")
    status, answer = await carol.call("POST", "groups/%s/messages" % gid, {
        "messageType": "text", "content": {"message": "still here?"}})
    assert status == 403
    # C has no member now: it may neither read the group nor post to it.
    peer = c.role.directory.active("node-a")
    refused = await c.role.client.call("node-a", peer.address, "GET", "/sns/grpchat",
                                       query={"groupID": gid})
    assert refused.status == 403
    refused = await c.role.client.call("node-a", peer.address, "POST", "/sns/chat", {
        "messageInfo": {"senderID": "300@node-c", "recvID": gid, "messageType": "text",
                        "version": "v1", "type": 2, "messageID": "sneaky1@node-c",
                        "content": {"message": "hello?"}}})
    assert refused.status == 403 and refused.body["errcode"] == "not_member"
    assert "hello?" not in _group_texts(a, gid)

    # Another server's user cannot pose as the owner.
    peer = b.role.directory.active("node-a")
    posing = await b.role.client.call("node-a", peer.address, "POST",
                                      "/sns/remove/grpmembers?groupID=" + gid,
                                      {"ownerID": "100@node-a", "delateMembers": ["101@node-a"]})
    assert posing.status == 403

    # The owner dissolves the group on the master: announced everywhere (operType 3).
    await owner.ok("POST", "groups/%s/dissolve" % gid)
    note = await bob.wait_event("group_notify", match=lambda n: n["operType"] == 3)
    assert note["groupID"] == gid
    assert (await bob.call("GET", "groups/%s/messages" % gid))[0] == 404
    assert (await owner.ok("GET", "groups"))["groups"] == []


async def _equals(awaitable, expected):
    return (await awaitable) == expected


@pytest_twisted.ensureDeferred
async def test_a_server_down_catches_up_on_group_messages(trio):
    a, b, c = trio
    owner = await signed_up(a, "100", "Owner")
    bob = await signed_up(b, "200", "Bob")
    carol = await signed_up(c, "300", "Carol")
    gid = await make_group(owner, "g", [bob, carol])

    await c.stop()
    for i in range(50):
        client = owner if i % 2 else bob
        await client.ok("POST", "groups/%s/messages" % gid,
                        {"messageType": "text", "content": {"message": "m%02d" % i}})
    await wait_until(lambda: len(_group_texts(a, gid)) == 50, timeout=30, what="master")
    c = RunningNode(c.config).start()
    try:
        await wait_until(lambda: len(_group_texts(c, gid)) >= 50, timeout=60,
                         what="C to catch up")
        assert _group_texts(c, gid) == _group_texts(a, gid)  # once each, master's order
        assert sorted(_group_texts(c, gid)) == ["m%02d" % i for i in range(50)]
    finally:
        trio[2].service = c.service


@pytest_twisted.ensureDeferred
async def test_admins_settings_removal_and_search(trio):
    a, b, c = trio
    owner = await signed_up(a, "100", "Owner")
    deputy = await signed_up(a, "101", "Deputy")
    bob = await signed_up(b, "200", "Bob")
    gid = await make_group(owner, "Ops team", [deputy, bob])

    # Admins are users of the master; set and unset are announced (operType 4, 5).
    status, answer = await owner.call("POST", "groups/%s/admins" % gid,
                                      {"userID": "200@node-b", "admin": True})
    assert status == 403 and answer["errcode"] == "not_master_user"
    status, answer = await deputy.call("POST", "groups/%s/admins" % gid,
                                       {"userID": "101@node-a", "admin": True})
    assert status == 403 and answer["errcode"] == "not_owner"
    await owner.ok("POST", "groups/%s/admins" % gid, {"userID": "101@node-a", "admin": True})
    note = await bob.wait_event("group_notify", match=lambda n: n["operType"] == 4)
    assert [u["userID"] for u in note["users"]] == ["101@node-a"]

    # An admin changes info and settings (operType 7); members no longer invite.
    await deputy.ok("POST", "groups/%s/info" % gid, {"groupInfo": {"groupName": "Ops"},
                                                     "gset": {"isAllow": 2, "isVisible": 2}})
    note = await bob.wait_event("group_notify", match=lambda n: n["operType"] == 7)
    assert note["groupInfo"]["groupName"] == "Ops" and note["grpset"]["isAllow"] == 2
    status, answer = await bob.call("POST", "groups/%s/info" % gid,
                                    {"groupInfo": {"groupName": "mine"}})
    assert status == 403
    assert (await owner.ok("GET", "groups/search", params={"q": "Ops"}))["groups"] == []
    await owner.ok("POST", "groups/%s/info" % gid, {"gset": {"isVisible": 1}})
    found = await owner.ok("GET", "groups/search", params={"q": "Ops"})
    assert [g["groupInfo"]["groupID"] for g in found["groups"]] == [gid]
    await owner.ok("POST", "groups/%s/admins" % gid, {"userID": "101@node-a", "admin": False})
    await bob.wait_event("group_notify", match=lambda n: n["operType"] == 5)

    # Only the owner removes; Bob is told (operType 2) and is out.
    status, answer = await deputy.call("POST", "groups/%s/remove" % gid,
                                       {"delateMembers": ["200@node-b"]})
    assert status == 403 and answer["errcode"] == "not_owner"
    await owner.ok("POST", "groups/%s/remove" % gid, {"deleteMembers": ["200@node-b"]})
    note = await bob.wait_event("group_notify", match=lambda n: n["operType"] == 2)
    assert [u["userID"] for u in note["users"]] == ["200@node-b"]
    status, _ = await bob.call("POST", "groups/%s/messages" % gid, {
        "messageType": "text", "content": {"message": "let me in"}})
    assert status == 403
    members = (await owner.ok("GET", "groups/" + gid))["members"]
    assert [(m["userInfo"]["userID"], m["userType"]) for m in members] == [
        ("100@node-a", 3), ("101@node-a", 1)]

    # Transfer: never to another server's member; to a master user, announced (operType 6).
    await owner.ok("POST", "groups/%s/invite" % gid, {"userIDs": ["200@node-b"]})
    invitation = await bob.wait_event("group_invitation")
    await bob.ok("POST", "groups/invitations/%s/answer" % invitation["invitationID"],
                 {"agree": True})
    await bob.wait_event("group_notify", match=lambda n: n["operType"] == 1)
    status, answer = await owner.call("POST", "groups/%s/transfer" % gid,
                                      {"userID": "200@node-b"})
    assert status == 403 and answer["errcode"] == "not_master_user"
    await owner.ok("POST", "groups/%s/transfer" % gid, {"userID": "101@node-a"})
    note = await bob.wait_event("group_notify", match=lambda n: n["operType"] == 6)
    assert [u["userID"] for u in note["users"]] == ["101@node-a"]
    members = (await deputy.ok("GET", "groups/" + gid))["members"]
    assert [(m["userInfo"]["userID"], m["userType"]) for m in members][:2] == [
        ("101@node-a", 3), ("100@node-a", 2)]
    status, _ = await owner.call("POST", "groups/%s/dissolve" % gid)
    assert status == 403
    await deputy.ok("POST", "groups/%s/dissolve" % gid)
    await bob.wait_event("group_notify", match=lambda n: n["operType"] == 3)


@pytest_twisted.ensureDeferred
async def test_group_file_is_copied_to_the_master(trio):
    """§6.4.2.10: a member on C sends a file; the master A copies it and everyone gets A's
    fileID, byte-identical through their own servers."""
    import os

    import treq

    a, b, c = trio
    owner = await signed_up(a, "100", "Owner")
    bob = await signed_up(b, "200", "Bob")
    carol = await signed_up(c, "300", "Carol")
    gid = await make_group(owner, "files", [bob, carol])
    data = os.urandom(300_000)
    response = await treq.post(c.client_url + "files", data=data, params={"name": "plan.pdf"},
                               headers={"Authorization": "Bearer " + carol.token})
    import json

    uploaded = json.loads(await treq.content(response))
    assert uploaded["fileID"].endswith("@node-c")
    await carol.ok("POST", "groups/%s/messages" % gid, {
        "messageType": "file", "content": {"fileID": uploaded["fileID"]}})
    for client in (owner, bob, carol):
        got = await client.wait_event("group_message", match=lambda m: m["messageInfo"][
            "messageType"] == "file")
        content = got["messageInfo"]["content"]
        assert content["fileID"].endswith("@node-a") and content["size"] == len(data)
        assert content["name"] == "plan.pdf"
        response = await treq.get(client.node.client_url + "files/" + content["fileID"],
                                  headers={"Authorization": "Bearer " + client.token})
        assert response.code == 200 and await treq.content(response) == data


@pytest_twisted.ensureDeferred
async def test_a_recalled_group_file_is_taken_back_everywhere(trio):
    """A file sent to a group and recalled: no member fetches it any more, at the master or
    at another server (each had it before); the sender's own upload stays the sender's; a
    second message sending the same file keeps it for the group."""
    import json
    import os

    import treq

    a, b, c = trio
    owner = await signed_up(a, "100", "Owner")
    local = await signed_up(a, "101", "Local")
    bob = await signed_up(b, "200", "Bob")
    gid = await make_group(owner, "take back", [local, bob])

    async def upload(data):
        response = await treq.post(a.client_url + "files", data=data,
                                   params={"name": "draft.pdf"},
                                   headers={"Authorization": "Bearer " + owner.token})
        return json.loads(await treq.content(response))["fileID"]

    async def fetch(client, file_id) -> int:
        response = await treq.get(client.node.client_url + "files/" + file_id,
                                  headers={"Authorization": "Bearer " + client.token})
        await treq.content(response)
        return response.code

    async def send(file_id) -> str:
        answer = await owner.ok("POST", "groups/%s/messages" % gid,
                                {"messageType": "file", "content": {"fileID": file_id}})
        for client in (local, bob):
            await client.wait_event("group_message", match=lambda m: m["messageInfo"][
                "messageID"] == answer["messageID"])
        return answer["messageID"]

    once, twice = await upload(os.urandom(50_000)), await upload(os.urandom(60_000))
    recalled = await send(once)
    first, second = await send(twice), await send(twice)
    for client in (owner, local, bob):
        assert await fetch(client, once) == 200 and await fetch(client, twice) == 200
    await owner.ok("POST", "groups/%s/messages/%s/recall" % (gid, recalled))
    await owner.ok("POST", "groups/%s/messages/%s/recall" % (gid, first))
    for client in (local, bob):
        await client.wait_event("group_recall", match=lambda e: e["messageID"] == first)
        assert await fetch(client, once) in (403, 404)
        assert await fetch(client, twice) == 200  # the second message still sends it
    assert await fetch(owner, once) == 200  # the sender's upload
    await owner.ok("POST", "groups/%s/messages/%s/recall" % (gid, second))
    await bob.wait_event("group_recall", match=lambda e: e["messageID"] == second)
    assert await fetch(bob, twice) in (403, 404)
    assert await fetch(local, twice) in (403, 404)


@pytest_twisted.ensureDeferred
async def test_member_on_another_server_invites_through_the_master(trio):
    a, b, c = trio
    add_user(c, "301", "Dave")
    owner = await signed_up(a, "100", "Owner")
    bob = await signed_up(b, "200", "Bob")
    carol = await signed_up(c, "300", "Carol")
    gid = await make_group(owner, "open", [bob])

    # Bob (on B) invites Carol (on C): B asks the master, the master invites.
    await bob.ok("POST", "groups/%s/invite" % gid, {"userIDs": ["300@node-c"]})
    invitation = await carol.wait_event("group_invitation")
    assert invitation["inviter"]["userID"] == "200@node-b"
    await carol.ok("POST", "groups/invitations/%s/answer" % invitation["invitationID"],
                   {"agree": True})
    await carol.wait_event("group_notify", match=lambda n: n["operType"] == 1)
    await carol.ok("POST", "groups/%s/messages" % gid,
                   {"messageType": "text", "content": {"message": "thanks Bob"}})
    got = await bob.wait_event("group_message", match=lambda m: m["messageInfo"]["senderID"]
                               == "300@node-c")
    assert got["messageInfo"]["content"]["message"] == "thanks Bob"

    # With isAllow 2 only the owner and admins invite; B's view follows the master.
    await owner.ok("POST", "groups/%s/info" % gid, {"gset": {"isAllow": 2}})
    await bob.wait_event("group_notify", match=lambda n: n["operType"] == 7)
    status, answer = await bob.call("POST", "groups/%s/invite" % gid, {"userIDs": ["301@node-c"]})
    assert status == 403 and answer["errcode"] == "invites_closed"
    # And the master refuses it too, whatever B's view says.
    peer = b.role.directory.active("node-a")
    refused = await b.role.client.call("node-a", peer.address, "POST", "/sns/invite/grpreq", {
        "userID": "200@node-b", "reqInfo": {"groupInfo": {"groupID": gid, "groupName": "open"},
                                           "inviteUsers": ["301@node-c"]}})
    assert refused.status == 403 and refused.body["errcode"] == "invites_closed"
    # Nor may an answer nobody was invited for get anyone in.
    sneaky = await c.role.client.call("node-a", c.role.directory.active("node-a").address,
                                      "POST", "/sns/invite/grprep?groupID=" + gid,
                                      {"ownerID": "301@node-c", "respResult": 1})
    assert sneaky.status == 409 and sneaky.body["errcode"] == "not_invited"


@pytest_twisted.ensureDeferred
async def test_group_commands(trio):
    import json

    from test_node_delivery import imfed

    a, b, c = trio
    owner = await signed_up(a, "100", "Owner")
    bob = await signed_up(b, "200", "Bob")
    carol = await signed_up(c, "300", "Carol")
    gid = await make_group(owner, "运维", [bob, carol])
    await owner.ok("POST", "groups/%s/messages" % gid,
                   {"messageType": "text", "content": {"message": "hi"}})
    await wait_until(lambda: _group_texts(b, gid) == ["hi"], what="B's copy")
    code, out = await imfed(a, "group", "list", "--json")
    listed = json.loads(out)
    assert [(g["groupInfo"]["groupID"], g["master"], g["messages"]) for g in listed] == [
        (gid, True, 1)]
    code, out = await imfed(b, "group", "list")
    assert code == 0 and gid in out and "view" in out
    code, out = await imfed(a, "group", "show", gid)
    assert code == 0 and "owner   100@node-a" in out and "member  200@node-b" in out
    code, out = await imfed(a, "group", "show", "nope@node-a")
    assert code == 1 and "no group" in out

    # The operator moderates groups mastered here, as the owner; every server is told.
    code, out = await imfed(b, "group", "remove", gid, "300@node-c")
    assert code == 1 and "mastered here" in out  # B holds only a view
    code, out = await imfed(a, "group", "remove", gid, "999@node-c")
    assert code == 1 and "not a member" in out
    code, out = await imfed(a, "group", "remove", gid, "300@node-c")
    assert code == 0, out
    removed = await carol.wait_event("group_notify", match=lambda e: e["operType"] == 2)
    assert [u["userID"] for u in removed["users"]] == ["300@node-c"]
    await bob.wait_event("group_notify", match=lambda e: e["operType"] == 2)
    code, out = await imfed(a, "group", "dissolve", gid)
    assert code == 0, out
    await bob.wait_event("group_notify", match=lambda e: e["operType"] == 3)
    assert (await bob.ok("GET", "groups"))["groups"] == []
    code, out = await imfed(a, "group", "dissolve", gid)
    assert code == 1 and "no live group" in out


@pytest_twisted.ensureDeferred
async def test_non_master_fills_gaps_with_grpchat(trio):
    a, b, _ = trio
    owner = await signed_up(a, "100", "Owner")
    bob = await signed_up(b, "200", "Bob")
    gid = await make_group(owner, "g", [bob])

    async def post(*texts):
        for text in texts:
            await owner.ok("POST", "groups/%s/messages" % gid,
                           {"messageType": "text", "content": {"message": text}})

    await post("s0", "s1", "s2", "s3", "s4", "s5")
    await wait_until(lambda: len(_group_texts(b, gid)) == 6, what="B's copies")
    # B is restored from a backup that lacks one message in the middle and the newest two.
    await b.stop()
    _delete(b, gid, "s1", "s4", "s5")
    assert _group_texts(b, gid) == ["s0", "s2", "s3"]
    b.start()  # the check at start fills them, each in its place
    await wait_until(lambda: _group_texts(b, gid) == ["s0", "s1", "s2", "s3", "s4", "s5"],
                     what="B's copy filled at start")
    bob = await ApiClient(b, "200").login()
    page = await bob.ok("GET", "groups/%s/messages" % gid)
    assert [m["messageInfo"]["content"]["message"] for m in page["messages"]] == [
        "s0", "s1", "s2", "s3", "s4", "s5"]

    # The master gives up on one message while B is away (its queue row goes): B finds it
    # in the middle of what it gets and puts it in its place.
    await b.stop()
    await post("s6", "s7", "s8")
    assert node_write(a, "DELETE FROM outbox WHERE destination = 'node-b' AND payload LIKE "
                         "'%\"s7\"%'") == 1
    b.start()
    await wait_until(lambda: _group_texts(b, gid)[6:] == ["s6", "s7", "s8"],
                     what="B's copy after the give-up")
    bob = await ApiClient(b, "200").login()
    assert (await bob.ok("POST", "groups/%s/sync" % gid))["fetched"] == 0
    assert _group_texts(b, gid) == ["s%d" % i for i in range(9)]
    # B's own access control refusing the master: the check is refused, nothing changes.
    from test_node_delivery import _expire, imfed

    assert (await imfed(b, "acl", "mode", "out", "whitelist"))[0] == 0
    await _expire(b)
    status, answer = await bob.call("POST", "groups/%s/sync" % gid)
    assert status == 403 and answer["errcode"] == "refused_by_policy"
    assert (await imfed(b, "acl", "mode", "out", "open"))[0] == 0
    assert _group_texts(b, gid) == ["s%d" % i for i in range(9)]
    # A's copy is the master's: asking there fills nothing.
    assert (await owner.ok("POST", "groups/%s/sync" % gid))["fetched"] == 0


def _delete(node: RunningNode, group_id: str, *texts: str) -> None:
    rows = node_rows(node, "SELECT message_id, content FROM group_messages WHERE group_id = ?",
                     group_id)
    gone = [(mid,) for mid, content in rows if json.loads(content).get("message") in texts]
    assert len(gone) == len(texts)
    node_write(node, "DELETE FROM group_messages WHERE message_id = ?", many=gone)


async def bulk_users(node, phones: list[str]) -> list:
    """Users made straight in a running node's store, in one transaction (their password
    hash a placeholder: they never log in)."""
    from imfed.node.store import users
    from imfed.storage import transaction

    @transaction
    def add(cur):
        now = 1
        cur.executemany("INSERT INTO users (user_id, phone, name, portrait, password_hash, "
                        "verify_type, searchable, update_time) VALUES (?, ?, ?, '', 'x', 2, 1, ?)",
                        [("%s@%s" % (p, node.server_id), p, "M" + p, now) for p in phones])

    await node.role.store.run(add)
    return [await node.role.store.run(users.get_user, "%s@%s" % (p, node.server_id))
            for p in phones]


@pytest_twisted.ensureDeferred
async def test_a_five_thousand_member_group_across_servers(pair):
    """Issue #29, 3: 5,000 members (4,000 on the master, 1,000 on another server) join one by
    one, then one message to all and a rename: the events stored grow with the members
    (joins tell the joiner and the admins), not with their square."""
    import time

    a, b = pair
    owner = await signed_up(a, "1", "Owner")
    local = await bulk_users(a, ["2%05d" % i for i in range(4000)])
    remote = await bulk_users(b, ["3%05d" % i for i in range(1000)])
    h_a, h_b = a.role.handlers.groups, b.role.handlers.groups
    from imfed.node.store.users import get_user

    me = await a.role.store.run(get_user, "1@node-a")
    g = await h_a.create(me, "五千人群", "")
    started = time.monotonic()
    ids = [u.user_id for u in local + remote]
    for i in range(0, len(ids), 100):
        await h_a.invite(me, g.group_id, ids[i:i + 100])

    async def answer_all(node, handler, members):
        rows = node_rows(node, "SELECT invitation_id, invitee_id FROM group_invitations "
                         "WHERE group_id = ? AND status = 'pending'", g.group_id)
        by_user = {uid: iid for iid, uid in rows}
        for user in members:
            await handler.answer(user, by_user[user.user_id], True)

    await wait_until(lambda: len(node_rows(b, "SELECT 1 FROM group_invitations WHERE "
                                            "status = 'pending'")) == 1000, timeout=120,
                     what="B's invitations")
    await answer_all(a, h_a, local)
    await answer_all(b, h_b, remote)
    await wait_until(lambda: node_rows(a, "SELECT COUNT(*) FROM group_members WHERE "
                                       "group_id = ?", g.group_id)[0][0] == 5001, timeout=300,
                     what="5,000 members")
    joined = time.monotonic() - started
    # Each join below LARGE_GROUP members is told to every member, then to the joiner and
    # the admins: at most LARGE_GROUP²/2 + 3 per member; told to every member, ~12.5 million.
    from imfed.node.store.groups import LARGE_GROUP

    notices = node_rows(a, "SELECT COUNT(*) FROM events WHERE type = 'group_notify'")[0][0]
    assert notices <= LARGE_GROUP ** 2 / 2 + 3 * 5001, notices
    notices_b = node_rows(b, "SELECT COUNT(*) FROM events WHERE type = 'group_notify'")[0][0]
    assert notices_b <= 3 * 1000, notices_b

    await owner.ok("POST", "groups/%s/messages" % g.group_id,
                   {"messageType": "text", "content": {"message": "大家好"}})
    await wait_until(lambda: node_rows(b, "SELECT COUNT(*) FROM events WHERE type = "
                                       "'group_message'")[0][0] >= 1000, timeout=120,
                     what="the message on B")
    await h_a.update(me, g.group_id, name="改名了")
    await wait_until(lambda: node_rows(b, "SELECT name FROM groups WHERE group_id = ?",
                                       g.group_id)[0][0] == "改名了", timeout=60,
                     what="the rename on B")
    renamed = node_rows(a, "SELECT COUNT(*) FROM events WHERE type = 'group_notify'")[0][0]
    assert renamed - notices >= 4000  # a rename reaches every member here
    print("5,000 members joined in %.1f s" % joined)
