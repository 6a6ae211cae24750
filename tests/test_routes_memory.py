"""The client API's routes in memory (issue #28): the application layer application.build
makes (as NodeRole does), over an in-memory store, a stand-in for node-b and a fake clock,
called through treq's StubTreq — no socket, no TLS, no thread.  The real-socket tests
(test_node*.py) cover the same paths end to end; these show a route's answer, the events and
the queued call it makes, and the clock's part in it, in milliseconds."""

from __future__ import annotations

import json

import pytest
from treq.testing import StubTreq

from imfed.node.store import users
from imfed.node.handlers.events import EventsHandler
from imfed.node.handlers.links import FileLinks
from imfed.node.handlers.sessions import Sessions
from imfed.node.routes.client import ClientRoutes, Handlers
from imfed.throttle import SendRates

from test_handlers import NODE_A, Node, done

BASE = "http://node-a.test/api/v1/"


class Client:
    """node-a's client API in memory, and a logged-in user of it."""

    def __init__(self, node: Node, sends_per_minute: int = 300) -> None:
        app = node.app
        handlers = Handlers(
            sessions=Sessions(node.store, "node-a", session_seconds=NODE_A.session_seconds,
                              max_failures=3, window_seconds=60),
            users=app.users, friends=app.friends, messages=app.messages, files=app.files,
            groups=app.groups, events=EventsHandler(node.store),
            links=FileLinks(b"k" * 32, node.clock))
        rates = SendRates(node.clock, "node-a", {"send": (sends_per_minute, 0),
                                                 "upload": (60, 0)})
        self.routes = ClientRoutes(handlers, node.directory, max_body=NODE_A.max_body,
                                   max_file_bytes=NODE_A.max_file_bytes, rates=rates)
        self.http = StubTreq(self.routes.resource())
        self.node = node

    def session(self, user: users.User) -> str:
        return done(self.node.store.run(users.new_session, user.user_id,
                                        self.node.store.now_ms(), 3600_000))

    def call(self, method: str, path: str, token: str, body=None) -> tuple[int, dict]:
        headers = {"Authorization": "Bearer " + token}
        data = json.dumps(body).encode() if body is not None else None
        response = done(self.http.request(method, BASE + path, data=data, headers=headers))
        self.http.flush()
        return response.code, json.loads(done(response.content()))


@pytest.fixture
def client():
    return Client(Node())


def test_a_send_through_the_route_is_stored_shown_and_queued(client):
    node = client.node
    alice = node.user("100", "Alice")
    token = client.session(alice)
    status, me = client.call("GET", "me", token)
    assert status == 200 and me["userInfo"]["userID"] == "100@node-a"

    status, sent = client.call("POST", "messages", token, {
        "recvID": "200@node-b", "messageType": "text", "content": {"message": "hi"},
        "txnId": "t1"})
    assert status == 200 and sent["message"]["state"] == "queued"
    assert sent["message"]["createTime"] == node.store.now_ms()  # the fake clock's time
    # The same txnId again: the first answer, nothing queued twice.
    status, again = client.call("POST", "messages", token, {
        "recvID": "200@node-b", "messageType": "text", "content": {"message": "hi"},
        "txnId": "t1"})
    assert again["message"]["messageInfo"]["messageID"] == \
        sent["message"]["messageInfo"]["messageID"]
    node.outbox.startService()
    node.clock.advance(0.01)
    assert [(server, kind) for server, kind, _ in node.remote.sent] == [("node-b", "chat")]
    assert node.rows("SELECT state FROM messages") == [("sent",)]
    node.outbox.stopService()


def test_bad_input_and_rate_limits_answer_the_profile_error_in_memory(client):
    node = client.node
    token = client.session(node.user("100", "Alice"))
    status, answer = client.call("POST", "messages", token, {"recvID": "200@node-b"})
    assert status == 400 and answer["code"] == 1 and answer["errcode"]
    status, answer = client.call("GET", "me", "not-a-session")
    assert status == 401 and answer["errcode"] == "no_session"
    limited = Client(node, sends_per_minute=2)
    token = limited.session(node.user("101", "Bea"))
    send = {"recvID": "100@node-a", "messageType": "text", "content": {"message": "x"}}
    codes = [limited.call("POST", "messages", token, send)[0] for _ in range(3)]
    assert codes == [200, 200, 429]
    node.clock.advance(60)  # the fake clock moves the window on: sends again
    assert limited.call("POST", "messages", token, send)[0] == 200
