"""The admin HTTP API on the operator listener (issue #30): users, ACLs, queue, purge, the
audit log on a node; applications and review on the management role.  Loopback callers, or
the operator token; browsers and others refused before a byte of a body is read; every change
in the audit log, in the same transaction."""

from __future__ import annotations

import json
import socket

import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import deferLater

from conftest import ApiClient, add_user, free_port, node_config, node_rows, wait_until
from imfed.config import Limits, Listen
from imfed.devdefault import application_fields
from imfed.listening import Listener
from imfed.management import store as registry
from imfed.node.clients.join import join
from imfed.operations import operator_site

TOKEN = "0123456789abcdef-operator"


class Admin:
    """The admin API of an operator listener started for a test."""

    def __init__(self, roles, token=None, host="127.0.0.1") -> None:
        self.port = free_port()
        self.listener = Listener(reactor, Listen(host, self.port),
                                 operator_site(roles, admin_token=token), Limits())
        self.listener.startService()
        self.url = "http://127.0.0.1:%d/admin/v1/" % self.port
        self.token = token

    async def call(self, method: str, path: str, body=None, headers=None, params=None,
                   data=None, token=True):
        sent = {b"Content-Type": [b"application/json"], b"X-Imfed-Operator": [b"ops-bot"]}
        if self.token and token:
            sent[b"Authorization"] = [b"Bearer " + self.token.encode()]
        sent.update(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
        response = await treq.request(method, self.url + path, data=data, headers=sent,
                                      params=params)
        return response.code, json.loads(await treq.content(response))

    async def ok(self, method: str, path: str, body=None, **kw):
        status, answer = await self.call(method, path, body, **kw)
        assert status in (200, 201) and answer["code"] == 0, (path, status, answer)
        return answer

    async def stop(self):
        await self.listener.stopService()


@pytest_twisted.ensureDeferred
async def test_users_acl_queue_purge_and_audit_through_the_admin_api(pair, tmp_path):
    a, b = pair
    admin = Admin(lambda: [a.role])
    try:
        added = await admin.ok("POST", "users", {"phone": "13500000001", "name": "Lin",
                                                 "password": "long enough"})
        assert added["userInfo"]["userID"] == "13500000001@node-a"
        for body, errcode in (({"phone": "x", "name": "L", "password": "long enough"},
                               "bad_phone"),
                              ({"phone": "13500000002", "name": "L", "password": "short"},
                               "bad_password"),
                              ({"phone": "13500000001", "name": "L",
                                "password": "long enough"}, "user_exists")):
            status, answer = await admin.call("POST", "users", body)
            assert status in (400, 409) and answer["errcode"] == errcode, answer
        # A CSV import: every row or none; a dry run writes nothing.
        good = "phone,name,password\n13500000003,Wu,password3\n13500000004,Xu,password4\n"
        bad = good + "13500000001,Lin again,password1\nx,Y,short\n"
        status, answer = await admin.call("POST", "users/import", data=bad.encode(),
                                          headers={b"Content-Type": [b"text/csv"]})
        assert status == 400 and "line 4: 13500000001@node-a exists" in answer["error"] \
            and "line 5: phone is 3-20 digits" in answer["error"], answer
        answer = await admin.ok("POST", "users/import", data=good.encode(),
                                params={"dryRun": "1"},
                                headers={b"Content-Type": [b"text/csv"]})
        assert answer["checked"] == 2 and answer["imported"] == 0
        assert node_rows(a, "SELECT COUNT(*) FROM users") == [(1,)]
        answer = await admin.ok("POST", "users/import", data=good.encode(),
                                headers={b"Content-Type": [b"text/csv"]})
        assert answer["imported"] == 2
        listed = (await admin.ok("GET", "users"))["users"]
        assert [u["userID"] for u in listed] == ["13500000001@node-a", "13500000003@node-a",
                                                 "13500000004@node-a"]

        # Disable: the session ends, login is refused (after the password check), search
        # no longer finds the user; enable: back.
        wu = await ApiClient(a, "13500000003", "password3").login()
        lin = await ApiClient(a, "13500000001", "long enough").login()
        await admin.ok("POST", "users/13500000003/disable")
        await deferLater(reactor, 1.1, lambda: None)  # the session cache's second
        assert (await wu.call("GET", "me"))[0] == 401
        status, answer = await ApiClient(a, "13500000003", "password3").call(
            "POST", "login", {"login": "13500000003", "password": "password3"})
        assert status == 403 and answer["errcode"] == "user_disabled"
        status, answer = await ApiClient(a, "13500000003").call(
            "POST", "login", {"login": "13500000003", "password": "wrong password"})
        assert status == 401
        found = await lin.ok("GET", "users/search", params={"q": "Wu"})
        assert found["users"] == [] or all(u["userID"] != "13500000003@node-a"
                                           for u in found["users"])
        assert [u["disabled"] for u in (await admin.ok("GET", "users"))["users"]] == \
            [False, True, False]
        await admin.ok("POST", "users/13500000003/enable")
        await ApiClient(a, "13500000003", "password3").login()
        # Password reset: the old one no longer works, every session ends.
        await admin.ok("POST", "users/13500000003/password", {"password": "new password"})
        await ApiClient(a, "13500000003", "new password").login()
        status, _ = await ApiClient(a, "13500000003", "password3").call(
            "POST", "login", {"login": "13500000003", "password": "password3"})
        assert status == 401
        status, answer = await admin.call("POST", "users/404@node-a/disable")
        assert status == 404 and answer["errcode"] == "unknown_user"

        # ACLs.
        await admin.ok("POST", "acl/in/blacklist", {"serverId": "node-b"})
        status, answer = await admin.call("POST", "acl/in/blacklist", {"serverId": "node-x"})
        assert status == 404 and answer["errcode"] == "unknown_server"
        await admin.ok("POST", "acl/in/blacklist", {"serverId": "node-x", "force": True})
        await admin.ok("PUT", "acl/both/mode", {"mode": "blacklist"})
        rules = (await admin.ok("GET", "acl"))["acl"]
        assert rules["inbound"] == {"mode": "blacklist", "whitelist": [],
                                    "blacklist": ["node-b", "node-x"]}
        assert rules["outbound"]["mode"] == "blacklist"
        await admin.ok("DELETE", "acl/in/blacklist/node-x")
        status, answer = await admin.call("DELETE", "acl/in/blacklist/node-x")
        assert status == 404
        status, answer = await admin.call("PUT", "acl/sideways/mode", {"mode": "open"})
        assert status == 404
        await admin.ok("DELETE", "acl/in/blacklist/node-b")
        await admin.ok("PUT", "acl/both/mode", {"mode": "open"})

        # Queue: a message owed to a stopped node-b, then retried once it is back.
        add_user(b, "200", "Bob")
        await b.stop()
        await lin.ok("POST", "messages", {"recvID": "200@node-b", "messageType": "text",
                                          "content": {"message": "while away"}})
        queue = (await admin.ok("GET", "queue"))["queue"]
        assert [q["destination"] for q in queue] == ["node-b"] and queue[0]["items"] == 1
        answer = await admin.ok("POST", "queue/node-b/retry")
        assert answer["serverId"] == "node-b"

        # Purge a user's data.
        answer = await admin.ok("POST", "purge", {"user": "13500000001"})
        assert answer["purged"]["messages"] == 1
        assert node_rows(a, "SELECT COUNT(*) FROM messages") == [(0,)]
        status, answer = await admin.call("POST", "purge", {"user": "x", "group": "y"})
        assert status == 400 and answer["errcode"] == "bad_purge"

        await admin.ok("DELETE", "users/13500000004")
        entries = (await admin.ok("GET", "audit"))["entries"]
        assert [e["action"] for e in entries] == [
            "user-add", "user-import", "user-disable", "user-enable", "user-passwd",
            "acl-add", "acl-add", "acl-mode", "acl-remove", "acl-remove", "acl-mode",
            "queue-retry", "purge-user", "user-del"]
        assert all(e["actor"] == "ops-bot via admin-api (127.0.0.1)" for e in entries)
        assert entries[1]["detail"]["count"] == 2
        # Nothing the refused calls tried was written.
        assert node_rows(a, "SELECT COUNT(*) FROM users") == [(2,)]
    finally:
        await admin.stop()


def _raw(port: int, request: bytes) -> bytes:
    """A request over a plain socket and what came back (for what treq would not send)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out


@pytest_twisted.ensureDeferred
async def test_callers_the_admin_api_refuses(pair):
    a, _ = pair
    admin = Admin(lambda: [a.role], token=TOKEN)
    loopback = Admin(lambda: [a.role])
    try:
        # With a token set, a call without it (even from loopback) is refused.
        status, answer = await admin.call("GET", "users", token=False)
        assert status == 403 and answer["errcode"] == "admin_token"
        status, answer = await admin.call("GET", "users", headers={
            b"Authorization": [b"Bearer wrong-token-of-some-length"]})
        assert status == 403
        assert (await admin.ok("GET", "users"))["users"] == []
        # A browser page (an Origin header) is refused, token or not.
        status, answer = await loopback.call("POST", "users", {
            "phone": "13500000009", "name": "Eve", "password": "long enough"},
            headers={b"Origin": [b"http://evil.example"]})
        assert status == 403 and answer["errcode"] == "browser_refused"
        # A form's content type is refused.
        status, answer = await loopback.call("POST", "users", data=b"phone=1&name=x",
                                             headers={b"Content-Type": [
                                                 b"application/x-www-form-urlencoded"]})
        assert status == 400 and answer["errcode"] == "bad_content_type"
        # Refused before the body is read: 20 MB announced, none sent, answered at once.
        answer = await deferToThreadRaw(admin.port, b"POST /admin/v1/users/import HTTP/1.1\r\n"
                                        b"Host: 127.0.0.1\r\nContent-Type: text/csv\r\n"
                                        b"Content-Length: 1000\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
        answer = await deferToThreadRaw(loopback.port, b"POST /admin/v1/users/import HTTP/1.1"
                                        b"\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
                                        b"Content-Length: 20000000\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        # No management role in this process.
        status, answer = await loopback.call("GET", "applications")
        assert status == 404 and answer["errcode"] == "no_such_role"
        assert node_rows(a, "SELECT COUNT(*) FROM users") == [(0,)]
        assert node_rows(a, "SELECT COUNT(*) FROM audit") == [(0,)]
    finally:
        await admin.stop()
        await loopback.stop()


async def deferToThreadRaw(port: int, request: bytes) -> bytes:
    from twisted.internet.threads import deferToThread

    return await deferToThread(_raw, port, request)


@pytest_twisted.ensureDeferred
async def test_the_management_role_reviews_through_the_admin_api(management, tmp_path):
    admin = Admin(lambda: [management.role])
    try:
        config = node_config(str(tmp_path / "a"), "node-a", management)
        fields = application_fields(config.node, contactName="Ops",
                                    contactEmail="ops@example.com",
                                    contactMobile="13500000000")
        joining = ensureDeferred(join(reactor, config.node, management.ca.cert.fingerprint,
                                      fields, poll_seconds=0.05))
        pending = await wait_until(
            lambda: ensureDeferred(_pending(admin)), what="the application")
        app = pending[0]
        assert app["server_id"] == "node-a" and app["status"] == "pending"
        status, answer = await admin.call("POST", "applications/%s/reject"
                                          % app["application_id"], {})
        assert status == 400 and answer["errcode"] == "bad_reason"
        answer = await admin.ok("POST", "applications/%s/approve" % app["application_id"],
                                {"note": "checked by phone"})
        assert answer["application"]["status"] == "approved"
        await joining
        done = await management.role.db.runInteraction(registry.get_application,
                                                       app["application_id"])
        assert done.decided_by == "ops-bot via admin-api (127.0.0.1)"
        assert (await admin.ok("GET", "applications"))["applications"] == []
        entries = (await admin.ok("GET", "audit", params={"role": "management"}))["entries"]
        assert any(e["action"] == "approve-apply" and e["actor"] == done.decided_by
                   for e in entries), entries
    finally:
        await admin.stop()


async def _pending(admin):
    apps = (await admin.ok("GET", "applications"))["applications"]
    return apps or None


@pytest_twisted.ensureDeferred
async def test_imfed_user_disable_and_enable(pair):
    from test_node_delivery import imfed

    a, _ = pair
    add_user(a, "100", "Alice", "long enough")
    alice = await ApiClient(a, "100", "long enough").login()
    code, out = await imfed(a, "user", "disable", "100")
    assert code == 0 and "100@node-a disabled" in out, out
    await deferLater(reactor, 1.1, lambda: None)  # the session cache's second
    assert (await alice.call("GET", "me"))[0] == 401
    status, answer = await alice.call("POST", "login", {"login": "100",
                                                        "password": "long enough"})
    assert status == 403 and answer["errcode"] == "user_disabled"
    code, out = await imfed(a, "user", "list")
    assert "(disabled)" in out
    code, out = await imfed(a, "user", "enable", "100")
    assert code == 0 and "enabled" in out
    await ApiClient(a, "100", "long enough").login()
    code, out = await imfed(a, "user", "disable", "999")
    assert code == 1 and "no user 999@node-a" in out
    code, out = await imfed(a, "node", "audit", "--json")
    assert [e["action"] for e in json.loads(out)] == ["user-disable", "user-enable"]
