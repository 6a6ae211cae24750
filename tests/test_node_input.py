"""Bad input at every federation endpoint and the client API: a 4xx JSON answer, and the
node's store unchanged."""

from __future__ import annotations

import json

import pytest_twisted
import treq

from conftest import ApiClient, add_user, node_rows

TABLES = ("users", "friends", "friend_requests", "messages", "outbox", "events", "files",
          "file_access", "acl_mode", "acl_list")


def snapshot(node) -> list:
    return [(t, sorted(node_rows(node, "SELECT * FROM %s" % t))) for t in TABLES]


def message(**override) -> dict:
    info = {"senderID": "100@node-a", "recvID": "200@node-b", "messageType": "text",
            "version": "v1", "type": 1, "messageID": "abcdefghijkl@node-a",
            "content": {"message": "hello"}}
    info.update(override)
    return {k: v for k, v in info.items() if v is not None}


@pytest_twisted.ensureDeferred
async def test_federation_endpoints_refuse_bad_input(pair):
    a, b = pair
    add_user(a, "100", "Alice")
    add_user(b, "200", "Bob")
    add_user(b, "201", "Refuser", verify_type=1)
    peer = a.role.directory.active("node-b")
    before = snapshot(b)

    async def call(method, path, body=None, query=None):
        return await a.role.client.call("node-b", peer.address, method, path, body, query)

    cases = [
        ("GET", "/sns/find/users", None, None, 400, "missing_queryStr"),
        ("GET", "/sns/find/users", None, {"queryStr": "x" * 65}, 400, "bad_queryStr"),
        ("GET", "/sns/verify/users", None, {"userID": "nobody"}, 400, "bad_userID"),
        ("GET", "/sns/verify/users", None, {"userID": "999@node-b"}, 404, "unknown_user"),
        ("GET", "/sns/verify/users", None, {"userID": "100@node-a"}, 404, "unknown_user"),
        ("GET", "/sns/users", None, {}, 400, "missing_userID"),
        ("GET", "/sns/query/users", None, {"userID": "200@node-b"}, 400, "missing_ownerID"),
        ("GET", "/sns/query/users", None, {"userID": "200@node-b", "ownerID": "1@node-c"},
         403, "not_your_user"),
        ("POST", "/sns/add/users", {}, None, 400, "bad_userID"),
        ("POST", "/sns/add/users", {"userID": "200@node-b"}, None, 400, "bad_ownerID"),
        ("POST", "/sns/add/users", {"userID": "200@node-b", "ownerID": "7@node-c"}, None, 403,
         "not_your_user"),
        ("POST", "/sns/add/users", {"userID": "201@node-b", "ownerID": "100@node-a"}, None,
         403, "refuses_friends"),
        ("POST", "/sns/add/users", {"userID": "200@node-b", "ownerID": "100@node-a",
                                    "userInfo": "me"}, None, 400, "bad_userInfo"),
        ("POST", "/sns/add/users", {"userID": "200@node-b", "ownerID": "100@node-a",
                                    "remark": 5}, None, 400, "bad_remark"),
        ("POST", "/sns/rsp/users", {"userID": "200@node-b", "ownerID": "100@node-a",
                                    "isAgree": 3}, None, 400, "bad_isAgree"),
        ("POST", "/sns/rsp/users", {"userID": "200@node-b", "ownerID": "100@node-a",
                                    "isAgree": "1"}, None, 409, "no_request"),
        ("POST", "/sns/del/users", {"userID": "200@node-b"}, None, 400, "bad_ownerID"),
        ("POST", "/sns/chat", {}, None, 400, "bad_messageInfo"),
        ("POST", "/sns/chat", {"messageInfo": message(messageType="video")}, None, 400,
         "bad_messageType"),
        ("POST", "/sns/chat", {"messageInfo": message(type=3)}, None, 400, "bad_type"),
        ("POST", "/sns/chat", {"messageInfo": message(type=True)}, None, 400, "bad_type"),
        ("POST", "/sns/chat", {"messageInfo": message(senderID="100@node-c")}, None, 403,
         "not_your_user"),
        ("POST", "/sns/chat", {"messageInfo": message(recvID="999@node-b")}, None, 404,
         "unknown_user"),
        ("POST", "/sns/chat", {"messageInfo": message(messageID="nope")}, None, 400,
         "bad_messageID"),
        ("POST", "/sns/chat", {"messageInfo": message(messageID="abc@node-c")}, None, 400,
         "bad_messageID"),
        ("POST", "/sns/chat", {"messageInfo": message(content={"message": ""})}, None, 400,
         "bad_content"),
        ("POST", "/sns/chat", {"messageInfo": message(content="hi")}, None, 400,
         "bad_content"),
        ("POST", "/sns/chat", {"messageInfo": message(messageType="file", content={
            "size": 5, "fileID": "f@node-a", "md5": "xyz"})}, None, 400, "bad_md5"),
        ("POST", "/sns/chat", {"messageInfo": message(messageType="voice", content={
            "size": 5, "fileID": "f@node-a", "md5": "0" * 32})}, None, 400, "bad_duration"),
        ("POST", "/sns/chat", {"messageInfo": message(messageType="image", content={
            "size": -1, "fileID": "f@node-a", "md5": "0" * 32})}, None, 400, "bad_size"),
        ("POST", "/sns/chat", {"messageInfo": message(type=2, recvID="g@node-b")}, None, 404,
         "unknown_group"),
        ("POST", "/sns/chat", {"messageInfo": message(messageType="repeal",
                                                       messageID="zz@node-a")}, None, 404,
         "unknown_message"),
        ("GET", "/sns/download/file", None, {"fileID": "nothing@node-b"}, 404, "unknown_file"),
        ("GET", "/sns/download/file", None, {"fileID": "bad id"}, 400, "bad_fileID"),
        ("POST", "/sns/restApi/imServer/servermgr/receivenotify", {"serverId": "x"}, None,
         403, "not_management"),
        ("POST", "/sns/chat", {"messageInfo": message(content={"message": "x" * (1 << 20)})},
         None, 413, "too_large"),
    ]
    for method, path, body, query, status, errcode in cases:
        if path == "/sns/download/file":
            from imfed.peer import PeerError

            try:
                await a.role.client.download("node-b", peer.address, path, query,
                                             a.role.file_dir + "/probe", 1000)
            except PeerError as e:
                assert str(status) in str(e), (path, query, e)
            continue
        answer = await call(method, path, body, query)
        assert (answer.status, answer.body.get("errcode")) == (status, errcode), \
            (method, path, body, query, answer.body)
        assert answer.body["code"] == 1 and answer.body["error"]
    assert snapshot(b) == before


@pytest_twisted.ensureDeferred
async def test_client_api_refuses_bad_input(pair):
    a, _ = pair
    add_user(a, "100", "Alice", password="right")
    add_user(a, "101", "Al")
    before = snapshot(a)
    anon = ApiClient(a, "100", password="wrong")
    status, answer = await anon.call("POST", "login", {"login": "100", "password": "wrong"})
    assert status == 401 and answer["errcode"] == "bad_login"
    for path in ("me", "friends", "conversations", "events"):
        status, answer = await anon.call("GET", path)
        assert status == 401 and answer["errcode"] == "no_session", path
    anon.token = "forged"
    status, answer = await anon.call("GET", "me")
    assert status == 401
    alice = await ApiClient(a, "100", password="right").login()
    before = snapshot(a)  # the login added a session only
    cases = [
        ("POST", "login", b"{", 400, "malformed_json"),
        ("POST", "login", {"login": "100"}, 400, "missing_password"),
        ("GET", "users/search", None, 400, "bad_q"),
        ("GET", "users/info", None, 400, "bad_userID"),
        ("POST", "friends/requests", {"userID": "100@node-a"}, 400, "bad_userID"),
        ("POST", "friends/requests", {"userID": "bogus"}, 400, "bad_userID"),
        ("POST", "friends/requests", {"userID": "1@node-zz"}, 404, "unknown_server"),
        ("POST", "friends/requests", {"userID": "999@node-a"}, 404, "unknown_user"),
        ("POST", "friends/requests/none/answer", {"agree": True}, 404, "unknown_request"),
        ("POST", "friends/requests/none/answer", {"agree": "yes"}, 400, "bad_agree"),
        ("POST", "friends/delete", {"userID": "101@node-a"}, 404, "not_friends"),
        ("POST", "messages", {"recvID": "101@node-a"}, 400, "bad_messageType"),
        ("POST", "messages", {"recvID": "101@node-a", "messageType": "text"}, 400,
         "bad_content"),
        ("POST", "messages", {"recvID": "101@node-a", "messageType": "repeal"}, 400,
         "bad_messageType"),
        ("POST", "messages", {"recvID": "999@node-a", "messageType": "text",
                              "content": {"message": "x"}}, 404, "unknown_user"),
        ("POST", "messages", {"recvID": "1@node-zz", "messageType": "text",
                              "content": {"message": "x"}}, 404, "unknown_server"),
        ("POST", "messages", {"recvID": "101@node-a", "messageType": "image",
                              "content": {"fileID": "nope@node-a"}}, 404, "unknown_file"),
        ("GET", "messages/nope@node-a", None, 404, "unknown_message"),
        ("POST", "messages/nope@node-a/recall", None, 404, "unknown_message"),
        ("GET", "conversations/bogus/messages", None, 400, "bad_peerID"),
        ("GET", "conversations/101@node-a/messages?limit=x", None, 400, "bad_limit"),
        ("GET", "events?since=-1", None, 400, "bad_since"),
        ("GET", "files/nope@node-a", None, 404, "unknown_file"),
        ("POST", "files?name=a/b", b"data", 400, "bad_name"),
        ("POST", "files", b"", 400, "empty_file"),
        ("GET", "no/such/path", None, 404, "no_such_path"),
        ("DELETE", "messages", None, 405, "method_not_allowed"),
    ]
    for method, path, body, status, errcode in cases:
        got, answer = await alice.call(method, path, body)
        assert (got, answer.get("errcode")) == (status, errcode), (method, path, answer)
        assert answer["code"] == 1 and answer["error"]
    # Too large a file: 413, and nothing kept.
    response = await treq.post(a.client_url + "files", data=b"x" * (a.config.node.max_file_bytes
                                                                     + 1),
                               headers={"Authorization": "Bearer " + alice.token})
    assert response.code == 413
    assert json.loads(await treq.content(response))["errcode"] == "too_large"
    assert snapshot(a) == before


@pytest_twisted.ensureDeferred
async def test_text_no_store_can_hold_is_refused_everywhere(pair):
    """Issue #29, 9: a lone UTF-16 surrogate or NUL anywhere in a JSON body (a message, a
    login, a group name, a remark, a bridge name, a federation call) is a 400, never a 500,
    and nothing is stored; a request with NUL in a header gets the JSON 400 too."""
    import socket

    from twisted.internet import reactor

    from conftest import PlainClientPolicy, http, read_until, signed_up
    from imfed.crypto import signing

    a, b = pair
    alice = await signed_up(a, "100", "Alice")
    add_user(b, "200", "Bob")
    before = snapshot(a), snapshot(b)
    for bad in ("\ud800", "x\udfffy", "a\x00b"):
        for method, path, body in (
                ("POST", "messages", {"recvID": "200@node-b", "messageType": "text",
                                      "content": {"message": bad}}),
                ("POST", "login", {"login": "100" + bad, "password": "secret"}),
                ("POST", "groups", {"groupName": "g" + bad}),
                ("POST", "friends/requests", {"userID": "200@node-b", "remark": bad}),
                ("POST", "messages", {"recvID": "200@node-b", "messageType": "text",
                                      "content": {"message" + bad: "x"}})):
            status, answer = await alice.call(method, path, body)
            assert (status, answer["errcode"]) == (400, "bad_text"), (path, bad, answer)
        # A federation call, signed, from node-a's own identity.
        body = json.dumps({"messageInfo": message(content={"message": bad})}).encode()
        target = "/sns/chat"
        header, _ = signing.sign_request(a.role.signing_key, "POST", target, "node-a",
                                         "node-b", body, int(reactor.seconds() * 1000))
        n = a.config.node
        status, _, content = await http(PlainClientPolicy(n.ca_file, n.cert_file, n.key_file),
                                        "POST", "https://127.0.0.1:%d%s"
                                        % (b.config.node.listen.port, target), body,
                                        {"Authorization": header,
                                         "Content-Type": "application/json"})
        assert (status, json.loads(content)["errcode"]) == (400, "bad_text"), content
    assert (snapshot(a), snapshot(b)) == before

    s = socket.create_connection(("127.0.0.1", a.config.node.client_listen.port))
    s.setblocking(False)
    s.send(b"GET /api/v1/me HTTP/1.1\r\nhost: x\r\nauthorization: Bearer a\x00b\r\n\r\n")
    received = await read_until(s, lambda got: b"\r\n\r\n" in got)
    s.close()
    assert received.startswith(b"HTTP/1.1 400"), received
    assert json.loads(received.partition(b"\r\n\r\n")[2])["errcode"] == "malformed_request"


@pytest_twisted.ensureDeferred
async def test_a_send_when_the_store_is_full_is_507(sqlite_pair):
    """Issue #29, 9: no room left in the store (SQLite's SQLITE_FULL, here by its page
    limit) answers 507 disk_full, as a full disk does for uploads, and loses nothing."""
    from conftest import signed_up

    a, b = sqlite_pair
    alice = await signed_up(a, "100", "Alice")
    add_user(b, "200", "Bob")

    def fill(cur):
        cur.execute("PRAGMA page_count")
        pages = cur.fetchone()[0]
        cur.execute("PRAGMA max_page_count = %d" % pages)

    await a.role.db.runInteraction(fill)
    try:
        statuses = []
        for i in range(50):  # until the free space left in its pages is gone
            status, answer = await alice.call("POST", "messages", {
                "recvID": "200@node-b", "messageType": "text",
                "content": {"message": "%d " % i + "x" * 3000}})
            statuses.append(status)
            if status != 200:
                break
        assert (status, answer["errcode"]) == (507, "disk_full"), (statuses, answer)
    finally:
        await a.role.db.runInteraction(
            lambda cur: cur.execute("PRAGMA max_page_count = 1073741823"))


@pytest_twisted.ensureDeferred
async def test_names_with_controls_or_bidirectional_overrides_are_refused(pair):
    """Issue #29, 14: names people read (a file's, a group's, a remark, a name from another
    server's message) may not hold control characters or bidirectional controls:
    ``a\\u202egpj.exe`` would read as ``aexe.jpg``."""
    from conftest import signed_up

    a, b = pair
    alice = await signed_up(a, "100", "Alice")
    add_user(b, "200", "Bob")
    response = await treq.post(a.client_url + "files", data=b"x" * 10,
                               params={"name": "a\u202egpj.exe"},
                               headers={"Authorization": "Bearer " + alice.token})
    assert response.code == 400 and (await response.json())["errcode"] == "bad_name"
    for method, path, body, errcode in (
            ("POST", "groups", {"groupName": "team\x1b[2J"}, "bad_groupName"),
            ("POST", "groups", {"groupName": "\u2067team"}, "bad_groupName"),
            ("POST", "friends/requests", {"userID": "200@node-b", "remark": "hi\x07"},
             "bad_remark")):
        status, answer = await alice.call(method, path, body)
        assert (status, answer["errcode"]) == (400, errcode), (path, answer)
    # A line break in a remark is text, and taken.
    await alice.ok("POST", "friends/requests", {"userID": "200@node-b",
                                                "remark": "hello\nit is Alice"})
    peer = a.role.directory.active("node-b")
    answer = await a.role.client.call("node-b", peer.address, "POST", "/sns/chat", {
        "messageInfo": message(messageType="file", content={
            "fileID": "abcdefghijkl@node-a", "size": 10, "md5": "0" * 32,
            "name": "report\u202efdp.exe"})})
    assert (answer.status, answer.body["errcode"]) == (400, "bad_name"), answer.body
