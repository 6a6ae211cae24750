"""The application layer alone (imfed/node/handlers, the unit of work, the outbox): the real
handlers and store functions on an in-memory SQLite (imfed.testing.MemoryDatabase; in the
suite's PostgreSQL run, a database of its own there), time from
``task.Clock``, the other server a stand-in that answers as it is told.  No reactor turns and
no socket opens: each test runs in milliseconds.  The integration tests (test_node*.py,
test_groups.py) do the same over real daemons."""

from __future__ import annotations

import json

import pytest
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from imfed.node.store import users
from imfed.config import parse
from imfed.node.handlers.access import AccessControl
from imfed.node.application import build
from imfed.node.directory import Directory, Peer
from imfed.node.store.events import events_since
from imfed.node.clients.remote import FederationClient, PeerFailed
from imfed.node.store import events
from imfed.peer import PeerBehind, PeerError, PeerResponse
from imfed.testing import MemoryDatabase, postgresql_database
from imfed.wire.errors import Conflict, Forbidden, NotFound
from imfed.wire import paths
from imfed.wire.message_info import MessageInfo
from imfed.wire.records import ServerStatus

from conftest import TEST_DATABASE

START = 1_700_000_000.0


def done(coro):
    """The result of a coroutine that must finish at once (everything it awaits has)."""
    results = []
    ensureDeferred(coro).addBoth(results.append)
    assert results, "the call waited for something"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


class _StandInLane:
    def __init__(self, peer) -> None:
        self.peer = peer
        self.broken = False

    def close(self) -> None:
        pass


class StandIn(FederationClient):
    """The other server, as the federation client sees it: each call recorded, answered with
    ``answer`` (a PeerResponse, or a PeerError to raise); live calls go through the real
    client's checks of what an answer holds."""

    def __init__(self) -> None:
        super().__init__(None)
        self.sent: list[tuple[str, str, dict]] = []
        self.answer = PeerResponse(200, {"code": 0})

    async def _call(self, peer, endpoint, payload):
        if isinstance(self.answer, Exception):
            raise PeerFailed.of(peer.server_id, self.answer)
        if endpoint is paths.FIND_USERS and self.answer.ok:
            return PeerResponse(200, {"code": 0, "users": [
                {"userID": "200@" + peer.server_id, "name": payload["queryStr"]},
                {"userID": "999@elsewhere", "name": "not theirs to answer for"}]})
        return self.answer

    def lane(self, peer):
        return _StandInLane(peer)

    async def send(self, lane, kind, payload):
        # As imfed.peer.Lane: once a call of the lane failed, those behind it are not sent.
        if lane.broken:
            raise PeerBehind("behind a call that failed")
        self.sent.append((lane.peer.server_id, kind, payload))
        if isinstance(self.answer, Exception):
            lane.broken = True
            raise self.answer
        lane.broken = self.answer.status >= 400
        return self.answer

    def close(self):
        return None


NODE_A = parse({"data_dir": "/nonexistent", "node": {
    "server_id": "node-a", "listen": "127.0.0.1:1", "management_url": "https://127.0.0.1:2",
    "outbox_retry_initial_seconds": 1.0, "outbox_retry_max_seconds": 8.0,
    "outbox_give_up_seconds": 60.0, "recall_window_seconds": 120,
    "recall_grace_seconds": 60, "max_file_bytes": 1 << 20,
    "peer_status_max_age_seconds": 0}}).node


class Node:
    """node-a's application layer (application.build, as NodeRole builds it), with node-b in
    its directory, over an in-memory store, a stand-in for node-b and a fake clock."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.db = MemoryDatabase("node", postgresql_database(TEST_DATABASE)
                                 if TEST_DATABASE else None)
        self.directory = Directory(db=self.db, server_id="node-a",
                                   address="https://127.0.0.1:1", management_id="manager",
                                   management_url="https://127.0.0.1:2", ca=None,
                                   management_cert=None, clock=self.clock)
        self.directory.peers["node-b"] = Peer("node-b", "B", "https://127.0.0.1:3",
                                              ServerStatus.ACTIVE, cert=object())
        self.acl = AccessControl(self.db, self.clock)
        self.remote = StandIn()
        app = self.app = build(NODE_A, db=self.db, clock=self.clock, directory=self.directory,
                               acl=self.acl, remote=self.remote, file_dir="/nonexistent")
        self.hub, self.store, self.reach, self.outbox = app.hub, app.store, app.reach, \
            app.outbox
        self.files, self.messages, self.friends, self.groups = app.files, app.messages, \
            app.friends, app.groups
        self.poked: list[set] = []
        poke = self.hub.poke
        self.hub.poke = lambda ids, events=None: (self.poked.append(set(ids)),
                                                  poke(ids, events))

    def user(self, phone: str, name: str, **kwargs) -> users.User:
        return done(self.store.run(users.add_user, "node-a", phone, name, "x",
                                   self.store.now_ms(), **kwargs))

    def events(self, user: users.User) -> list[tuple[str, dict]]:
        rows = self.db.read_now(events_since, user.user_id, 0)
        return [(kind, json.loads(payload)) for _, kind, payload in rows]

    def rows(self, sql: str, *args) -> list[tuple]:
        return [tuple(r) for r in self.db.conn.execute(sql, args).fetchall()]


@pytest.fixture
def node():
    return Node()


def text(body: str) -> dict:
    return {"message": body}


# -- the unit of work --

def test_a_commit_wakes_the_users_it_showed_events_and_the_outbox(node):
    alice, bob = node.user("100", "Alice"), node.user("101", "Bob")
    woke = []
    node.store.on_queued.append(lambda: woke.append(True))
    done(node.messages.send(alice, bob.user_id, "text", text("hi")))
    assert node.poked == [{alice.user_id, bob.user_id}] and woke == []
    done(node.messages.send(alice, "200@node-b", "text", text("over there")))
    assert node.poked[-1] == {alice.user_id} and woke == [True]


def test_a_waiting_stream_is_handed_the_committed_events_unless_others_wrote_between(node):
    from imfed.node.handlers.events import EventsHandler
    from imfed.node.store.unit import Work

    alice, bob = node.user("100", "Alice"), node.user("101", "Bob")
    handler = EventsHandler(node.store)
    reads = []
    read = node.store.read
    node.store.read = lambda fn, *args: (reads.append(fn.__name__), read(fn, *args))[1]

    def wait_for_a_message(body):
        """(what the waiting stream got, the reads it made) for a message Alice sends."""
        since = done(handler.last(bob.user_id))
        reads.clear()
        waiting = ensureDeferred(handler.after(bob.user_id, since, 30))
        done(node.messages.send(alice, bob.user_id, "text", text(body)))
        got = waiting.result
        assert got == [tuple(r) for r in node.db.read_now(events.events_since, bob.user_id,
                                                          since)]
        assert [json.loads(p)["messageInfo"]["content"] for _, k, p in got] == [text(body)]
        return list(reads)

    # The store's first commit knows nothing before it: the stream reads.  From then on the
    # commits follow one another and the events come with the poke, no read made for them.
    assert wait_for_a_message("first") == ["events_since", "events_since"]
    assert wait_for_a_message("second") == ["events_since"]
    assert wait_for_a_message("third") == ["events_since"]
    # Someone else wrote an event in between (the operator CLI): the stream reads, and gets
    # it too.
    node.db.read_now(lambda cur: events.emit(Work(cur), bob.user_id, "outside", {}, 1))
    since = done(handler.last(bob.user_id)) - 1
    waiting = ensureDeferred(handler.after(bob.user_id, since, 30))
    assert [k for _, k, _ in waiting.result] == ["outside"]
    assert wait_for_a_message("after the gap") == ["events_since", "events_since"]
    assert wait_for_a_message("handed again") == ["events_since"]
    # A stream asking past what exists is not handed older events: it goes on waiting.
    ahead = ensureDeferred(handler.after(bob.user_id, done(handler.last(bob.user_id)) + 100,
                                         30))
    done(node.messages.send(alice, bob.user_id, "text", text("ignored")))
    assert not ahead.called
    node.clock.advance(31)
    assert ahead.result == []


def test_a_failed_unit_of_work_changes_nothing_and_wakes_nobody(node):
    alice = node.user("100", "Alice")
    with pytest.raises(NotFound):
        done(node.messages.send(alice, "999@node-a", "text", text("to nobody")))
    assert node.rows("SELECT COUNT(*) FROM messages") == [(0,)]
    assert node.poked == []


# -- recall window --

def test_a_message_is_recalled_within_the_window_and_not_after(node):
    alice, bob = node.user("100", "Alice"), node.user("101", "Bob")
    first = done(node.messages.send(alice, bob.user_id, "text", text("oops")))
    node.clock.advance(119)
    done(node.messages.recall(alice, first.info.message_id))
    assert ("recall", {"messageID": first.info.message_id, "senderID": alice.user_id}) in \
        node.events(bob)
    late = done(node.messages.send(alice, bob.user_id, "text", text("stays")))
    node.clock.advance(121)
    with pytest.raises(Conflict) as refused:
        done(node.messages.recall(alice, late.info.message_id))
    assert refused.value.errcode == "recall_window_passed"
    with pytest.raises(Forbidden):
        node.clock.advance(-121)
        done(node.messages.recall(bob, late.info.message_id))


def test_a_recall_from_another_server_is_taken_within_window_and_grace(node):
    bob = node.user("101", "Bob")
    info = MessageInfo("200@node-b", bob.user_id, "text", 1, "m1@node-b", text("hello"))
    done(node.messages.receive(info, "node-b"))
    repeal = MessageInfo("200@node-b", bob.user_id, "repeal", 1, "m1@node-b", {})
    node.clock.advance(181)  # past the window (120 s) and the grace (60 s)
    with pytest.raises(Conflict):
        done(node.messages.receive(repeal, "node-b"))
    node.clock.advance(-2)
    done(node.messages.receive(repeal, "node-b"))
    assert node.rows("SELECT recalled FROM messages") == [(1,)]


# -- friend requests --

def test_a_local_friend_request_goes_pending_then_accepted(node):
    alice, bob = node.user("100", "Alice"), node.user("101", "Bob")
    rid = done(node.friends.request(alice, bob.user_id, "hi"))
    assert done(node.friends.request(alice, bob.user_id, "again")) == rid  # one pending
    assert [r["status"] for r in done(node.friends.requests(bob))] == ["pending"]
    with pytest.raises(NotFound):
        done(node.friends.answer(alice, rid, True))  # not hers to answer
    done(node.friends.answer(bob, rid, True))
    assert [f["userID"] for f in done(node.friends.list(alice))] == [bob.user_id]
    assert [f["userID"] for f in done(node.friends.list(bob))] == [alice.user_id]
    assert node.rows("SELECT status FROM friend_requests") == [("accepted",)]
    with pytest.raises(Conflict):
        done(node.friends.request(alice, bob.user_id, ""))


def test_a_user_who_refuses_all_gets_no_request(node):
    alice = node.user("100", "Alice")
    hermit = node.user("102", "Hermit", verify_type=1)
    with pytest.raises(Forbidden):
        done(node.friends.request(alice, hermit.user_id, ""))


def test_a_remote_friend_request_refused_by_its_server_counts_as_refused(node):
    alice = node.user("100", "Alice")
    node.outbox.startService()
    node.remote.answer = PeerResponse(404, {"code": 1, "error": "no user 200@node-b"})
    done(node.friends.request(alice, "200@node-b", "hello"))
    node.clock.advance(0.01)
    assert node.remote.sent[0][:2] == ("node-b", "add_users")
    assert node.rows("SELECT status FROM friend_requests") == [("refused",)]
    kind, data = node.events(alice)[-1]
    assert kind == "friend_answer" and data["agree"] is False and "404" in data["error"]
    assert node.rows("SELECT COUNT(*) FROM outbox") == [(0,)]
    node.outbox.stopService()


# -- group roles --

def _group_with(node, owner, *members):
    g = done(node.groups.create(owner, "team", ""))
    done(node.groups.invite(owner, g.group_id, [m.user_id for m in members]))
    for m in members:
        (invitation,) = done(node.groups.invitations(m))
        done(node.groups.answer(m, invitation["invitationID"], True))
    return g


def test_group_roles_owner_admin_member(node):
    owner, bob, carol = (node.user("100", "Owner"), node.user("101", "Bob"),
                         node.user("102", "Carol"))
    g = _group_with(node, owner, bob, carol)
    with pytest.raises(Forbidden):
        done(node.groups.set_admin(bob, g.group_id, carol.user_id, True))  # not the owner
    done(node.groups.set_admin(owner, g.group_id, bob.user_id, True))
    done(node.groups.update(bob, g.group_id, name="renamed by an admin"))
    with pytest.raises(Forbidden) as refused:
        done(node.groups.update(carol, g.group_id, name="by a member"))
    assert refused.value.errcode == "not_admin"
    with pytest.raises(Forbidden):
        done(node.groups.remove(bob, g.group_id, [carol.user_id]))  # admins do not remove
    with pytest.raises(Conflict):
        done(node.groups.quit(owner, g.group_id))  # the owner dissolves instead
    done(node.groups.transfer(owner, g.group_id, bob.user_id))
    types = dict(node.rows("SELECT user_id, user_type FROM group_members"))
    assert (types[owner.user_id], types[bob.user_id], types[carol.user_id]) == (2, 3, 1)
    assert [n["userType"] for n in done(node.groups.mine(carol))] == [1]


def test_members_may_not_invite_when_the_group_says_so(node):
    owner, bob = node.user("100", "Owner"), node.user("101", "Bob")
    dave = node.user("103", "Dave")
    g = _group_with(node, owner, bob)
    done(node.groups.update(owner, g.group_id, is_allow=2))
    with pytest.raises(Forbidden) as refused:
        done(node.groups.invite(bob, g.group_id, [dave.user_id]))
    assert refused.value.errcode == "invites_closed"


# -- the outbox: backoff, order, give-up --

def test_the_outbox_backs_off_keeps_order_and_gives_up(node):
    alice = node.user("100", "Alice")
    node.outbox.seconds = 0.01  # a due retry goes within 10 ms (the test's clock steps)
    node.outbox.startService()
    node.remote.answer = PeerError("node-b unreachable: connection refused")
    first = done(node.messages.send(alice, "200@node-b", "text", text("one")))
    done(node.messages.send(alice, "200@node-b", "text", text("two")))
    node.clock.advance(0.01)
    assert len(node.remote.sent) == 1  # the second waits behind the first
    waits = []
    for attempt in range(1, 6):
        (due,) = node.rows("SELECT next_attempt - ? FROM outbox WHERE message_id = ?",
                           int(node.clock.seconds() * 1000), first.info.message_id)
        waits.append(due[0])
        node.clock.advance(due[0] / 1000 + 0.01)
        node.clock.advance(0.01)
    # 1, 2, 4, 8, 8 s (max 8), each less up to a quarter at random.
    for wait, full in zip(waits, (1000, 2000, 4000, 8000, 8000)):
        assert 0.75 * full - 20 <= wait <= full, waits
    assert all(payload["messageInfo"]["content"]["message"] == "one"
               for _, _, payload in node.remote.sent)
    node.clock.advance(61)
    node.clock.advance(0.01)
    node.clock.advance(8)
    states = {json.loads(content)["message"]: state
              for content, state in node.rows("SELECT content, state FROM messages")}
    assert states == {"one": "failed", "two": "failed"}
    deliveries = [d for k, d in node.events(alice) if k == "delivery"]
    assert [d["state"] for d in deliveries] == ["failed", "failed"]
    assert "gave up" in deliveries[0]["error"]
    node.outbox.stopService()


def test_the_outbox_sends_then_tells_the_sender(node):
    alice = node.user("100", "Alice")
    node.outbox.startService()
    message = done(node.messages.send(alice, "200@node-b", "text", text("hello")))
    assert node.rows("SELECT state FROM messages") == [("queued",)]
    node.clock.advance(0.01)
    ((server, kind, payload),) = node.remote.sent
    assert (server, kind) == ("node-b", "chat")
    assert payload["messageInfo"]["messageID"] == message.info.message_id
    assert node.rows("SELECT state FROM messages") == [("sent",)]
    assert node.events(alice)[-1] == ("delivery", {"messageID": message.info.message_id,
                                                   "state": "sent", "error": ""})
    assert node.poked[-1] == {alice.user_id}
    node.outbox.stopService()


def test_the_outbox_waits_for_a_suspended_server_and_drops_for_a_deregistered(node):
    alice = node.user("100", "Alice")
    node.outbox.startService()
    node.directory.peers["node-b"] = Peer("node-b", "B", "https://127.0.0.1:3",
                                          ServerStatus.SUSPENDED, cert=object())
    done(node.messages.send(alice, "200@node-b", "text", text("wait for me")))
    node.clock.advance(0.01)
    assert node.remote.sent == [] and node.rows("SELECT attempts FROM outbox") == [(1,)]
    node.directory.peers["node-b"] = Peer("node-b", "B", "https://127.0.0.1:3",
                                          ServerStatus.DEREGISTERED, cert=None)
    node.clock.advance(1.01)
    node.clock.advance(0.01)
    assert node.rows("SELECT COUNT(*) FROM outbox") == [(0,)]
    assert node.rows("SELECT state, error FROM messages") == [
        ("failed", "server node-b is deregistered")]
    node.outbox.stopService()


# -- search across servers --

def test_a_search_merges_each_servers_answer_and_says_who_did_not_answer(node):
    from imfed.node.handlers.users import UsersHandler

    node.user("100", "Alice Liu")
    handler = UsersHandler(node.store, node.directory, node.reach, node.remote,
                           search_timeout=5.0)
    found, servers = done(handler.search("Alice"))
    assert [u["userID"] for u in found] == ["100@node-a", "200@node-b"]
    assert servers == {"node-a": "ok", "node-b": "ok"}
    node.remote.answer = PeerError("node-b unreachable: connection refused")
    found, servers = done(handler.search("Alice"))
    assert [u["userID"] for u in found] == ["100@node-a"]
    assert servers["node-b"] == "unreachable: connection refused"  # not "node-b unreachable"
    node.remote.answer = PeerResponse(403, {"code": 1, "error": "refused by its rules"})
    found, servers = done(handler.search("Alice"))
    assert servers["node-b"] == "error: node-b answered HTTP 403 for a search: refused by " \
        "its rules"


def test_what_another_server_answers_is_one_error_a_user_can_act_on(node):
    """The federation client's one error (PeerFailed: unreachable, refused, not found)
    becomes 503 peer_unreachable, 503 peer_unavailable (it failed), 404 (it said no)."""
    from imfed.node.handlers.users import UsersHandler
    from imfed.wire.errors import Unavailable

    handler = UsersHandler(node.store, node.directory, node.reach, node.remote,
                           search_timeout=5.0)
    node.remote.answer = PeerResponse(200, {"code": 0, "userInfo": {
        "name": "Bob", "userID": "someone@else", "extra": "dropped"}})
    info, verify = done(handler.info("200@node-b"))
    assert info == {"name": "Bob", "userID": "200@node-b"} and verify is None
    for answer, error, errcode in (
            (PeerError("node-b unreachable: timeout"), Unavailable, "peer_unreachable"),
            (PeerResponse(502, {"code": 1, "error": "upstream"}), Unavailable,
             "peer_unavailable"),
            (PeerResponse(404, {"code": 1, "error": "no such user"}), NotFound,
             "unknown_user"),
            (PeerResponse(403, {"code": 1, "error": "refused"}), NotFound, "unknown_user")):
        node.remote.answer = answer
        with pytest.raises(error) as raised:
            done(handler.info("200@node-b"))
        assert raised.value.errcode == errcode, answer


# -- sessions --

def test_a_session_is_remembered_a_second_and_ended_at_once_here(node):
    from imfed.node.handlers.sessions import REMEMBER_SECONDS, Sessions
    from imfed.wire.errors import Unauthorized

    alice = node.user("100", "Alice")
    sessions = Sessions(node.store, "node-a", session_seconds=3600, max_failures=10,
                        window_seconds=900)
    token = done(node.store.run(users.new_session, alice.user_id, node.store.now_ms(),
                                3600_000))
    assert done(sessions.user(token)).user_id == alice.user_id
    # Ended by another process (the CLI, straight in the store): known for at most a second.
    node.db.conn.execute("DELETE FROM sessions")
    node.db.conn.commit()
    assert done(sessions.user(token)).user_id == alice.user_id
    node.clock.advance(REMEMBER_SECONDS + 0.01)
    with pytest.raises(Unauthorized):
        done(sessions.user(token))
    # Ended here: at once.
    token = done(node.store.run(users.new_session, alice.user_id, node.store.now_ms(),
                                3600_000))
    assert done(sessions.user(token)).user_id == alice.user_id
    done(sessions.logout(token))
    with pytest.raises(Unauthorized):
        done(sessions.user(token))
