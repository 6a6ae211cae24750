"""The XMPP gateway (docs/bridge.md) against a real Prosody: node A's [xmpp] section makes
it a component of a Prosody whose users are A's users; they befriend, message, send files to,
recall and talk in groups with users of node B (plain imfed, through its client API), and a
Prosody restart in the middle loses nothing.  XMPP clients are real clients logging in to
Prosody (tests/xmpp_support.py)."""

from __future__ import annotations

import hashlib

import attrs
import pytest
import pytest_twisted
import treq
from twisted.words.xish import domish

from conftest import join_node, node_rows, signed_up, start_management, wait_until
from xmpp_support import COMPONENT, DOMAIN, SECRET, Prosody, XmppUser

pytestmark = pytest.mark.xmpp

ALICE = "13600000001"  # an XMPP user whose localpart is her phone number
CAROL_LOCAL, CAROL = "carol", "13600000003"  # one with a name, mapped in [xmpp.accounts]


def contact(user_id: str) -> str:
    """The JID a federation user has on the component (XEP-0106 escaping of the @)."""
    return user_id.replace("@", "\\40") + "@" + COMPONENT


@attrs.define
class World:
    prosody: Prosody
    a: object
    b: object
    management: object
    clients: list = attrs.Factory(list)

    @property
    def gateway(self):
        return self.a.role.gateway

    async def xmpp(self, user: str, password: str = "password") -> XmppUser:
        client = await XmppUser(self.prosody, user, password).connect()
        self.clients.append(client)
        return client


def gateway_top(prosody: Prosody, **overrides) -> dict:
    xmpp = {"component": COMPONENT, "domain": DOMAIN, "secret": SECRET,
            "connect": "127.0.0.1:%d" % prosody.component,
            "fetch_from": [prosody.upload_prefix], "accounts": {CAROL_LOCAL: CAROL},
            "users": r"136\d{8}", "reconnect_max_seconds": 1.0}
    xmpp.update(overrides)
    return {"xmpp": xmpp}


@pytest_twisted.async_yield_fixture
async def world(tmp_path):
    prosody = Prosody(str(tmp_path / "prosody"))
    for user in (ALICE, CAROL_LOCAL, "13900000004", "outsider"):
        prosody.register(user, "password")
    await prosody.start()
    management = start_management(str(tmp_path / "m"))
    a = await join_node(management, str(tmp_path / "a"), "node-a", top=gateway_top(prosody))
    b = await join_node(management, str(tmp_path / "b"), "node-b")
    await a.role.refresher.refresh()
    await b.role.refresher.refresh()
    await wait_until(lambda: a.role.directory.active("node-b") and
                     b.role.directory.active("node-a"), what="directories")
    w = World(prosody, a, b, management)
    await wait_until(lambda: a.role.gateway.link.online, what="the component's stream")
    yield w
    for c in w.clients:
        c.close()
    await a.stop()
    await b.stop()
    await management.service.stopService()
    await prosody.stop()


def _type(element, kind):
    return element.getAttribute("type") == kind


def _from(element, jid):
    return element.getAttribute("from", "").split("/")[0] == jid


def body(element) -> str:
    return str(element.body) if element.body is not None else ""


async def befriend(w: World, xmpp: XmppUser, bob, bob_id: str) -> None:
    """The XMPP user asks, the imfed user accepts: friends on both sides."""
    xmpp.presence(contact(bob_id), "subscribe", "hi from XMPP")
    request = await bob.wait_event("friend_request")
    assert request["from"] == "%s@node-a" % (CAROL if xmpp.user == CAROL_LOCAL else xmpp.user)
    await bob.ok("POST", "friends/requests/%s/answer" % request["requestID"], {"agree": True})
    await xmpp.wait(lambda e: e.name == "presence" and _type(e, "subscribed") and
                    _from(e, contact(bob_id)), what="subscribed")


@pytest_twisted.ensureDeferred
async def test_component_connects_answers_disco_and_refuses_outsiders(world):
    w = world
    health = await w.a.role.health()
    assert health[1]["xmpp"]["connected"] is True
    alice = await w.xmpp(ALICE)
    query = domish.Element(("http://jabber.org/protocol/disco#info", "query"))
    answer = await alice.iq(COMPONENT, "get", query)
    identity = next(next(answer.elements()).elements(
        "http://jabber.org/protocol/disco#info", "identity"))
    assert identity["category"] == "gateway" and identity["type"] == "t-ciia"
    # A user outside the gateway's namespace (localpart not a phone number, not in
    # [xmpp.accounts]; or a phone the users pattern does not take) is refused, not provisioned.
    for name in ("outsider", "13900000004"):
        stranger = await w.xmpp(name)
        stranger.message(contact("13600000002@node-b"), "let me in")
        error = await stranger.wait(lambda e: _type(e, "error"), what="an error")
        assert error.error is not None and error.error.firstChildElement().name == "forbidden"
    assert node_rows(w.a, "SELECT user_id FROM users") == []


@pytest_twisted.ensureDeferred
async def test_friends_both_ways_and_deletion(world):
    w = world
    alice = await w.xmpp(ALICE)
    bob = await signed_up(w.b, "13600000002", "Bob")
    await befriend(w, alice, bob, "13600000002@node-b")
    # Bob's side asked back (a mutual subscription); Alice approves it.
    await alice.wait(lambda e: _type(e, "subscribe") and _from(e, contact("13600000002@node-b")),
                     what="subscribe back")
    alice.presence(contact("13600000002@node-b"), "subscribed")
    friends = (await bob.ok("GET", "friends"))["friends"]
    assert [f["userID"] for f in friends] == ["13600000001@node-a"]
    # The other way: Dave on B asks Alice; she sees a subscription request and accepts.
    dave = await signed_up(w.b, "13600000005", "Dave")
    await dave.ok("POST", "friends/requests", {"userID": "13600000001@node-a",
                                                "remark": "Dave here"})
    asked = await alice.wait(lambda e: _type(e, "subscribe") and
                             _from(e, contact("13600000005@node-b")), what="Dave's request")
    assert str(asked.status) == "Dave here"
    alice.presence(contact("13600000005@node-b"), "subscribed")
    answer = await dave.wait_event("friend_answer")
    assert answer["agree"] is True and answer["userID"] == "13600000001@node-a"
    # As clients do after approving, she asks back; already friends, the gateway approves.
    alice.presence(contact("13600000005@node-b"), "subscribe")
    await alice.wait(lambda e: _type(e, "subscribed") and
                     _from(e, contact("13600000005@node-b")), what="approval of Dave")
    # Alice unsubscribes from Bob: the friendship ends on B too.
    alice.presence(contact("13600000002@node-b"), "unsubscribe")
    deleted = await bob.wait_event("friend_deleted")
    assert deleted["userID"] == "13600000001@node-a"
    # Dave deletes Alice: her roster hears it.
    await dave.ok("POST", "friends/delete", {"userID": "13600000001@node-a"})
    await alice.wait(lambda e: _type(e, "unsubscribed") and
                     _from(e, contact("13600000005@node-b")), what="Dave's deletion")
    await alice.wait(lambda e: _type(e, "unsubscribe") and
                     _from(e, contact("13600000005@node-b")), what="Dave's deletion")


@pytest_twisted.ensureDeferred
async def test_texts_both_ways_in_order(world):
    w = world
    alice = await w.xmpp(ALICE)
    carol = await w.xmpp(CAROL_LOCAL)
    bob = await signed_up(w.b, "13600000002", "Bob")
    await befriend(w, alice, bob, "13600000002@node-b")
    for i in range(15):
        alice.message(contact("13600000002@node-b"), "a→b %d 你好" % i)
    got = []
    while len(got) < 15:
        e = await bob.wait_event("message")
        got.append(e["messageInfo"]["content"]["message"])
    assert got == ["a→b %d 你好" % i for i in range(15)]
    for i in range(15):
        await bob.ok("POST", "messages", {"recvID": "13600000001@node-a",
                                          "messageType": "text",
                                          "content": {"message": "b→a %d" % i}})
    bodies = []
    while len(bodies) < 15:
        m = await alice.wait(lambda e: e.name == "message" and _type(e, "chat") and
                             _from(e, contact("13600000002@node-b")), what="Bob's texts")
        bodies.append(body(m))
        assert m["id"].endswith("@node-b")  # the federation messageID is the stanza id
    assert bodies == ["b→a %d" % i for i in range(15)]
    # Carol (her localpart mapped to a phone number) writes to Alice's federation ID: it
    # goes through node A and comes from Carol's federation ID.
    carol.message(contact("%s@node-a" % ALICE), "hello Alice")
    m = await alice.wait(lambda e: body(e) == "hello Alice", what="Carol's text")
    assert _from(m, contact("%s@node-a" % CAROL))
