"""The bridge (docs/bridge.md): an existing IM system acts for its users through the client
API with its bridge token and ``?user_id=``, on real nodes: it provisions a user, sends as it
across servers, reads its events, recalls, befriends, runs a group; a wrong token is 401, a
user outside its namespace 403, and its users cannot log in with a password."""

from __future__ import annotations

import json

import pytest
import pytest_twisted
import treq

from conftest import ApiClient, add_user, join_node, signed_up, start_management
from imfed.config import ConfigError, parse

TOKEN = "b" * 40


class Bridge:
    """The bridged system, as its server code would call imfed."""

    def __init__(self, node, token: str = TOKEN) -> None:
        self.node, self.token = node, token

    async def call(self, method: str, path: str, body=None, user_id: str | None = None,
                   params=None):
        params = dict(params or {})
        if user_id is not None:
            params["user_id"] = user_id
        response = await treq.request(
            method, self.node.client_url + path, params=params,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": ["Bearer " + self.token]})
        return response.code, json.loads((await treq.content(response)).decode())

    async def ok(self, method, path, body=None, user_id=None, params=None) -> dict:
        status, answer = await self.call(method, path, body, user_id, params)
        assert status in (200, 201) and answer["code"] == 0, (path, status, answer)
        return answer


@pytest.fixture
def bridge_top():
    return {"bridge": {"token": TOKEN, "users": r"86\d{11}"}}


@pytest_twisted.async_yield_fixture
async def bridged(tmp_path, bridge_top):
    """Node A with a bridged system whose users are the phone numbers 86 + 11 digits; node B
    plain."""
    management = start_management(str(tmp_path / "m"))
    a = await join_node(management, str(tmp_path / "a"), "node-a", top=bridge_top)
    b = await join_node(management, str(tmp_path / "b"), "node-b")
    await a.role.refresher.refresh()
    await b.role.refresher.refresh()
    yield a, b
    await a.stop()
    await b.stop()
    await management.service.stopService()


LI = "8613800000001@node-a"


@pytest_twisted.ensureDeferred
async def test_the_system_acts_for_its_user_across_servers(bridged):
    a, b = bridged
    system = Bridge(a)
    made = await system.ok("POST", "bridge/users", {"phoneNumber": "8613800000001",
                                                    "name": "李雷"})
    assert made["created"] is True and made["userInfo"]["userID"] == LI
    again = await system.ok("POST", "bridge/users", {"phoneNumber": "8613800000001",
                                                     "name": "李雷"})
    assert again["created"] is False
    me = await system.ok("GET", "me", user_id=LI)
    assert me["userInfo"]["name"] == "李雷"
    bob = await signed_up(b, "200", "Bob")
    sent = await system.ok("POST", "messages", {"recvID": "200@node-b", "messageType": "text",
                                                "content": {"message": "from the bridge"}},
                           user_id=LI)
    mid = sent["message"]["messageInfo"]["messageID"]
    got = await bob.wait_event("message")
    assert got["messageInfo"]["senderID"] == LI
    assert got["messageInfo"]["content"]["message"] == "from the bridge"
    await bob.ok("POST", "messages", {"recvID": LI, "messageType": "text",
                                      "content": {"message": "back to the bridge"}})
    # The system reads its user's events like a client, by long poll.
    seen = []
    for _ in range(50):
        answer = await system.ok("GET", "events", user_id=LI, params={"since": "0", "wait": "1"})
        seen = [e["data"]["messageInfo"]["content"]["message"] for e in answer["events"]
                if e["type"] == "message"]
        if "back to the bridge" in seen:
            break
    assert "back to the bridge" in seen
    await system.ok("POST", "messages/%s/recall" % mid, user_id=LI)
    recall = await bob.wait_event("recall")
    assert recall["messageID"] == mid


@pytest_twisted.ensureDeferred
async def test_friends_and_groups_through_the_bridge(bridged):
    a, b = bridged
    system = Bridge(a)
    await system.ok("POST", "bridge/users", {"phoneNumber": "8613800000001", "name": "Li"})
    bob = await signed_up(b, "200", "Bob")
    request = await system.ok("POST", "friends/requests", {"userID": "200@node-b"},
                              user_id=LI)
    assert request["requestID"]
    incoming = await bob.wait_event("friend_request")
    assert incoming["from"] == LI
    (pending,) = (await bob.ok("GET", "friends/requests"))["requests"]
    await bob.ok("POST", "friends/requests/%s/answer" % pending["requestID"], {"agree": True})
    for _ in range(100):
        friends = (await system.ok("GET", "friends", user_id=LI))["friends"]
        if friends:
            break
        from twisted.internet import reactor
        from twisted.internet.task import deferLater
        await deferLater(reactor, 0.05, lambda: None)
    assert [f["userID"] for f in friends] == ["200@node-b"]
    group = await system.ok("POST", "groups", {"groupName": "bridged"}, user_id=LI)
    gid = group["groupInfo"]["groupID"]
    await system.ok("POST", "groups/%s/invite" % gid, {"userIDs": ["200@node-b"]}, user_id=LI)
    invitation = await bob.wait_event("group_invitation")
    await bob.ok("POST", "groups/invitations/%s/answer" % invitation["invitationID"],
                 {"agree": True})
    await bob.wait_event("group_joined")
    await system.ok("POST", "groups/%s/messages" % gid, {"messageType": "text",
                                                        "content": {"message": "hi group"}},
                    user_id=LI)
    said = await bob.wait_event("group_message")
    assert said["messageInfo"]["content"]["message"] == "hi group"


@pytest_twisted.ensureDeferred
async def test_tokens_and_namespace_are_checked(bridged):
    a, b = bridged
    system = Bridge(a)
    await system.ok("POST", "bridge/users", {"phoneNumber": "8613800000001", "name": "Li"})
    add_user(a, "100", "Alice")  # a user of node-a's own, outside the system's namespace
    wrong = Bridge(a, "c" * 40)
    status, answer = await wrong.call("GET", "me", user_id=LI)
    assert (status, answer["errcode"]) == (401, "no_session")
    status, answer = await wrong.call("POST", "bridge/users", {"phoneNumber": "8613800000002",
                                                               "name": "x"})
    assert (status, answer["errcode"]) == (401, "bad_bridge_token")
    status, answer = await system.call("GET", "me")
    assert (status, answer["errcode"]) == (401, "no_user_id")
    for user_id in ("100@node-a", "200@node-b"):
        status, answer = await system.call("GET", "me", user_id=user_id)
        assert (status, answer["errcode"]) == (403, "outside_namespace"), user_id
    status, answer = await system.call("POST", "bridge/users", {"phoneNumber": "100",
                                                                "name": "x"})
    assert (status, answer["errcode"]) == (403, "outside_namespace")
    status, answer = await system.call("GET", "me", user_id="8613800000009@node-a")
    assert (status, answer["errcode"]) == (404, "unknown_user")
    status, answer = await system.call("POST", "messages", {"recvID": "nobody",
                                                            "messageType": "text"},
                                       user_id=LI)
    assert (status, answer["errcode"]) == (400, "bad_recvID")
    # A bridged user has no password: nothing logs in as it.
    status, answer = await ApiClient(a, "8613800000001", "!bridge").call(
        "POST", "login", {"login": "8613800000001", "password": "!bridge"})
    assert status == 401


@pytest_twisted.ensureDeferred
async def test_a_node_without_a_bridge_takes_no_bridge_token(tmp_path):
    management = start_management(str(tmp_path / "m"))
    a = await join_node(management, str(tmp_path / "a"), "node-a")
    try:
        status, answer = await Bridge(a).call("POST", "bridge/users",
                                              {"phoneNumber": "8613800000001", "name": "x"})
        assert (status, answer["errcode"]) == (401, "bad_bridge_token")
        status, answer = await Bridge(a).call("GET", "me", user_id=LI)
        assert (status, answer["errcode"]) == (401, "no_session")
    finally:
        await a.stop()
        await management.service.stopService()


@pytest.mark.parametrize("bridge, key", [
    ({"token": "short", "users": "all"}, "bridge.token"),
    ({"token": "x" * 30, "users": "(unclosed"}, "bridge.users"),
    ({"users": "all"}, "bridge.token"),
    ({"token": "x" * 30, "users": "all", "url": "ftp://x"}, "bridge.url"),
    ({"token": "x" * 30, "users": "all", "url": "https://x"}, "bridge.push_token"),
])
def test_bridge_config_mistakes_name_the_key(bridge, key):
    with pytest.raises(ConfigError) as info:
        parse({"data_dir": "d", "node": {"server_id": "n", "listen": "127.0.0.1:1",
                                         "management_url": "https://m"}, "bridge": bridge})
    assert info.value.key == key


# -- pushes to the system, through the reference receiver (examples/bridge_receiver.py) --

PUSH_KEY = "p" * 32
SYSTEM_USERS = {"8613800000007": {"name": "Zhou", "verifyType": 2}}
"""Users the bridged system has that imfed has not been told of."""


@pytest_twisted.async_yield_fixture
async def pushed(tmp_path):
    """Node A bridged to a system whose receiver is examples/bridge_receiver.py on loopback;
    node B plain.  Yields (a, b, receiver control)."""
    from conftest import free_port

    port = free_port()
    out = str(tmp_path / "events.jsonl")
    control = ReceiverControl(port, out)
    control.start()
    top = {"bridge": {"token": TOKEN, "users": r"86\d{11}",
                      "url": "http://127.0.0.1:%d" % port, "push_token": PUSH_KEY}}
    management = start_management(str(tmp_path / "m"))
    a = await join_node(management, str(tmp_path / "a"), "node-a", top=top)
    b = await join_node(management, str(tmp_path / "b"), "node-b")
    await a.role.refresher.refresh()
    await b.role.refresher.refresh()
    await Bridge(a).ok("POST", "bridge/users", {"phoneNumber": "8613800000001", "name": "Li"})
    a.role.bridge_pusher.max_seconds = 1.0  # retries within a second here (60 s by default)
    yield a, b, control
    await a.stop()
    await b.stop()
    await management.service.stopService()
    await control.stop()


class ReceiverControl:
    def __init__(self, port: int, out: str, key: str = PUSH_KEY) -> None:
        self.port, self.out, self.key, self.listening = port, out, key, None

    def start(self, key: str | None = None) -> None:
        from twisted.internet import reactor
        from twisted.web.server import Site

        from examples.bridge_receiver import Receiver

        self.listening = reactor.listenTCP(
            self.port, Site(Receiver(key or self.key, self.out, SYSTEM_USERS)),
            interface="127.0.0.1")

    async def stop(self) -> None:
        if self.listening is not None:
            await self.listening.stopListening()
            self.listening = None

    def events(self) -> list[dict]:
        import os

        if not os.path.exists(self.out):
            return []
        with open(self.out, encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    def texts(self) -> list[str]:
        return [e["data"]["messageInfo"]["content"]["message"] for e in self.events()
                if e["type"] == "message" and e["userID"] == LI]


@pytest_twisted.ensureDeferred
async def test_what_happens_to_a_bridged_user_is_pushed_signed(pushed):
    from conftest import wait_until

    a, b, receiver = pushed
    bob = await signed_up(b, "200", "Bob")
    await bob.ok("POST", "messages", {"recvID": LI, "messageType": "text",
                                      "content": {"message": "to the bridged system"}})
    await wait_until(lambda: receiver.texts() == ["to the bridged system"], what="push")
    await bob.ok("POST", "friends/requests", {"userID": LI})
    await wait_until(lambda: any(e["type"] == "friend_request" for e in receiver.events()),
                     what="friend request pushed")
    assert all(e["userID"] == LI for e in receiver.events())  # only the system's users
    seqs = [e["seq"] for e in receiver.events()]
    assert seqs == sorted(set(seqs))  # in order, each once


@pytest_twisted.ensureDeferred
async def test_a_system_that_is_down_loses_nothing(pushed):
    from conftest import wait_until

    a, b, receiver = pushed
    bob = await signed_up(b, "200", "Bob")
    await receiver.stop()
    for i in range(3):
        await bob.ok("POST", "messages", {"recvID": LI, "messageType": "text",
                                          "content": {"message": "m%d" % i}})
    await wait_until(lambda: a.role.bridge_pusher.failures >= 1, what="a failed push")
    ok, checks = await a.role.health()
    assert checks["bridge"]["backlog"] >= 3 and checks["bridge"]["error"]
    receiver.start()
    await wait_until(lambda: receiver.texts() == ["m0", "m1", "m2"], timeout=30,
                     what="the backlog pushed after the system came back")
    ok, checks = await a.role.health()
    assert checks["bridge"]["backlog"] == 0 and checks["bridge"]["error"] == ""


@pytest_twisted.ensureDeferred
async def test_a_push_the_system_refuses_is_sent_again(pushed):
    from conftest import wait_until

    a, b, receiver = pushed
    await receiver.stop()
    receiver.start(key="w" * 32)  # the system checks against another key: 401 to every push
    bob = await signed_up(b, "200", "Bob")
    await bob.ok("POST", "messages", {"recvID": LI, "messageType": "text",
                                      "content": {"message": "kept"}})
    await wait_until(lambda: a.role.bridge_pusher.last_error == "HTTP 401", what="refusal")
    assert receiver.texts() == []
    await receiver.stop()
    receiver.start()  # the right key
    await wait_until(lambda: receiver.texts() == ["kept"], timeout=30, what="the resend")


@pytest_twisted.ensureDeferred
async def test_users_imfed_has_not_met_are_asked_of_the_system(pushed):
    """Another server names a user of the system's namespace that imfed has not been told of:
    imfed asks the system (GET /users/<phone>, signed), makes the user, and the message is
    delivered and pushed; a phone the system does not have is a 404, asked once a minute."""
    from conftest import wait_until

    a, b, receiver = pushed
    bob = await signed_up(b, "13600000002", "Bob")
    found = await bob.ok("GET", "users/info", params={"userID": "8613800000007@node-a"})
    assert found["userInfo"]["name"] == "Zhou"
    await bob.ok("POST", "messages", {"recvID": "8613800000007@node-a", "messageType": "text",
                                      "content": {"message": "hello Zhou"}})
    await wait_until(lambda: any(
        e["userID"] == "8613800000007@node-a" and e["type"] == "message"
        for e in receiver.events()), what="the push to Zhou")
    status, answer = await bob.call("GET", "users/info",
                                    params={"userID": "8613800000099@node-a"})
    assert status == 404 and answer["errcode"] == "unknown_user"
    # Not a user of the system's namespace: not asked, and not made.
    status, _ = await bob.call("GET", "users/info", params={"userID": "13900000000@node-a"})
    assert status == 404
    assert len([u for u in node_users(a)]) == 2  # Li (provisioned) and Zhou (looked up)
    # A system that does not answer is a temporary failure (503), not "no such user": at
    # node A, and for Bob asking through node B.
    await receiver.stop()
    status, answer = await Bridge(a).call("GET", "users/info", user_id=LI,
                                          params={"userID": "8613800000055@node-a"})
    assert status == 503 and answer["errcode"] == "source_unavailable"
    status, answer = await bob.call("GET", "users/info",
                                    params={"userID": "8613800000056@node-a"})
    assert status == 503 and answer["errcode"] == "peer_unavailable"


def node_users(node) -> list:
    from conftest import node_rows

    return node_rows(node, "SELECT user_id FROM users")


def test_the_push_cursor_survives_the_upgrade_to_event_cursors(tmp_path):
    """Schema 008 moves the bridge's cursor (bridge_state, 007) into event_cursors: an
    upgraded node goes on pushing after what the system already acknowledged."""
    import sqlite3

    from imfed.node.store import cursors
    from imfed.storage import migrate
    from test_outbox_heads import _store_at

    path, conn = _store_at(tmp_path, 7)
    conn.execute("INSERT INTO bridge_state VALUES (1, 41)")
    conn.commit()
    conn.close()
    assert migrate(path, "node") >= 8
    conn = sqlite3.connect(path)
    assert cursors.cursor(conn.cursor(), "bridge") == 41
    assert cursors.cursor(conn.cursor(), "xmpp") == 0
    conn.close()


# -- issue #29, 7: what imfed takes from a bridged system it does not control --

class _System:
    """A bridged system's HTTP side as a test controls it: records each transaction pushed
    (txnId, seqs), refuses the first ``refuse`` of them, and answers lookups as told."""

    def __init__(self, refuse: int = 0) -> None:
        from twisted.web.resource import Resource

        self.pushes: list[tuple[str, list[int]]] = []
        self.refuse = refuse
        self.lookups: dict[str, tuple[int, dict, bytes]] = {}
        system = self

        class Root(Resource):
            isLeaf = True

            def render_POST(self, request):
                body = json.loads(request.content.read())
                system.pushes.append((body["txnId"], [e["seq"] for e in body["events"]]))
                if system.refuse > 0:
                    system.refuse -= 1
                    request.setResponseCode(500)
                    return b"{}"
                return b"{}"

            def render_GET(self, request):
                code, headers, body = system.lookups.get(request.path.decode(), (404, {}, b""))
                request.setResponseCode(code)
                for k, v in headers.items():
                    request.setHeader(k, v)
                return body

        self.root = Root()

    def listen(self):
        from twisted.internet import reactor
        from twisted.web.server import Site

        return reactor.listenTCP(0, Site(self.root), interface="127.0.0.1")


@pytest_twisted.ensureDeferred
async def test_a_push_is_sent_again_as_it_was_and_answers_are_capped(tmp_path):
    """A transaction refused once is sent again with the same txnId and the same events,
    though newer events came meanwhile (they go in the next one); a lookup answer over the
    cap, or a redirect, is a failure (503), not read whole or followed."""
    from conftest import wait_until

    system = _System(refuse=1)
    port = system.listen()
    elsewhere = _System()
    elsewhere.lookups["/users/8613800000008"] = (200, {}, b'{"name": "Redirected"}')
    other_port = elsewhere.listen()
    top = {"bridge": {"token": TOKEN, "users": r"86\d{11}", "push_token": PUSH_KEY,
                      "url": "http://127.0.0.1:%d" % port.getHost().port}}
    management = start_management(str(tmp_path / "m"))
    a = await join_node(management, str(tmp_path / "a"), "node-a", top=top)
    try:
        a.role.bridge_pusher.max_seconds = a.role.bridge_pusher.initial_seconds = 0.5
        await Bridge(a).ok("POST", "bridge/users", {"phoneNumber": "8613800000001",
                                                    "name": "Li"})
        alice = await signed_up(a, "100", "Alice")
        await alice.ok("POST", "messages", {"recvID": LI, "messageType": "text",
                                            "content": {"message": "one"}})
        await wait_until(lambda: len(system.pushes) >= 1, what="the first push")
        await alice.ok("POST", "messages", {"recvID": LI, "messageType": "text",
                                            "content": {"message": "two"}})
        await wait_until(lambda: len(system.pushes) >= 3, what="the resend and the next")
        first, again, after = system.pushes[:3]
        assert again == first  # same txnId, same events
        assert set(after[1]).isdisjoint(first[1]) and after[0] != first[0]

        big = json.dumps({"name": "Big", "pad": "x" * (1 << 20)}).encode()
        system.lookups["/users/8613800000007"] = (200, {}, big)
        system.lookups["/users/8613800000008"] = (302, {"Location": "http://127.0.0.1:%d/users/"
                                                        "8613800000008"
                                                        % other_port.getHost().port}, b"")
        for phone in ("8613800000007", "8613800000008"):
            status, answer = await Bridge(a).call("GET", "users/info", user_id=LI,
                                                  params={"userID": phone + "@node-a"})
            assert status == 503 and answer["errcode"] == "source_unavailable", answer
        assert node_users(a) and "8613800000008@node-a" not in [u[0] for u in node_users(a)]
    finally:
        await a.stop()
        await management.service.stopService()
        await port.stopListening()
        await other_port.stopListening()
