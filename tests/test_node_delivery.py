"""Durable delivery, access control and suspension between two nodes on loopback."""

from __future__ import annotations

import os
import sys

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue

from imfed.management import review

from conftest import (REPO, ApiClient, RunningNode, add_user, node_rows, node_write,
                      signed_up,
                      wait_until)


def _received(node, sender: str) -> list[str]:
    import json

    rows = node_rows(node, "SELECT content FROM messages WHERE sender_id = ? ORDER BY seq",
                     sender)
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
    add_user(b, "200", "Bob")
    alice = await signed_up(a, "100", "Alice")
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
    alice = await signed_up(a, "100", "Alice")
    bob = await signed_up(b, "200", "Bob")

    async def send(who, to, text):
        return await who.call("POST", "messages", {"recvID": to, "messageType": "text",
                                                   "content": {"message": text}})

    # B refuses A inbound: A's message is refused there and shown failed to Alice.
    code, out = await imfed(b, "acl", "mode", "in", "blacklist")
    assert code == 0, out
    code, out = await imfed(b, "acl", "add", "in", "blacklist", "node-a")
    assert code == 0, out
    # A serverId the directory does not know is refused (a typo), unless forced.
    code, out = await imfed(b, "acl", "add", "in", "blacklist", "node-q")
    assert code == 1 and "--force" in out, out
    code, out = await imfed(b, "acl", "add", "in", "blacklist", "node-q", "--force")
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
    alice = await signed_up(a, "100", "Alice")
    bob = await signed_up(b, "200", "Bob")
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
    await a.role.refresher.refresh()
    await wait_until(lambda: b.role.directory.active("node-a"), what="B to see A resumed")
    b.role.outbox.wake()
    await wait_until(lambda: _received(b, "100@node-a") == ["while suspended"], timeout=30,
                     what="A's message")
    await wait_until(lambda: _received(a, "200@node-b") == ["to a suspended server"],
                     timeout=30, what="B's message")


def _outbox(node) -> list:
    return node_rows(node, "SELECT destination, last_error FROM outbox")


@pytest_twisted.ensureDeferred
async def test_give_up_recall_window_and_deregistration(management, tmp_path):
    from twisted.internet.task import deferLater

    from conftest import join_node

    a = await join_node(management, str(tmp_path / "a"), "node-a", outbox_give_up_seconds=1.0,
                        recall_window_seconds=1.0)
    b = await join_node(management, str(tmp_path / "b"), "node-b")
    c = await join_node(management, str(tmp_path / "c"), "node-c")
    try:
        await a.role.refresher.refresh()
        await wait_until(lambda: a.role.directory.active("node-c"), what="A to know C")
        add_user(b, "200", "Bob")
        add_user(c, "300", "Carol")
        alice = await signed_up(a, "100", "Alice")

        # Search asks every server; one that does not answer is reported, not fatal.
        await c.stop()
        found = await alice.ok("GET", "users/search", params={"q": "Bob"})
        assert [u["userID"] for u in found["users"]] == ["200@node-b"]
        assert found["servers"]["node-b"] == "ok"
        assert found["servers"]["node-c"].startswith("unreachable")

        # C stays down past the give-up time: the message is failed for its sender.
        sent = await alice.ok("POST", "messages", {"recvID": "300@node-c", "messageType": "text",
                                                   "content": {"message": "anyone?"}})
        mid = sent["message"]["messageInfo"]["messageID"]
        failed = await alice.wait_event("delivery", match=lambda d: d["messageID"] == mid)
        assert failed["state"] == "failed" and "gave up" in failed["error"]
        assert _outbox(a) == []

        # The recall window is one second here.
        sent = await alice.ok("POST", "messages", {"recvID": "200@node-b", "messageType": "text",
                                                   "content": {"message": "too late"}})
        await deferLater(reactor, 1.2, lambda: None)
        status, answer = await alice.call("POST", "messages/%s/recall"
                                          % sent["message"]["messageInfo"]["messageID"])
        assert status == 409 and answer["errcode"] == "recall_window_passed"

        # B deregisters: after the notification A refuses it both ways.
        from imfed.management import review, store

        client = b.role.client
        answer = await client.call("manager", management.url, "POST",
                                   "/sns/restApi/managerserver/deregister", {"reason": "closing"})
        await management.role.store.run(review.approve, answer.body["applicationId"],
                                        management.ca, "test", 30,
                                        management.role.store.now_ms())
        await wait_until(lambda: a.role.directory.get("node-b").status == 2, timeout=60,
                         what="A to see B deregistered")
        status, answer = await alice.call("POST", "messages", {
            "recvID": "200@node-b", "messageType": "text", "content": {"message": "bye?"}})
        assert status == 404 and answer["errcode"] == "unknown_server"
        peer = b.role.directory.active("node-a")
        refused = await b.role.client.call("node-a", peer.address, "GET", "/sns/users",
                                           query={"userID": "100@node-a"})
        assert refused.status == 401
        assert await management.role.store.run(store.get_server, "node-b") is not None
    finally:
        for node in (a, b, c):
            if node.service.running:
                await node.stop()


@pytest_twisted.ensureDeferred
async def test_user_commands_and_history_paging(pair):
    import json

    a, b = pair
    code, out = await imfed(a, "user", "add", "13500000009", "--name", "王五",
                            "--password", "first-pw", "--verify-type", "1")
    assert code == 0 and "13500000009@node-a" in out, out
    code, out = await imfed(a, "user", "add", "13500000009", "--name", "again",
                            "--password", "long enough")
    assert code == 1 and "exists" in out
    for phone, password, why in (("bad phone", "long enough", "phone"),
                                 ("12", "long enough", "phone"),
                                 ("13500000010", "short", "at least 8")):
        code, out = await imfed(a, "user", "add", phone, "--name", "x", "--password", password)
        assert code == 1 and why in out and "Traceback" not in out, out
    # No terminal to ask for a password on: one line, not an EOFError.
    code, out = await imfed(a, "user", "add", "13500000010", "--name", "x")
    assert code == 1 and out.count("\n") == 1 and "--password" in out, out
    code, out = await imfed(a, "user", "list", "--json")
    listed = json.loads(out)
    assert [(u["userID"], u["name"], u["verifyType"]) for u in listed] == [
        ("13500000009@node-a", "王五", 1)]
    # --config before the verb, or the node's data folder instead of a config file.
    # (A data folder names no PostgreSQL database: that needs the config.)
    places = [["--config", a.config_path, "user", "list"]]
    if a.role.db.dialect == "sqlite":
        places.append(["user", "list", "--data-dir", a.config.data_dir])
    for where in places:
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-m", "imfed.cli", *where], env=dict(os.environ, PYTHONPATH=REPO),
            path=REPO)
        assert code == 0 and b"13500000009@node-a" in out, (where, out, err)
    wang = await ApiClient(a, "13500000009", "first-pw").login()
    # The phone number alone names a user of this node.
    code, out = await imfed(a, "user", "passwd", "13500000009", "--password", "second-pw")
    assert code == 0 and "13500000009@node-a" in out, out
    await _expire(a)  # a session the daemon knew is asked about again after a second
    status, _ = await wang.call("GET", "me")
    assert status == 401  # a new password ends the sessions
    wang = await ApiClient(a, "13500000009", "second-pw").login()

    # History pages, newest first.
    add_user(b, "200", "Bob")
    for i in range(5):
        await wang.ok("POST", "messages", {"recvID": "200@node-b", "messageType": "text",
                                           "content": {"message": "p%d" % i}})
    first = await wang.ok("GET", "conversations/200@node-b/messages", params={"limit": "2"})
    assert [m["messageInfo"]["content"]["message"] for m in first["messages"]] == ["p4", "p3"]
    second = await wang.ok("GET", "conversations/200@node-b/messages",
                           params={"limit": "2", "before": str(first["nextBefore"])})
    assert [m["messageInfo"]["content"]["message"] for m in second["messages"]] == ["p2", "p1"]
    last = await wang.ok("GET", "conversations/200@node-b/messages",
                         params={"limit": "2", "before": str(second["nextBefore"])})
    assert [m["messageInfo"]["content"]["message"] for m in last["messages"]] == ["p0"]
    assert last["nextBefore"] is None

    # Someone on B cannot befriend a verifyType-1 user.
    bob = await ApiClient(b, "200").login()
    await bob.ok("POST", "friends/requests", {"userID": "13500000009@node-a"})
    refused = await bob.wait_event("friend_answer")
    assert refused["agree"] is False and "403" in refused["error"]
    assert (await wang.ok("GET", "friends/requests"))["requests"] == []
    assert (await bob.ok("GET", "friends/requests"))["requests"] == []

    code, out = await imfed(a, "user", "del", "13500000009@node-a")
    assert code == 0, out
    await _expire(a)  # the daemon asks the store about a session it knows within a second
    status, _ = await wang.call("GET", "me")
    assert status == 401


@pytest_twisted.ensureDeferred
async def test_statuses_not_confirmed_for_too_long_stop_the_federation(tmp_path):
    """Issue #29, 2: a node whose management server has not confirmed the directory for
    longer than peer_status_max_age_seconds refuses other servers' calls (503) and holds its
    own, fails /health, and takes up again once the management server answers."""
    from twisted.internet.task import deferLater

    from conftest import join_node, start_management, signed_up

    data = str(tmp_path / "m")
    management = start_management(data)
    port = management.port
    settings = dict(peer_status_max_age_seconds=2, directory_refresh_seconds=0.3)
    a = await join_node(management, str(tmp_path / "a"), "node-a", **settings)
    b = await join_node(management, str(tmp_path / "b"), "node-b")
    try:
        await a.role.refresher.refresh()
        await b.role.refresher.refresh()
        await wait_until(lambda: a.role.directory.active("node-b") and
                         b.role.directory.active("node-a"), what="directories")
        alice = await signed_up(a, "100", "Alice")
        add_user(b, "200", "Bob")
        await management.service.stopService()
        await wait_until(lambda: a.role.reach.unconfirmed() is not None, timeout=10,
                         what="statuses unconfirmed")
        ok, checks = await a.role.health()
        assert not ok and "statusesUnconfirmed" in checks["management"]
        peer = b.role.directory.active("node-a")
        answer = await b.role.client.call("node-a", peer.address, "GET", "/sns/verify/users",
                                          query={"userID": "100@node-a"})
        assert (answer.status, answer.body["errcode"]) == (503, "status_unconfirmed")
        sent = await alice.ok("POST", "messages", {"recvID": "200@node-b",
                                                   "messageType": "text",
                                                   "content": {"message": "held"}})
        assert sent["message"]["state"] == "queued"
        await deferLater(reactor, 1.0, lambda: None)
        assert _received(b, "100@node-a") == []  # held while unconfirmed

        management = start_management(data, port=port)
        await wait_until(lambda: _received(b, "100@node-a") == ["held"], timeout=15,
                         what="delivery once confirmed")
        answer = await b.role.client.call("node-a", peer.address, "GET", "/sns/verify/users",
                                          query={"userID": "100@node-a"})
        assert answer.status == 200
        ok, _ = await a.role.health()
        assert ok
    finally:
        await a.stop()
        await b.stop()
        await management.service.stopService()


@pytest_twisted.ensureDeferred
async def test_strangers_messages_are_bounded_and_can_be_refused(management, tmp_path):
    """Issue #29, 8: one-to-one messages from users who are not friends are taken up to a
    daily limit per sender and per recipient (then 429: the sending server holds them and
    tries again later), a friend or someone the user wrote to is not bounded, and a user may
    refuse strangers altogether (403, final)."""
    from twisted.internet.task import deferLater

    from conftest import acquainted, join_node

    b = await join_node(management, str(tmp_path / "b"), "node-b",
                        stranger_messages_per_sender=3, stranger_messages_per_user=5)
    a = await join_node(management, str(tmp_path / "a"), "node-a")
    try:
        await acquainted(a, b)
        strangers = [await signed_up(a, "10%d" % i, "Stranger %d" % i) for i in range(3)]
        bob = await signed_up(b, "200", "Bob")
        from twisted.logger import globalLogPublisher

        failures = []

        def observe(event):
            if event.get("log_failure") is not None:
                failures.append(event)

        globalLogPublisher.addObserver(observe)
        try:
            # More than a lane's window (8): those behind the refused one wait, quietly.
            for i in range(12):
                await strangers[0].ok("POST", "messages", {
                    "recvID": "200@node-b", "messageType": "text",
                    "content": {"message": "s0-%d" % i}})
            await wait_until(lambda: len(_received(b, "100@node-a")) >= 3,
                             what="three taken")
            await deferLater(reactor, 1.0, lambda: None)
        finally:
            globalLogPublisher.removeObserver(observe)
        assert _received(b, "100@node-a") == ["s0-0", "s0-1", "s0-2"]  # the rest held
        assert not failures, [e.get("log_format") for e in failures]
        rows = node_rows(a, "SELECT last_error FROM outbox ORDER BY seq")
        assert rows and "429" in rows[0][0], rows  # the head: refused, the rest behind it
        # Per recipient: five in all from strangers.
        for i in range(3):
            await strangers[1].ok("POST", "messages", {
                "recvID": "200@node-b", "messageType": "text",
                "content": {"message": "s1-%d" % i}})
        await wait_until(lambda: len(_received(b, "101@node-a")) >= 2, what="two more")
        await deferLater(reactor, 1.0, lambda: None)
        assert len(_received(b, "101@node-a")) == 2
        # Bob writes to stranger 2 first: a conversation, not bounded.
        await bob.ok("POST", "messages", {"recvID": "102@node-a", "messageType": "text",
                                          "content": {"message": "hello"}})
        for i in range(4):
            await strangers[2].ok("POST", "messages", {
                "recvID": "200@node-b", "messageType": "text",
                "content": {"message": "s2-%d" % i}})
        await wait_until(lambda: len(_received(b, "102@node-a")) == 4, what="a conversation")
        # Bob refuses strangers: a new one's message fails for good, with the reason.
        answer = await bob.ok("PUT", "me/strangers", {"acceptStrangers": False})
        assert answer["acceptStrangers"] is False
        assert (await bob.ok("GET", "me"))["acceptStrangers"] is False
        newcomer = await signed_up(a, "109", "Newcomer")
        sent = await newcomer.ok("POST", "messages", {"recvID": "200@node-b",
                                                      "messageType": "text",
                                                      "content": {"message": "hi?"}})
        mid = sent["message"]["messageInfo"]["messageID"]
        failed = await newcomer.wait_event("delivery", match=lambda d: d["messageID"] == mid)
        assert failed["state"] == "failed" and "friends only" in failed["error"], failed
        # Locally too.
        local = await signed_up(b, "201", "Local")
        status, answer = await local.call("POST", "messages", {
            "recvID": "200@node-b", "messageType": "text", "content": {"message": "x"}})
        assert (status, answer["errcode"]) == (403, "strangers_refused")
    finally:
        await a.stop()
        await b.stop()


@pytest_twisted.ensureDeferred
async def test_a_peer_that_answers_again_is_tried_at_once(management, tmp_path):
    """Issue #30, 7: what is owed to a peer that was down waits out its backoff no longer
    once the peer shows it is back (a call from it), and `imfed queue` shows the queue and
    `imfed queue retry` makes it due at once."""
    from twisted.internet.task import deferLater

    from conftest import acquainted, join_node

    a = await join_node(management, str(tmp_path / "a"), "node-a",
                        outbox_retry_initial_seconds=120, outbox_retry_max_seconds=600)
    b = await join_node(management, str(tmp_path / "b"), "node-b")
    try:
        await acquainted(a, b)
        alice = await signed_up(a, "100", "Alice")
        bob = await signed_up(b, "200", "Bob")
        await b.stop()
        for text in ("while down 1", "while down 2"):
            await alice.ok("POST", "messages", {"recvID": "200@node-b", "messageType": "text",
                                                "content": {"message": text}})
        await wait_until(lambda: node_rows(a, "SELECT MAX(attempts) FROM outbox")[0][0],
                         what="a failed attempt, the next two minutes away")
        code, out = await imfed(a, "queue", "show")
        assert code == 0 and "node-b" in out and "unreachable" in out, out
        b = RunningNode(b.config).start()
        await deferLater(reactor, 1.0, lambda: None)
        assert _received(b, "100@node-a") == []  # still in its backoff
        # node-b calls node-a (Bob writes): node-a knows it is back.
        await bob.ok("POST", "messages", {"recvID": "100@node-a", "messageType": "text",
                                          "content": {"message": "I am back"}})
        await wait_until(lambda: _received(b, "100@node-a") == ["while down 1",
                                                                "while down 2"],
                         timeout=15, what="the queue sent once node-b called")
        code, out = await imfed(a, "queue", "retry", "node-b")
        assert code == 0 and "due now" in out, out
    finally:
        await a.stop()
        await b.stop()


@pytest_twisted.ensureDeferred
async def test_user_import_adds_a_csv_of_users_all_or_none(tmp_path, pair):
    """Issue #30: `imfed user import FILE.csv` adds a company's users in one go (the running
    node takes them at once: they log in); a file with any wrong row (a short password, a
    phone twice, a user who exists, a bad header) adds nobody and names every wrong line."""
    import csv

    a, _ = pair
    add_user(a, "13500000001", "Existing")
    good = tmp_path / "users.csv"
    with open(good, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["phone", "name", "password", "verifyType", "searchable"])
        for i in range(40):
            out.writerow(["1370000%04d" % i, "员工 %d" % i, "pw-%08d" % i, 1 + i % 2,
                          "0" if i == 3 else "1"])
    code, out = await imfed(a, "user", "import", str(good), "--dry-run")
    assert code == 0 and "40 users would be imported" in out, out
    assert len(node_rows(a, "SELECT user_id FROM users")) == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("phone,name,password\n13800000001,Ann,long-enough\n13800000002,Bo,short\n"
                   "13800000001,Ann again,long-enough\n13500000001,Exists,long-enough\n"
                   "not a phone,,long-enough\n", encoding="utf-8")
    code, out = await imfed(a, "user", "import", str(bad))
    assert code == 1 and "nothing imported; 4 problem(s)" in out, out
    for expected in ("line 3: a password has at least 8", "line 4: 13800000001 twice",
                     "line 5: 13500000001@node-a exists", "line 6: phone is 3-20 digits"):
        assert expected in out, (expected, out)
    assert out.index("line 5") < out.index("line 6") and "name is 1-64" in out
    header = tmp_path / "header.csv"
    header.write_text("phone,password,email\n13800000003,long-enough,x@y\n")
    code, out = await imfed(a, "user", "import", str(header))
    assert code == 1 and "missing name" in out and "unknown email" in out, out
    assert len(node_rows(a, "SELECT user_id FROM users")) == 1  # nobody added by those
    code, out = await imfed(a, "user", "import", str(good))
    assert code == 0 and "imported 40 users" in out, out
    rows = node_rows(a, "SELECT phone, name, verify_type, searchable FROM users "
                        "WHERE phone LIKE '1370000%' ORDER BY phone")
    assert len(rows) == 40 and tuple(rows[3]) == ("13700000003", "员工 3", 2, 0)
    await ApiClient(a, "13700000039", "pw-00000039").login()


@pytest_twisted.ensureDeferred
async def test_operator_commands_are_in_the_node_audit_log(tmp_path, pair):
    """Issue #30: every node-side admin action (user add/import/passwd/del, group removal and
    dissolution, queue retry, ACL changes) is in the node's audit log, with who ran it; the
    log is append-only (the store refuses to change or remove an entry)."""
    import json
    import sqlite3

    a, _ = pair
    from test_groups import make_group

    owner = await signed_up(a, "100", "Owner")
    gid = await make_group(owner, "g", [await signed_up(a, "101", "Member")])
    users_csv = tmp_path / "u.csv"
    users_csv.write_text("phone,name,password\n13900000001,One,long-enough\n")
    steps = [("user", "add", "13500000009", "--name", "N", "--password", "long-enough"),
             ("user", "import", str(users_csv)),
             ("user", "passwd", "13500000009", "--password", "other-enough"),
             ("user", "del", "13500000009"),
             ("group", "remove", gid, "101"),
             ("group", "dissolve", gid),
             ("queue", "retry", "node-b"),
             ("acl", "mode", "in", "blacklist"),
             ("acl", "add", "in", "blacklist", "node-b"),
             ("acl", "remove", "in", "blacklist", "node-b")]
    for step in steps:
        code, out = await imfed(a, *step)
        assert code == 0, (step, out)
    code, out = await imfed(a, "node", "audit", "--json")
    assert code == 0, out
    entries = json.loads(out)
    assert [e["action"] for e in entries] == [
        "user-add", "user-import", "user-passwd", "user-del", "group-remove", "group-dissolve",
        "queue-retry", "acl-mode", "acl-add", "acl-remove"], entries
    assert entries[0]["subject"] == "13500000009@node-a" and entries[0]["actor"]
    assert entries[1]["detail"] == {"count": 1, "users": ["13900000001"]}
    assert entries[4]["detail"] == {"members": ["101@node-a"]}
    code, out = await imfed(a, "node", "audit", "--subject", gid)
    assert code == 0 and out.count("\n") == 2 and "group-dissolve" in out, out
    refused = (sqlite3.DatabaseError,)
    try:
        import psycopg
        refused += (psycopg.Error,)
    except ImportError:
        pass
    with pytest.raises(refused):
        node_write(a, "DELETE FROM audit")
    assert len(node_rows(a, "SELECT seq FROM audit")) == len(steps)
