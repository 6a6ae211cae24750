"""Issue #26's client API additions, through real nodes on loopback: read markers that every
device of a user shares (one-to-one, and in a group mastered on another server), group history
paged back from the newest, message search (Chinese included, recalled messages never), a new
name, a password change that ends the other sessions."""

from __future__ import annotations

import pytest_twisted

from conftest import ApiClient, node_rows, signed_up, wait_until


async def _texts(client, peer: str, texts) -> list[dict]:
    out = []
    for text in texts:
        answer = await client.ok("POST", "messages", {"recvID": peer, "messageType": "text",
                                                      "content": {"message": text}})
        out.append(answer["message"])
    return out


async def _conversation(client, peer: str) -> dict:
    answer = await client.ok("GET", "conversations")
    return next(c for c in answer["conversations"] if c["peerID"] == peer)


@pytest_twisted.ensureDeferred
async def test_read_markers_are_shared_by_every_device_of_a_user(pair):
    a, b = pair
    alice = await signed_up(a, "100", "Alice")
    bob = await signed_up(b, "200", "Bob")
    bob_tablet = await ApiClient(b, "200").login()
    sent = await _texts(alice, "200@node-b", ["一", "二", "三"])
    await wait_until(lambda: _unread(bob, "100@node-a", 3), what="three unread at B")
    # Bob's own messages are never unread to him.
    await _texts(bob, "100@node-a", ["reply"])
    assert (await _conversation(bob, "100@node-a"))["unread"] == 3
    # Bob reads up to the second on his phone: his tablet hears of it and counts one unread.
    got = [m["seq"] for m in (await bob.ok(
        "GET", "conversations/100@node-a/messages"))["messages"]
        if m["messageInfo"]["senderID"] == "100@node-a"]
    second = sorted(got)[1]
    answer = await bob.ok("POST", "conversations/100@node-a/read", {"seq": second})
    assert answer["readSeq"] == second
    event = await bob_tablet.wait_event("read")
    assert event == {"peerID": "100@node-a", "seq": second}
    tablet_view = await _conversation(bob_tablet, "100@node-a")
    assert (tablet_view["readSeq"], tablet_view["unread"]) == (second, 1)
    # A marker never goes back, and never past the newest message.
    assert (await bob.ok("POST", "conversations/100@node-a/read", {"seq": 1}))["readSeq"] \
        == second
    newest = max(got + [m["seq"] for m in (await bob.ok(
        "GET", "conversations/100@node-a/messages"))["messages"]])
    assert (await bob.ok("POST", "conversations/100@node-a/read",
                         {"seq": 10 ** 12}))["readSeq"] == newest
    assert (await _conversation(bob, "100@node-a"))["unread"] == 0
    # A recalled message is not unread.
    late = await _texts(alice, "200@node-b", ["oops"])
    await wait_until(lambda: _unread(bob, "100@node-a", 1), what="one unread")
    await alice.ok("POST", "messages/%s/recall" % late[0]["messageInfo"]["messageID"])
    await wait_until(lambda: _unread(bob, "100@node-a", 0), what="the recall")
    assert sent  # (Alice's sends were answered)
    # Bad input changes nothing.
    for body, errcode in (({}, "bad_seq"), ({"seq": -1}, "bad_seq"), ({"seq": "x"}, "bad_seq"),
                          ({"seq": True}, "bad_seq")):
        status, answer = await bob.call("POST", "conversations/100@node-a/read", body)
        assert (status, answer["errcode"]) == (400, errcode), body
    status, answer = await bob.call("POST", "conversations/nobody/read", {"seq": 1})
    assert status == 400


async def _unread(client, peer: str, n: int) -> bool:
    answer = await client.ok("GET", "conversations")
    found = [c for c in answer["conversations"] if c["peerID"] == peer]
    return bool(found) and found[0]["unread"] == n


async def _group(owner, members) -> str:
    gid = (await owner.ok("POST", "groups", {"groupName": "读过"}))["groupInfo"]["groupID"]
    await owner.ok("POST", "groups/%s/invite" % gid,
                   {"userIDs": [m.login_name + "@" + m.node.server_id for m in members]})
    for member in members:
        invitation = await member.wait_event("group_invitation")
        await member.ok("POST", "groups/invitations/%s/answer" % invitation["invitationID"],
                        {"agree": True})
        # A member of another server hears its master took it; one of the master's, the
        # group's announcement.
        await member.wait_event("group_joined" if member.node is not owner.node
                                else "group_notify")
    return gid


@pytest_twisted.ensureDeferred
async def test_group_read_markers_and_history_paged_back_from_the_newest(pair):
    a, b = pair
    owner = await signed_up(a, "100", "Owner")
    bob = await signed_up(b, "200", "Bob")
    bob_tablet = await ApiClient(b, "200").login()
    gid = await _group(owner, [bob])
    for i in range(7):
        await owner.ok("POST", "groups/%s/messages" % gid,
                       {"messageType": "text", "content": {"message": "m%d" % i}})

    async def bob_has(n):
        groups = (await bob.ok("GET", "groups"))["groups"]
        return groups and groups[0]["unread"] == n

    await wait_until(lambda: bob_has(7), what="seven unread at B")
    # Paged back from the newest, three at a time.
    pages, before = [], ""
    while before is not None:
        answer = await bob.ok("GET", "groups/%s/messages" % gid,
                              params={"before": before, "limit": "3"})
        pages.append([m["messageInfo"]["content"]["message"] for m in answer["messages"]])
        before = answer["nextBefore"]
    assert pages == [["m4", "m5", "m6"], ["m1", "m2", "m3"], ["m0"]]
    status, answer = await bob.call("GET", "groups/%s/messages" % gid,
                                    params={"before": "nope@node-a"})
    assert (status, answer["errcode"]) == (404, "unknown_message")
    # Read to the fifth: the tablet hears of it; two unread.
    kept = (await bob.ok("GET", "groups/%s/messages" % gid))["messages"]
    fifth = kept[4]["gseq"]
    assert (await bob.ok("POST", "groups/%s/read" % gid, {"gseq": fifth}))["readGseq"] == fifth
    assert await bob_tablet.wait_event("read") == {"groupID": gid, "gseq": fifth}
    mine = (await bob_tablet.ok("GET", "groups"))["groups"][0]
    assert (mine["readGseq"], mine["unread"]) == (fifth, 2)
    # The owner's own messages are not unread to the owner.
    assert (await owner.ok("GET", "groups"))["groups"][0]["unread"] == 0
    # Each group comes with its newest message (a client orders groups by it), or null.
    assert mine["last"]["messageInfo"]["content"]["message"] == "m6"
    empty = await owner.ok("POST", "groups", {"groupName": "quiet"})
    listed = {g["groupInfo"]["groupID"]: g for g in (await owner.ok("GET", "groups"))["groups"]}
    assert listed[empty["groupInfo"]["groupID"]]["last"] is None
    assert listed[gid]["last"]["messageInfo"]["content"]["message"] == "m6"
    # Not a member: 404, nothing written.
    carol = await signed_up(b, "201", "Carol")
    status, answer = await carol.call("POST", "groups/%s/read" % gid, {"gseq": 1})
    assert (status, answer["errcode"]) == (404, "unknown_group")
    status, answer = await carol.call("GET", "groups/%s/messages" % gid,
                                      params={"before": ""})
    assert status == 404


@pytest_twisted.ensureDeferred
async def test_pins_and_mutes_follow_the_user_to_every_device(pair):
    a, b = pair
    alice = await signed_up(a, "100", "Alice")
    bob = await signed_up(b, "200", "Bob")
    bob_tablet = await ApiClient(b, "200").login()
    await _texts(alice, "200@node-b", ["hello"])
    await wait_until(lambda: _unread(bob, "100@node-a", 1), what="the message at B")
    gid = await _group(alice, [bob])
    # Bob pins the chat with Alice on his phone: the tablet hears of it and lists it so.
    answer = await bob.ok("PUT", "conversations/100@node-a/pins", {"pinned": True})
    assert (answer["pinned"], answer["muted"]) == (True, False)
    pinned = {"peerID": "100@node-a", "pinned": True, "muted": False}
    assert await bob_tablet.wait_event("pins") == pinned
    assert await bob.wait_event("pins") == pinned  # every stream, the phone's own too
    view = await _conversation(bob_tablet, "100@node-a")
    assert (view["pinned"], view["muted"]) == (True, False)
    # He mutes the group on the tablet; the pin stays.
    answer = await bob_tablet.ok("PUT", "groups/%s/pins" % gid, {"muted": True})
    assert (answer["pinned"], answer["muted"]) == (False, True)
    assert await bob.wait_event("pins") == {"groupID": gid, "pinned": False, "muted": True}
    await bob_tablet.wait_event("pins")
    mine = (await bob.ok("GET", "groups"))["groups"][0]
    assert (mine["pinned"], mine["muted"]) == (False, True)
    # The same again changes nothing and tells no one; unpinned and unmuted, the row goes.
    await bob.ok("PUT", "groups/%s/pins" % gid, {"muted": True})
    await bob.ok("PUT", "conversations/100@node-a/pins", {"pinned": False, "muted": False})
    assert await bob_tablet.wait_event("pins") == {"peerID": "100@node-a", "pinned": False,
                                                   "muted": False}
    assert node_rows(b, "SELECT conversation FROM pins_mutes") == [(gid,)]
    # Alice's own view is hers alone.
    assert (await _conversation(alice, "200@node-b"))["pinned"] is False
    # Bad input: a clear error and nothing written.
    for body, code in (({}, "bad_pinned"), ({"pinned": "yes"}, "bad_pinned"),
                       ({"muted": 1}, "bad_muted")):
        status, answer = await bob.call("PUT", "conversations/100@node-a/pins", body)
        assert (status, answer["errcode"]) == (400, code), body
    status, answer = await bob.call("PUT", "conversations/300@node-b/pins", {"pinned": True})
    assert (status, answer["errcode"]) == (404, "unknown_conversation")
    status, answer = await bob.call("PUT", "conversations/not-an-id/pins", {"pinned": True})
    assert status == 400
    carol = await signed_up(b, "201", "Carol")
    status, answer = await carol.call("PUT", "groups/%s/pins" % gid, {"pinned": True})
    assert (status, answer["errcode"]) == (404, "unknown_group")
    assert (await bob.ok("GET", "groups"))["groups"][0]["pinned"] is False


async def _walk(client, gid: str, limit: int) -> list[str]:
    """The group's history as a chat shows it, paged back from the newest ``limit`` at a
    time: each message's text, and each line where its ``after`` puts it."""
    out: list[str] = []
    before = ""
    while before is not None:
        answer = await client.ok("GET", "groups/%s/messages" % gid,
                                 params={"before": before, "limit": str(limit)})
        page = [(m["messageInfo"]["messageID"], m["messageInfo"]["content"]["message"])
                for m in answer["messages"]]
        ids = {mid for mid, _ in page}

        def said(line):
            return "line %d %s" % (line["operType"], ",".join(
                line.get("changed") or [u.get("name", "") for u in line["users"]]))

        shown = [said(line) for line in answer["lines"] if line["after"] not in ids]
        for mid, text in page:
            shown.append(text)
            shown += [said(line) for line in answer["lines"] if line["after"] == mid]
        out = shown + out
        before = answer["nextBefore"]
    return out


@pytest_twisted.ensureDeferred
async def test_group_lines_are_kept_between_the_same_messages_on_every_server(pair):
    """Joins, renames, announcements, admins, departures stay in the group's history as lines
    placed after the message they followed, on the master and on a member's server, whatever
    the page size; a rename that changes nothing is no line."""
    a, b = pair
    owner = await signed_up(a, "100", "Owner")
    dan = await signed_up(a, "101", "Dan")
    bob = await signed_up(b, "200", "Bob")

    async def say(text):
        await owner.ok("POST", "groups/%s/messages" % gid,
                       {"messageType": "text", "content": {"message": text}})

    gid = await _group(owner, [bob, dan])
    await say("m0")
    await owner.ok("POST", "groups/%s/info" % gid, {"groupInfo": {"groupName": "新名字"}})
    await owner.ok("POST", "groups/%s/info" % gid, {"groupInfo": {"groupName": "新名字"}})
    await say("m1")
    await owner.ok("PUT", "groups/%s/announcement" % gid, {"text": "周五开会"})
    await owner.ok("POST", "groups/%s/admins" % gid, {"userID": "101@node-a", "admin": True})
    await say("m2")
    await dan.ok("POST", "groups/%s/quit" % gid)
    await say("m3")
    expected = ["line 1 Bob", "line 1 Dan", "m0", "line 7 groupName", "m1",
                "line 7 groupNotice", "line 4 Dan", "m2", "line 2 Dan", "m3"]
    for limit in (1, 2, 3, 50):
        assert await _walk(owner, gid, limit) == expected, limit

    async def bob_has_all():
        return (await _walk(bob, gid, 50))[-1:] == ["m3"]

    await wait_until(bob_has_all, what="m3 at B")
    for limit in (1, 2, 50):
        assert await _walk(bob, gid, limit) == expected, limit
    # The announcement's line carries it; the first page's lines have their times.
    answer = await bob.ok("GET", "groups/%s/messages" % gid, params={"before": ""})
    notice = next(line for line in answer["lines"] if line.get("changed") == ["groupNotice"])
    assert notice["groupNotice"]["text"] == "周五开会"
    assert notice["operUser"] == {"userID": "100@node-a", "name": "Owner"}
    assert all(isinstance(line["time"], int) for line in answer["lines"])
    # A live group_notify names its line (a client that has both shows it once).
    await owner.ok("POST", "groups/%s/info" % gid, {"groupInfo": {"groupName": "又改名"}})
    while (event := await bob.wait_event("group_notify")).get("changed") != ["groupName"] \
            or event["groupInfo"]["groupName"] != "又改名":
        pass
    answer = await bob.ok("GET", "groups/%s/messages" % gid, params={"before": ""})
    assert answer["lines"][-1]["id"] == event["lineID"]
    assert answer["lines"][-1]["groupName"] == "又改名"
    # Dan, gone, reads none of it.
    status, answer = await dan.call("GET", "groups/%s/messages" % gid, params={"before": ""})
    assert (status, answer["errcode"]) == (404, "unknown_group")


@pytest_twisted.ensureDeferred
async def test_message_search_finds_chinese_and_never_a_recalled_message(pair):
    a, b = pair
    alice = await signed_up(a, "100", "Alice")
    bob = await signed_up(b, "200", "Bob")
    eve = await signed_up(a, "101", "Eve")
    await _texts(alice, "200@node-b", ["明天下午开会", "Lunch at NOON?", "no match here"])
    recalled = await _texts(alice, "200@node-b", ["开会改到周五"])
    await _texts(eve, "101@node-a", ["开会 (Eve's note to herself)"])
    await alice.ok("POST", "messages/%s/recall" % recalled[0]["messageInfo"]["messageID"])
    gid = await _group(alice, [bob])
    await bob.ok("POST", "groups/%s/messages" % gid,
                 {"messageType": "text", "content": {"message": "群里也开会"}})

    async def found(client, q, expect_direct, expect_group):
        answer = await client.ok("GET", "messages/search", params={"q": q})
        direct = [m["messageInfo"]["content"]["message"] for m in answer["messages"]]
        group = [m["messageInfo"]["content"]["message"] for m in answer["groupMessages"]]
        return direct == expect_direct and group == expect_group

    await wait_until(lambda: found(bob, "开会", ["明天下午开会"], ["群里也开会"]),
                     what="Bob's search")
    assert await found(alice, "开会", ["明天下午开会"], ["群里也开会"])
    assert await found(alice, "noon", ["Lunch at NOON?"], [])  # case aside
    assert await found(eve, "开会", ["开会 (Eve's note to herself)"], [])  # only one's own
    assert await found(alice, "message", [], [])  # the JSON's key is not the text
    answer = await alice.ok("GET", "messages/search", params={"q": "开会"})
    assert answer["groupMessages"][0]["groupID"] == gid
    for q in ("", " ", "\x00", "x" * 65):
        status, answer = await alice.call("GET", "messages/search", params={"q": q})
        assert (status, answer["errcode"]) == (400, "bad_q"), q


@pytest_twisted.ensureDeferred
async def test_a_new_name_and_a_password_change_that_ends_the_other_sessions(pair):
    a, b = pair
    alice = await signed_up(a, "100", "Alice")
    other = await ApiClient(a, "100").login()
    answer = await alice.ok("PUT", "me", {"name": "  爱丽丝 "})
    assert answer["userInfo"]["name"] == "爱丽丝"
    assert (await other.wait_event("profile"))["userInfo"]["name"] == "爱丽丝"
    assert (await other.ok("GET", "me"))["userInfo"]["name"] == "爱丽丝"
    bob = await signed_up(b, "200", "Bob")
    info = await bob.ok("GET", "users/info", params={"userID": "100@node-a"})
    assert info["userInfo"]["name"] == "爱丽丝"
    for body, errcode in (({"name": ""}, "missing_name"), ({"name": "x" * 65}, "bad_name"),
                          ({"name": "a\u202eb"}, "bad_name"), ({}, "missing_name")):
        status, answer = await alice.call("PUT", "me", body)
        assert (status, answer["errcode"]) == (400, errcode), body
    # A wrong current password: 403, and nothing changes.
    status, answer = await alice.call("POST", "me/password",
                                      {"password": "wrong", "newPassword": "longer one"})
    assert (status, answer["errcode"]) == (403, "wrong_password")
    status, answer = await alice.call("POST", "me/password",
                                      {"password": "secret", "newPassword": "short"})
    assert (status, answer["errcode"]) == (400, "bad_newPassword")
    assert (await other.call("GET", "me"))[0] == 200
    answer = await alice.ok("POST", "me/password",
                            {"password": "secret", "newPassword": "a new secret"})
    assert answer["ended"] == 1
    assert (await alice.call("GET", "me"))[0] == 200  # this session stays
    await wait_until(lambda: _refused(other), what="the other session to end")
    status, _ = await ApiClient(a, "100", "secret").call(
        "POST", "login", {"login": "100", "password": "secret"})
    assert status == 401
    await ApiClient(a, "100", "a new secret").login()


async def _refused(client) -> bool:
    return (await client.call("GET", "me"))[0] == 401


PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
       b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff"
       b"\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82")


async def _upload(client, data: bytes, name: str) -> str:
    status, answer = await client.call("POST", "files?name=" + name, data)
    assert status == 200, answer
    return answer["fileID"]


async def _portrait(client, user_id: str, etag: str | None = None):
    import treq

    headers = {"Authorization": "Bearer " + client.token}
    if etag:
        headers["If-None-Match"] = etag
    response = await treq.get(client.node.client_url + "users/%s/portrait" % user_id,
                              headers=headers)
    return response.code, await treq.content(response), response.headers


@pytest_twisted.ensureDeferred
async def test_a_portrait_is_seen_by_users_of_every_server(pair):
    a, b = pair
    alice = await signed_up(a, "100", "Alice")
    other = await ApiClient(a, "100").login()
    bob = await signed_up(b, "200", "Bob")
    carol = await signed_up(b, "201", "Carol")
    code, _, _ = await _portrait(bob, "100@node-a")
    assert code == 404
    picture = await _upload(alice, PNG, "me.png")
    answer = await alice.ok("PUT", "me", {"portrait": picture})
    assert answer["userInfo"]["portrait"] == picture
    assert (await other.wait_event("profile"))["userInfo"]["portrait"] == picture
    # Bob on B sees it (B fetches it from A once), Carol too, from B's copy.
    code, body, headers = await _portrait(bob, "100@node-a")
    assert (code, body) == (200, PNG)
    assert headers.getRawHeaders("content-type") == ["image/png"]
    etag = headers.getRawHeaders("etag")[0]
    assert (await _portrait(carol, "100@node-a", etag))[0] == 304
    copies = await b.role.db.runQuery("SELECT file_id FROM files WHERE file_id = ?",
                                      (picture,))
    assert len(copies) == 1
    # Alice sees her own; a new one is a new fileID, and the old one is no longer public.
    assert (await _portrait(alice, "100@node-a"))[:2] == (200, PNG)
    newer_png = PNG + b"\x00" * 10
    newer = await _upload(alice, newer_png, "me2.png")
    await alice.ok("PUT", "me", {"portrait": newer})
    code, body, _ = await _portrait(bob, "100@node-a")
    assert (code, body) == (200, newer_png)
    # The old portrait was public on A, and is not any more (B's users keep B's copy of what
    # was public; a new one is what they are shown).
    eve = await signed_up(a, "101", "Eve")
    status, _ = await eve.call("GET", "files/" + picture)
    assert status == 404
    # What cannot be a portrait: not an image, not one's own upload, too large.
    text = await _upload(alice, b"just text, not an image", "notes.txt")
    status, answer = await alice.call("PUT", "me", {"portrait": text})
    assert (status, answer["errcode"]) == (400, "bad_portrait")
    bobs = await _upload(bob, PNG, "bob.png")
    status, answer = await alice.call("PUT", "me", {"portrait": bobs})
    assert (status, answer["errcode"]) == (404, "unknown_file")
    large = await _upload(alice, PNG + b"\x00" * (1 << 20), "large.png")
    status, answer = await alice.call("PUT", "me", {"portrait": large})
    assert (status, answer["errcode"]) == (413, "too_large")
    assert (await alice.ok("GET", "me"))["userInfo"]["portrait"] == newer
    # No portrait any more: 404.
    await alice.ok("PUT", "me", {"portrait": ""})
    assert (await _portrait(bob, "100@node-a"))[0] == 404
    status, answer = await alice.call("PUT", "me", {})
    assert status == 400


@pytest_twisted.ensureDeferred
async def test_group_recall_by_the_master_s_rule_reaches_every_server(management, tmp_path):
    """A member on another server recalls its own message through the master; the owner
    recalls anyone's; a member cannot recall another's, nor its own after the window (here
    2 s, a tenth of a second of grace)."""
    from conftest import acquainted, join_node
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    window = {"recall_window_seconds": 2.0, "recall_grace_seconds": 0.1}
    a = await join_node(management, str(tmp_path / "a"), "node-a", **window)
    b = await join_node(management, str(tmp_path / "b"), "node-b", **window)
    try:
        await acquainted(a, b)
        owner = await signed_up(a, "100", "Owner")
        local = await signed_up(a, "101", "Local")
        bob = await signed_up(b, "200", "Bob")
        gid = await _group(owner, [local, bob])

        async def send(client, text) -> str:
            answer = await client.ok("POST", "groups/%s/messages" % gid,
                                     {"messageType": "text", "content": {"message": text}})
            return answer["messageID"]

        async def shown(client, message_id):
            page = (await client.ok("GET", "groups/%s/messages" % gid))["messages"]
            return next((m for m in page if m["messageInfo"]["messageID"] == message_id),
                        None)

        mine = await send(bob, "Bob's, recalled by Bob")
        others = await send(local, "Local's, recalled by the owner")
        kept = await send(owner, "the owner's, kept")
        for client in (owner, local, bob):
            await wait_until(lambda c=client: _all_shown(c, shown, [mine, others, kept]),
                             what="the messages everywhere")
        # Bob cannot recall the owner's message; he recalls his own, through the master.
        status, answer = await bob.call("POST", "groups/%s/messages/%s/recall" % (gid, kept))
        assert (status, answer["errcode"]) == (403, "not_sender")
        await bob.ok("POST", "groups/%s/messages/%s/recall" % (gid, mine))
        for client in (owner, local, bob):
            event = await client.wait_event("group_recall",
                                            match=lambda e: e["messageID"] == mine)
            assert (event["senderID"], event["by"]) == ("200@node-b", "200@node-b")
            gone = await shown(client, mine)
            assert gone["recalled"] is True and gone["messageInfo"]["messageType"] == "repeal"
            assert gone["messageInfo"].get("content") in ({}, None)
        # The owner recalls a member's message; the master's history (grpchat) shows it
        # recalled to B as well.
        await owner.ok("POST", "groups/%s/messages/%s/recall" % (gid, others))
        await bob.wait_event("group_recall", match=lambda e: e["messageID"] == others)
        assert (await shown(bob, others))["recalled"] is True
        # Local cannot recall the owner's, and after the window not its own.
        status, answer = await local.call("POST", "groups/%s/messages/%s/recall" % (gid, kept))
        assert (status, answer["errcode"]) == (403, "not_sender")
        late = await send(local, "too late to recall")
        await deferLater(reactor, 2.2, lambda: None)
        status, answer = await local.call("POST", "groups/%s/messages/%s/recall" % (gid, late))
        assert (status, answer["errcode"]) == (409, "recall_window_passed")
        assert (await shown(owner, late))["recalled"] is False
        # Bob, on another server, is told too: his server sees the window has passed.
        bob_late = await send(bob, "Bob's, too late")
        await wait_until(lambda: _all_shown(bob, shown, [bob_late]), what="Bob's copy")
        await deferLater(reactor, 2.2, lambda: None)
        status, answer = await bob.call("POST", "groups/%s/messages/%s/recall"
                                        % (gid, bob_late))
        assert (status, answer["errcode"]) == (409, "recall_window_passed")
        assert (await shown(owner, bob_late))["recalled"] is False
        # Not a member / no such message.
        carol = await signed_up(b, "201", "Carol")
        status, answer = await carol.call("POST", "groups/%s/messages/%s/recall" % (gid, kept))
        assert (status, answer["errcode"]) == (404, "unknown_group")
        status, answer = await owner.call("POST", "groups/%s/messages/nope@node-a/recall"
                                          % gid)
        assert (status, answer["errcode"]) == (404, "unknown_message")
        # Search never finds a recalled message; the kept one is still there.
        found = await owner.ok("GET", "messages/search", params={"q": "recalled"})
        assert found["groupMessages"] == []
        assert (await shown(bob, kept))["messageInfo"]["content"]["message"] == \
            "the owner's, kept"
    finally:
        await b.stop()
        await a.stop()


async def _all_shown(client, shown, ids) -> bool:
    for message_id in ids:
        if await shown(client, message_id) is None:
            return False
    return True


@pytest_twisted.ensureDeferred
async def test_a_group_announcement_reaches_every_member_s_server(pair):
    a, b = pair
    owner = await signed_up(a, "100", "Owner")
    admin = await signed_up(a, "101", "Admin")
    bob = await signed_up(b, "200", "Bob")
    gid = await _group(owner, [admin, bob])
    # A group that never had an announcement is described as the standard does.
    assert "groupNotice" not in (await bob.ok("GET", "groups/" + gid))["groupInfo"]
    await owner.ok("POST", "groups/%s/admins" % gid, {"userID": "101@node-a", "admin": True})
    text = "周五下午三点开会\nFriday 3 pm: all hands"
    answer = await admin.ok("PUT", "groups/%s/announcement" % gid, {"text": text})
    assert (answer["groupNotice"]["text"], answer["groupNotice"]["userID"]) == \
        (text, "101@node-a")
    event = await bob.wait_event("group_notify", match=lambda e: e.get("operType") == 7 and
                                 (e.get("groupInfo") or {}).get("groupNotice"))
    assert event["groupInfo"]["groupNotice"]["text"] == text
    # B's own view keeps it (its group list), and the master says it (the group's info).
    mine = (await bob.ok("GET", "groups"))["groups"][0]
    assert mine["groupInfo"]["groupNotice"]["text"] == text
    assert (await bob.ok("GET", "groups/" + gid))["groupInfo"]["groupNotice"]["text"] == text
    # Only the owner and admins; not too long; "" clears it, everywhere.
    status, answer = await bob.call("PUT", "groups/%s/announcement" % gid, {"text": "mine"})
    assert (status, answer["errcode"]) == (403, "not_admin")
    status, answer = await owner.call("PUT", "groups/%s/announcement" % gid,
                                      {"text": "x" * 2001})
    assert (status, answer["errcode"]) == (400, "bad_text")
    await owner.ok("PUT", "groups/%s/announcement" % gid, {"text": ""})

    async def cleared():
        groups = (await bob.ok("GET", "groups"))["groups"]
        return groups[0]["groupInfo"]["groupNotice"]["text"] == ""

    await wait_until(cleared, what="the announcement cleared at B")
