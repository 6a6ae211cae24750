"""Fuzzing every route of the three interfaces with hypothesis, over real sockets: the client
API (logged in), the management API (anonymous and signed) and the federation interface (with
valid signatures).  Whatever arrives: never a 5xx, and every error is the profile's JSON body.

Hypothesis runs on a worker thread and hands each request to the reactor, which serves the
daemons of this test in the same process.  Derandomized: CI runs the same examples each time
(set IMFED_FUZZ_EXAMPLES for a longer, random run)."""

from __future__ import annotations

import json
import os
import re

import pytest_twisted
import treq
from hypothesis import HealthCheck, given, settings, strategies as st
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.threads import blockingCallFromThread, deferToThread

from conftest import PlainClientPolicy, http, signed_up, add_user
from imfed.management.routes import ManagementApi
from imfed.node.routes.client import V1, ClientRoutes
from imfed.node.routes.client_groups import GroupRoutes
from imfed.node.routes.federation import FederationRoutes

EXAMPLES = int(os.environ.get("IMFED_FUZZ_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    derandomize="IMFED_FUZZ_EXAMPLES" not in os.environ, database=None,
                    suppress_health_check=list(HealthCheck))

# Field names of the standard and of our API, so that bodies reach past the first check.
NAMES = ["userID", "ownerID", "recvID", "senderID", "messageInfo", "messageType", "type",
         "messageID", "content", "message", "fileID", "size", "md5", "name", "duration",
         "groupID", "groupName", "groupInfo", "reqInfo", "inviteUsers", "userInfo", "userIDs",
         "respResult", "isAgree", "remark", "operType", "users", "grpset", "isAllow",
         "isVisible", "serverId", "serverIds", "lastQueryTime", "changes", "csr", "reason",
         "applicationId", "applyToken", "login", "password", "agree", "queryStr", "version",
         "serverName", "serverAddress", "contactName", "contactEmail", "contactMobile",
         "admin", "userType", "phoneNumber", "portrait", "updateTime", "verifyType"]
TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["100@node-a", "200@node-b", "x@node-a", "a@b@c", "abc@127.0.0.1:1",
                     "²", "١٢", "\x00", "%", "_", "-1", "0", "1", "2", "9" * 30, "",
                     "text", "image", "voice", "file", "repeal", "https://127.0.0.1:1",
                     "0123456789abcdef0123456789abcdef"]))
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
                   st.floats(allow_nan=False), TEXT)
JSON = st.recursive(SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(NAMES), st.text(max_size=8)), inner,
                    max_size=6)), max_leaves=20)
BODY = st.one_of(
    st.dictionaries(st.sampled_from(NAMES), JSON, max_size=8).map(
        lambda d: json.dumps(d).encode()),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
    st.sampled_from([b"", b"{", b"[" * 5000, b'{"a":' * 50 + b"1" + b"}" * 50,
                     b"\xff\xfe", b"null", b'"x"']))
QUERY = st.dictionaries(st.sampled_from(NAMES + ["q", "since", "wait", "limit", "before",
                                                 "remote", "name"]), TEXT, max_size=4)


SIGNED_MANAGEMENT = ("modify", "deregister", "servers")
"""The management routes that take (and answer) signed requests; the rest are anonymous."""


def routes(app) -> list[tuple[str, str]]:
    """(method, rule) of every route of a Klein app, one per rule (not per alias)."""
    out = set()
    for rule in app.url_map.iter_rules():
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:  # a branch: None
            out.add((method, rule.rule))
    return sorted(out)


def fill(rule: str, value: str) -> str:
    from urllib.parse import quote

    return re.sub(r"<[^>]+>", lambda m: quote(value, safe="@:"), rule)


def check(status: int, headers, content: bytes, where) -> None:
    assert status < 500 or status == 507, (where, status, content[:300])
    if status >= 400:
        body = json.loads(content.decode("utf-8"))
        assert body["code"] in (1, "1") and body["errcode"], (where, body)
        assert (body.get("error") or body.get("desc")), (where, body)


def _call(fn, *args):
    """Run an async call on the reactor from the hypothesis thread, and wait for it."""
    return blockingCallFromThread(reactor, lambda: ensureDeferred(fn(*args)))


@pytest_twisted.ensureDeferred
async def test_fuzz_client_api(pair):
    a, _ = pair
    alice = await signed_up(a, "100", "Alice")
    add_user(a, "101", "Bob")
    # The group routes are mounted under /api/v1/groups (a Klein branch of the client API).
    table = routes(ClientRoutes.app) + [(m, V1 + "groups" + r.rstrip("/"))
                                        for m, r in routes(GroupRoutes.app)]

    async def one(method, path, query, body):
        headers = {"Authorization": ["Bearer " + alice.token]}
        if path.endswith("/events/stream"):
            return None  # a stream: checked by its own tests
        response = await treq.request(method, a.client_url[:-len("/api/v1/")] + path,
                                      params=query, data=body, headers=headers)
        content = await treq.content(response)
        return response.code, response.headers, content

    @SETTINGS
    @given(st.sampled_from(table), TEXT, QUERY, BODY)
    def fuzz(route, value, query, body):
        method, rule = route
        path = fill(rule, value)
        result = _call(one, method, path, query, body if method == "POST" else None)
        if result is not None:
            check(*result, (method, path, query, body[:200]))

    await deferToThread(fuzz)


@pytest_twisted.ensureDeferred
async def test_fuzz_federation_interface_with_valid_signatures(pair):
    a, b = pair
    add_user(b, "200", "Bob")
    table = [(m, r) for m, r in routes(FederationRoutes.app) if r.startswith("/sns/v1/")]
    peer = a.role.directory.get("node-b")

    async def one(method, path, query, body):
        # Signed by node-a, over node-a's TLS identity: everything past the signature check.
        answer = await a.role.client.call("node-b", peer.address, method, path,
                                          body if method == "POST" else None, query or None)
        return answer.status, None, json.dumps(answer.body).encode()

    @SETTINGS
    @given(st.sampled_from(table), QUERY,
           st.dictionaries(st.sampled_from(NAMES), JSON, max_size=8))
    def fuzz(route, query, body):
        method, path = route
        if path.endswith("/download/file"):
            return  # answers a file, not JSON: its refusals are covered by test_node_input
        check(*_call(one, method, path, query, body), (method, path, query, body))

    await deferToThread(fuzz)


@pytest_twisted.ensureDeferred
async def test_fuzz_management_api_anonymous_and_signed(management, pair):
    a, _ = pair
    table = [(m, r) for m, r in routes(ManagementApi.app) if r.startswith("/sns/v1/")]
    anonymous = PlainClientPolicy(None)

    async def one(method, path, query, body, signed):
        if signed:
            answer = await a.role.client.call("manager", management.url, method, path,
                                              json.loads(body) if body else None, query or None)
            return answer.status, None, json.dumps(answer.body).encode()
        return await http(anonymous, method, management.url + path, body)

    @SETTINGS
    @given(st.sampled_from(table), QUERY, BODY, st.booleans())
    def fuzz(route, query, body, signed):
        method, path = route
        signed = signed and path.rsplit("/", 1)[1] in SIGNED_MANAGEMENT
        if signed:
            try:
                value = json.loads(body)
            except (ValueError, RecursionError):
                return
            if not isinstance(value, dict):
                return
        check(*_call(one, method, path, query, body, signed), (method, path, body[:200]))

    await deferToThread(fuzz)


# -- issue #29: the bridge API, file links and the XMPP stanza path --

BRIDGE_TOKEN = "b" * 40


@pytest_twisted.ensureDeferred
async def test_fuzz_bridge_api(tmp_path):
    """Every client route, called as a bridged system does (its token, ``?user_id=`` of one
    of its users, or of anyone): never a 5xx, every error the profile's JSON."""
    from conftest import join_node, start_management

    management = start_management(str(tmp_path / "m"))
    a = await join_node(management, str(tmp_path / "a"), "node-a",
                        top={"bridge": {"token": BRIDGE_TOKEN, "users": r"86\d{11}"}})
    try:
        response = await treq.post(a.client_url + "bridge/users", data=json.dumps({
            "phoneNumber": "8613800000001", "name": "Li"}).encode(),
            headers={"Authorization": ["Bearer " + BRIDGE_TOKEN]})
        assert response.code in (200, 201)
        table = routes(ClientRoutes.app) + [(m, V1 + "groups" + r.rstrip("/"))
                                            for m, r in routes(GroupRoutes.app)]
        acting = st.sampled_from(["8613800000001@node-a", "8613800000009@node-a",
                                  "100@node-a", "", "x", "8613800000001@node-b"])

        async def one(method, path, query, body, user_id):
            if path.endswith("/events/stream"):
                return None
            response = await treq.request(
                method, a.client_url[:-len("/api/v1/")] + path,
                params=dict(query, user_id=user_id), data=body,
                headers={"Authorization": ["Bearer " + BRIDGE_TOKEN]})
            return response.code, response.headers, await treq.content(response)

        @SETTINGS
        @given(st.sampled_from(table), TEXT, QUERY, BODY, acting)
        def fuzz(route, value, query, body, user_id):
            method, rule = route
            path = fill(rule, value)
            result = _call(one, method, path, query, body if method in ("POST", "PUT")
                           else None, user_id)
            if result is not None:
                check(*result, (method, path, query, user_id, body[:200]))

        await deferToThread(fuzz)
    finally:
        await a.stop()
        await management.service.stopService()


@pytest_twisted.ensureDeferred
async def test_fuzz_file_links(pair):
    """``GET /api/v1/files/<fileID>?user_id=&expires=&link=`` without a session, every part
    made up or taken from a real link and bent: a 403 or 404 JSON, never the file unless the
    link is the one made, never a 5xx."""
    a, _ = pair
    alice = await signed_up(a, "100", "Alice")
    response = await treq.post(a.client_url + "files", data=b"secret bytes",
                               params={"name": "s.bin"},
                               headers={"Authorization": "Bearer " + alice.token})
    file_id = json.loads(await treq.content(response))["fileID"]
    real = a.role.handlers.links.path(file_id, "100@node-a")
    from urllib.parse import parse_qs, urlsplit

    parts = {k: v[0] for k, v in parse_qs(urlsplit(real).query).items()}
    base = a.client_url[:-len("/api/v1/")]
    response = await treq.get(base + real)
    assert response.code == 200 and await treq.content(response) == b"secret bytes"

    async def one(path, query):
        response = await treq.get(base + path, params=query)
        return response.code, response.headers, await treq.content(response)

    bent = st.one_of(TEXT, st.sampled_from([parts["link"], parts["link"][:-1] + "0",
                                            parts["link"].upper(), parts["expires"],
                                            str(int(parts["expires"]) + 1), "100@node-a",
                                            "101@node-a", file_id]))

    @SETTINGS
    @given(st.one_of(TEXT, st.just(file_id)), bent, bent, bent)
    def fuzz(fid, user_id, expires, link):
        query = {"user_id": user_id, "expires": expires, "link": link}
        status, headers, content = _call(one, fill(V1 + "files/<f>", fid), query)
        if (fid, user_id, expires, link) == (file_id, "100@node-a", parts["expires"],
                                              parts["link"]):
            assert status == 200
            return
        assert content != b"secret bytes", query
        check(status, headers, content, query)

    await deferToThread(fuzz)
