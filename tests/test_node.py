"""The node role end to end: two nodes and a management server on loopback, real mutual SM2
TLS, real SQLite; users find each other, become friends, chat and recall."""

from __future__ import annotations

import os

import pytest
import pytest_twisted

from imfed.node.clients.join import JoinError, application_fields, join
from twisted.internet import reactor

from conftest import ApiClient, add_user, node_config, signed_up


@pytest_twisted.ensureDeferred
async def test_join_refuses_a_ca_that_does_not_match_the_pin(management, tmp_path):
    config = node_config(str(tmp_path / "n"), "node-n", management)
    fields = application_fields(config.node, contactName="Ops",
                                contactEmail="ops@example.com", contactMobile="13500001111")
    with pytest.raises(JoinError, match="fingerprint"):
        await join(reactor, config.node, "00" * 32, fields, poll_seconds=0.05)
    assert not os.path.exists(config.node.ca_file)
    assert not os.path.exists(config.node.cert_file)


@pytest_twisted.ensureDeferred
async def test_two_servers_users_befriend_and_chat(pair):
    a, b = pair
    add_user(a, "13500000001", "Alice Wang")
    add_user(b, "13600000002", "Bob Li")
    add_user(b, "13600000003", "Bob Hidden", searchable=False)
    alice = await ApiClient(a, "13500000001").login()
    bob = await ApiClient(b, "13600000002").login()

    # Search by name and by phone, across servers.
    found = await alice.ok("GET", "users/search", params={"q": "Bob"})
    assert [u["userID"] for u in found["users"]] == ["13600000002@node-b"]
    assert found["servers"] == {"node-a": "ok", "node-b": "ok"}
    found = await alice.ok("GET", "users/search", params={"q": "13600000002"})
    assert found["users"][0]["name"] == "Bob Li"
    info = await alice.ok("GET", "users/info", params={"userID": "13600000002@node-b"})
    assert info["userInfo"]["name"] == "Bob Li"

    # Friend request, across servers, answered yes.
    await alice.ok("POST", "friends/requests", {"userID": "13600000002@node-b",
                                                "remark": "from the conference"})
    request = await bob.wait_event("friend_request")
    assert request["from"] == "13500000001@node-a" and request["fromInfo"]["name"] == "Alice Wang"
    await bob.ok("POST", "friends/requests/%s/answer" % request["requestID"], {"agree": True})
    answer = await alice.wait_event("friend_answer")
    assert answer == {"userID": "13600000002@node-b", "agree": True,
                      "userInfo": answer["userInfo"]}
    assert [f["userID"] for f in (await alice.ok("GET", "friends"))["friends"]] == [
        "13600000002@node-b"]
    assert [f["userID"] for f in (await bob.ok("GET", "friends"))["friends"]] == [
        "13500000001@node-a"]

    # A text message each way.
    sent = await alice.ok("POST", "messages", {"recvID": "13600000002@node-b",
                                               "messageType": "text",
                                               "content": {"message": "你好, Bob"}})
    mid = sent["message"]["messageInfo"]["messageID"]
    assert mid.endswith("@node-a")
    got = await bob.wait_event("message")
    assert got["messageInfo"]["content"] == {"message": "你好, Bob"}
    assert got["messageInfo"]["messageID"] == mid
    delivered = await alice.wait_event("delivery", match=lambda d: d["messageID"] == mid)
    assert delivered["state"] == "sent"
    assert (await alice.ok("GET", "messages/" + mid))["message"]["state"] == "sent"
    await bob.ok("POST", "messages", {"recvID": "13500000001@node-a", "messageType": "TEXT",
                                      "content": {"message": "hi Alice"}})
    reply = await alice.wait_event("message", match=lambda m: m["messageInfo"]["senderID"]
                                   .endswith("@node-b"))
    assert reply["messageInfo"]["content"]["message"] == "hi Alice"

    history = await bob.ok("GET", "conversations/13500000001@node-a/messages")
    assert [m["messageInfo"]["content"]["message"] for m in history["messages"]] == [
        "hi Alice", "你好, Bob"]
    convs = await bob.ok("GET", "conversations")
    assert convs["conversations"][0]["peerID"] == "13500000001@node-a"

    # Alice recalls her message; Bob's server and Bob hear of it.
    await alice.ok("POST", "messages/%s/recall" % mid)
    recall = await bob.wait_event("recall")
    assert recall == {"messageID": mid, "senderID": "13500000001@node-a"}
    history = await bob.ok("GET", "conversations/13500000001@node-a/messages")
    assert [m["recalled"] for m in history["messages"]] == [False, True]
    status, answer = await bob.call("POST", "messages/%s/recall" % mid)
    assert status == 403 and answer["errcode"] == "not_sender"

    # Unfriending travels too.
    await bob.ok("POST", "friends/delete", {"userID": "13500000001@node-a"})
    await alice.wait_event("friend_deleted")
    assert (await alice.ok("GET", "friends"))["friends"] == []


@pytest_twisted.ensureDeferred
async def test_sm2_on_a_pool_of_threads_when_the_config_asks(management, tmp_path):
    """crypto_threads = 2: the node's signatures and verifications run on a pool of two
    threads (the default, 0, runs them on the reactor thread), and messages travel as ever."""
    from imfed.crypto import signing

    from conftest import join_node, wait_until

    assert signing.crypto.pool is None
    a = await join_node(management, str(tmp_path / "a"), "node-a")
    b = await join_node(management, str(tmp_path / "b"), "node-b", top={"crypto_threads": 2})
    try:
        pool = signing.crypto.pool
        assert pool is not None and pool.max == 2 and pool.started
        await a.role.refresher.refresh()
        await wait_until(lambda: a.role.directory.active("node-b") and
                         b.role.directory.active("node-a"), what="directories")
        add_user(a, "13500000001", "Alice Wang")
        add_user(b, "13600000002", "Bob Li")
        alice = await ApiClient(a, "13500000001").login()
        bob = await ApiClient(b, "13600000002").login()
        sent = await alice.ok("POST", "messages", {"recvID": "13600000002@node-b",
                                                   "messageType": "text",
                                                   "content": {"message": "on threads"}})
        got = await bob.wait_event("message")
        assert got["messageInfo"]["content"] == {"message": "on threads"}
        mid = sent["message"]["messageInfo"]["messageID"]
        delivered = await alice.wait_event("delivery", match=lambda d: d["messageID"] == mid)
        assert delivered["state"] == "sent"
        assert pool.threads  # the signing and verifying went through it
    finally:
        await b.stop()
        await a.stop()
    assert signing.crypto.pool is None and not pool.started


@pytest_twisted.ensureDeferred
async def test_files_travel_byte_identical_through_the_relay(pair):
    import hashlib

    import treq

    from imfed.peer import PeerError

    a, b = pair
    alice = await signed_up(a, "100", "Alice")
    bob = await signed_up(b, "200", "Bob")
    carol = await signed_up(b, "201", "Carol")
    data = os.urandom(3 << 20)

    async def upload(client, payload, name):
        response = await treq.post(client.node.client_url + "files", data=payload,
                                   params={"name": name},
                                   headers={"Authorization": "Bearer " + client.token})
        import json

        return response.code, json.loads((await treq.content(response)).decode())

    status, uploaded = await upload(alice, data, "报告.pdf")
    assert status == 200 and uploaded["size"] == len(data)
    assert uploaded["md5"] == hashlib.md5(data).hexdigest()
    file_id = uploaded["fileID"]

    for kind, extra in (("file", {}), ("image", {}), ("voice", {"duration": 7})):
        await alice.ok("POST", "messages", {"recvID": "200@node-b", "messageType": kind,
                                            "content": dict({"fileID": file_id}, **extra)})
    got = [await bob.wait_event("message") for _ in range(3)]
    assert [m["messageInfo"]["messageType"] for m in got] == ["file", "image", "voice"]
    content = got[0]["messageInfo"]["content"]
    assert content == {"size": len(data), "fileID": file_id, "md5": uploaded["md5"],
                       "name": "报告.pdf"}
    assert got[2]["messageInfo"]["content"]["duration"] == 7

    async def download(client):
        response = await treq.get(client.node.client_url + "files/" + file_id,
                                  headers={"Authorization": "Bearer " + client.token})
        return response.code, await treq.content(response), response.headers

    status, body, headers = await download(bob)
    assert status == 200 and body == data
    assert headers.getRawHeaders(b"content-disposition")[0].startswith(b"attachment")
    status, body, _ = await download(bob)  # from the cache now
    assert status == 200 and body == data
    assert os.path.exists(os.path.join(b.role.file_dir, "cache-" + file_id.split("@")[0]))
    status, body, _ = await download(carol)  # not a recipient
    assert status == 404
    status, body, _ = await download(alice)  # the sender, locally
    assert status == 200 and body == data

    # The download itself: written and hashed on its own thread, the transport paused while
    # too much waits for it (thresholds lowered here so that it pauses and resumes often).
    from imfed import peer as peer_module
    from imfed.crypto.sm3 import sm3_hex

    peer = b.role.directory.active("node-a")
    target = str(b.role.file_dir) + "/direct"
    sink = peer_module._FileSink
    saved = sink.HIGH, sink.LOW, sink.REPORT
    sink.HIGH, sink.LOW, sink.REPORT = 1 << 16, 1 << 15, 1 << 14
    try:
        got = await b.role.client.download("node-a", peer.address, "/sns/download/file",
                                           {"fileID": file_id}, target, 8 << 20)
    finally:
        sink.HIGH, sink.LOW, sink.REPORT = saved
    assert got == (len(data), hashlib.md5(data).hexdigest(), sm3_hex(data))
    with open(target, "rb") as f:
        assert f.read() == data
    with pytest.raises(PeerError, match="file over 1000 bytes"):
        await b.role.client.download("node-a", peer.address, "/sns/download/file",
                                     {"fileID": file_id}, target, 1000)

    # The origin gives the file only to servers with an entitled user.
    other = os.urandom(1000)
    status, private = await upload(alice, other, "private.bin")
    with pytest.raises(PeerError, match="403"):
        await b.role.client.download("node-a", peer.address, "/sns/download/file",
                                     {"fileID": private["fileID"]}, str(b.role.file_dir) + "/x",
                                     1 << 20)
    # A message may only name a file its sender uploaded.
    status, answer = await bob.call("POST", "messages", {
        "recvID": "100@node-a", "messageType": "file", "content": {"fileID": file_id}})
    assert status == 404 and answer["errcode"] == "unknown_file"


@pytest_twisted.ensureDeferred
async def test_server_sent_events_stream_and_resume(pair):
    """The SSE stream delivers live events, and resumes after Last-Event-ID."""
    import treq
    from twisted.internet.defer import Deferred

    a, b = pair
    alice = await signed_up(a, "100", "Alice")
    bob = await signed_up(b, "200", "Bob")
    seen, enough = [], Deferred()

    def feed(chunk):
        for block in chunk.decode().split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line
                          and not line.startswith(":"))
            if fields.get("event") == "message":
                seen.append((int(fields["id"]), fields["data"]))
                if len(seen) == 2 and not enough.called:
                    enough.callback(None)

    response = await treq.get(b.client_url + "events/stream",
                              headers={"Authorization": "Bearer " + bob.token})
    assert response.headers.getRawHeaders(b"content-type")[0].startswith(b"text/event-stream")
    collecting = treq.collect(response, feed)
    for text in ("one", "two"):
        await alice.ok("POST", "messages", {"recvID": "200@node-b", "messageType": "text",
                                            "content": {"message": text}})
    enough.addTimeout(15, reactor)
    await enough
    assert ['"one"' in seen[0][1], '"two"' in seen[1][1]] == [True, True]
    collecting.addErrback(lambda _: None)
    _hang_up(response)
    # Resume after the first: only the second comes back.
    again = await treq.get(b.client_url + "events/stream",
                           headers={"Authorization": "Bearer " + bob.token,
                                    "Last-Event-ID": str(seen[0][0])})
    replay, done = [], Deferred()

    def feed2(chunk):
        if b"event: message" in chunk and not done.called:
            replay.append(chunk)
            done.callback(None)

    resumed = treq.collect(again, feed2)
    done.addTimeout(15, reactor)
    await done
    assert b'"two"' in replay[0] and b'"one"' not in replay[0]
    resumed.addErrback(lambda _: None)
    _hang_up(again)


def _hang_up(response) -> None:
    """Close a streaming response's connection, as a client going away would (treq offers no
    public way; only a test reaches inside)."""
    inner = response.original
    while not hasattr(inner, "_transport") and hasattr(inner, "original"):
        inner = inner.original
    inner._transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_certificate_renewal_through_modify(pair, management):
    from twisted.internet.defer import ensureDeferred

    from imfed.crypto import pki
    from imfed.management import review, store
    from imfed.node.clients.join import renew

    from conftest import RunningNode, wait_until

    a, b = pair
    old = pki.load_pem_certificate(a.config.node.cert_file)
    renewing = ensureDeferred(renew(reactor, a.config.node, poll_seconds=0.05))
    app = await wait_until(lambda: management.role.store.run(store.pending_for, "node-a"),
                           what="the renewal application")
    assert app.kind == "modify" and app.csr_pem
    await management.role.store.run(review.approve, app.application_id, management.ca, "test",
                                    30, management.role.store.now_ms())
    new = await renewing
    assert new.public_key != old.public_key and new.subject_cn == "node-a"
    assert os.path.exists(a.config.node.key_file + ".old")
    assert (await management.role.store.get("node-a")).cert_fingerprint == new.fingerprint

    # A restarts with its new identity; B learned the new certificate from the notification.
    await a.stop()
    a = RunningNode(a.config).start()
    pair_nodes = pair
    try:
        await _federates_with_new_certificate(a, b, new.fingerprint)
    finally:
        pair_nodes[0].service = a.service  # the fixture stops the running one


@pytest_twisted.ensureDeferred
async def test_running_node_renews_its_certificate_before_expiry(management, tmp_path):
    """A's certificate (365 days) is inside its 400-day renewal window: the daemon applies for
    a new one, and once the operator approves it signs and presents the new one without a
    restart, both ways."""
    from imfed.crypto import pki
    from imfed.management import review, store

    from conftest import join_node, wait_until

    a = await join_node(management, str(tmp_path / "a"), "node-a", renew_before_days=400,
                        renew_check_seconds=0.2)
    b = await join_node(management, str(tmp_path / "b"), "node-b")
    try:
        await a.role.refresher.refresh()
        old = a.role.identity.certificate
        app = await wait_until(lambda: management.role.store.run(store.pending_for, "node-a"),
                               what="the renewal application")
        assert app.kind == "modify" and app.csr_pem
        assert a.role.identity.certificate.fingerprint == old.fingerprint  # still waiting
        # The operator renewing by hand meanwhile is told, and changes nothing.
        from test_node_delivery import imfed

        code, out = await imfed(a, "node", "renew", "--wait", "0")
        assert code == 1 and "already running" in out, out
        assert pki.load_pem_certificate(a.config.node.cert_file).fingerprint == old.fingerprint
        await management.role.store.run(review.approve, app.application_id, management.ca,
                                        "test", 1000, management.role.store.now_ms())
        await wait_until(lambda: a.role.identity.certificate.fingerprint != old.fingerprint,
                         what="A to take up its new certificate")
        new = a.role.identity.certificate
        assert new.public_key != old.public_key and new.subject_cn == "node-a"
        assert pki.load_pem_certificate(a.config.node.cert_file).fingerprint == new.fingerprint
        assert (await management.role.store.get("node-a")).cert_fingerprint == new.fingerprint
        await _federates_with_new_certificate(a, b, new.fingerprint)
        listen = a.config.node.listen
        assert await _presented_certificate(b.role.client.policy, listen.host, listen.port,
                                            "node-a") == new.fingerprint
        # The renewed certificate (1000 days) is outside the window: no second application.
        assert await management.role.store.run(store.pending_for, "node-a") is None
    finally:
        await b.stop()
        await a.stop()


async def _federates_with_new_certificate(a, b, fingerprint: str) -> None:
    """B learns A's new certificate from the management server's notification; then a message
    goes each way, and B takes A's answer as delivered (it verified under the new one)."""
    from conftest import wait_until

    await wait_until(lambda: b.role.directory.active("node-a") is not None and
                     b.role.directory.active("node-a").cert.fingerprint == fingerprint,
                     what="B to know A's new certificate")
    alice = await signed_up(a, "100", "Alice")
    bob = await signed_up(b, "200", "Bob")
    await alice.ok("POST", "messages", {"recvID": "200@node-b", "messageType": "text",
                                        "content": {"message": "new key"}})
    assert (await bob.wait_event("message"))["messageInfo"]["content"]["message"] == "new key"
    sent = await bob.ok("POST", "messages", {"recvID": "100@node-a", "messageType": "text",
                                             "content": {"message": "got it"}})
    got = await alice.wait_event("message", match=lambda m: m["messageInfo"]["senderID"]
                                 == "200@node-b")
    assert got["messageInfo"]["content"] == {"message": "got it"}
    mid = sent["message"]["messageInfo"]["messageID"]
    delivered = await bob.wait_event("delivery", match=lambda d: d["messageID"] == mid)
    assert delivered["state"] == "sent"


async def _presented_certificate(policy, host: str, port: int, server_id: str) -> str:
    """SM3 fingerprint of the certificate the listener at host:port presents in a real
    mutual-TLS handshake made with ``policy`` (a caller's PeerPolicy) expecting ``server_id``."""
    from twisted.internet.defer import Deferred
    from twisted.internet.endpoints import HostnameEndpoint, connectProtocol, wrapClientTLS
    from twisted.internet.protocol import Protocol

    from imfed.crypto.tls import leaf_certificate

    policy.expect(host, port, server_id)
    handshake = Deferred()

    class Probe(Protocol):
        def connectionMade(self):
            self.transport.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")

        def dataReceived(self, data):
            if not handshake.called:
                handshake.callback(self.transport.getPeerCertificate())
            self.transport.loseConnection()

    endpoint = wrapClientTLS(policy.creatorForNetloc(host.encode(), port),
                             HostnameEndpoint(reactor, host, port))
    await connectProtocol(endpoint, Probe())
    return leaf_certificate(await handshake).fingerprint


@pytest_twisted.ensureDeferred
async def test_management_certificate_renewed_and_fetched_again(management, tmp_path):
    """The management server reissues its own certificate before it expires and presents it at
    once; a node fetches it again before its pinned copy expires, and starts even with an
    expired copy."""
    import datetime

    from imfed.crypto import pki

    from conftest import RunningNode, join_node, wait_until

    node = await join_node(management, str(tmp_path / "a"), "node-a", renew_check_seconds=0.2)
    role = management.role
    request = pki.make_csr(role.signing_key, "manager")
    short = role.ca.issue(request, "manager", "127.0.0.1", 10)  # ten days left
    try:
        pki.write_file(role.identity.cert_file, short.pem)
        assert role.renew_own_certificate()
        fresh = role.identity.certificate
        assert fresh.fingerprint != short.fingerprint and fresh.public_key == short.public_key
        assert pki.load_pem_certificate(role.identity.cert_file).fingerprint == fresh.fingerprint
        assert await _presented_certificate(node.role.client.policy, "127.0.0.1",
                                            management.port, "manager") == fresh.fingerprint
        assert not role.renew_own_certificate()  # current now

        # The node's pinned copy has ten days left: it fetches the current one.
        pinned = node.config.node.management_cert_file
        pki.write_file(pinned, short.pem)
        node.role.directory.management_cert = short
        await wait_until(lambda: node.role.directory.management_cert.fingerprint ==
                         fresh.fingerprint, what="the node to fetch the management certificate")
        assert pki.load_pem_certificate(pinned).fingerprint == fresh.fingerprint

        # A copy that expired while the node was stopped does not stop it from starting.
        await node.stop()
        long_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=400)
        expired = pki.issue_certificate(role.ca.key, role.ca.cert, request, "manager",
                                        "127.0.0.1", 365, now=long_ago)
        assert not expired.valid_at()
        pki.write_file(pinned, expired.pem)
        node = RunningNode(node.config).start()
        await wait_until(lambda: pki.load_pem_certificate(pinned).fingerprint ==
                         fresh.fingerprint, what="the node to replace its expired copy")
        await node.role.refresher.refresh()  # answers checked with the fetched copy
    finally:
        await node.stop()


@pytest_twisted.ensureDeferred
async def test_node_join_command_line(management, tmp_path):
    """`imfed node join` as an operator runs it: progress printed while the application waits,
    the certificate installed once the management operator approves."""
    import sys

    from twisted.internet.utils import getProcessOutputAndValue

    from imfed.crypto import pki
    from imfed.management import review, store

    from conftest import REPO, wait_until

    config = node_config(str(tmp_path / "n"), "node-cli", management)
    path = os.path.join(config.data_dir, "imfed.toml")
    args = ["-m", "imfed.cli", "node", "join", "--config", path, "--contact-name", "Ops",
            "--contact-email", "ops@example.com", "--contact-mobile", "13500001111",
            "--poll", "0.2", "--wait", "60"]
    env = dict(os.environ, PYTHONPATH=REPO)
    wrong = await getProcessOutputAndValue(sys.executable, args + ["--ca-fingerprint", "ab" * 32],
                                           env=env, path=REPO)
    assert wrong[2] == 1 and b"not joining" in wrong[1]
    running = getProcessOutputAndValue(
        sys.executable, args + ["--ca-fingerprint", management.ca.cert.fingerprint], env=env,
        path=REPO)
    app = await wait_until(lambda: management.role.store.run(store.pending_for, "node-cli"),
                           timeout=30, what="the application")
    await management.role.store.run(review.approve, app.application_id, management.ca, "ops",
                                    30, management.role.store.now_ms())
    out, err, code = await running
    assert code == 0, err
    text = out.decode()
    assert "CA certificate pinned" in text and "waiting for the operator's review" in text
    assert "approved: certificate" in text
    cert = pki.load_pem_certificate(config.node.cert_file)
    assert cert.subject_cn == "node-cli"


@pytest_twisted.ensureDeferred
async def test_dns_addressing_form(pair):
    """IDs of the form <local>@<host>:<port> (§6.2.2) address the server registered at that
    address, which must still present a CA-issued certificate; they are kept in the serverId
    form."""
    a, b = pair
    alice = await signed_up(a, "100", "Alice")
    bob = await signed_up(b, "200", "Bob")
    a_at = "127.0.0.1:%d" % a.config.node.listen.port
    b_at = "127.0.0.1:%d" % b.config.node.listen.port

    sent = await alice.ok("POST", "messages", {"recvID": "200@" + b_at, "messageType": "text",
                                               "content": {"message": "via DNS form"}})
    assert sent["message"]["messageInfo"]["recvID"] == "200@node-b"
    got = await bob.wait_event("message")
    assert got["messageInfo"]["senderID"] == "100@node-a"

    # A peer writing every ID in the DNS form is understood as well.
    peer = a.role.directory.active("node-b")
    answer = await a.role.client.call("node-b", peer.address, "POST", "/sns/chat", {
        "messageInfo": {"senderID": "100@" + a_at, "recvID": "200@" + b_at,
                        "messageType": "text", "version": "v1", "type": 1,
                        "messageID": "dnsform1@" + a_at, "content": {"message": "all DNS"}}})
    assert answer.ok, answer.body
    got = await bob.wait_event("message", match=lambda m: m["messageInfo"]["content"]
                               ["message"] == "all DNS")
    assert got["messageInfo"]["senderID"] == "100@node-a"
    assert got["messageInfo"]["messageID"] == "dnsform1@node-a"
    # The same message again in the other form is a repeat, not a second message.
    again = await a.role.client.call("node-b", peer.address, "POST", "/sns/chat", {
        "messageInfo": {"senderID": "100@node-a", "recvID": "200@node-b",
                        "messageType": "text", "version": "v1", "type": 1,
                        "messageID": "dnsform1@node-a", "content": {"message": "all DNS"}}})
    assert again.ok
    history = await bob.ok("GET", "conversations/100@" + a_at + "/messages")
    assert [m["messageInfo"]["content"]["message"] for m in history["messages"]].count(
        "all DNS") == 1

    # No member of the federation at that address: refused.
    status, answer = await alice.call("POST", "messages", {
        "recvID": "200@127.0.0.1:1", "messageType": "text", "content": {"message": "?"}})
    assert status == 404 and answer["errcode"] == "unknown_server"


@pytest_twisted.ensureDeferred
async def test_recalled_means_gone(pair):
    """Issue #29, 4: after a recall neither side's client API shows the content (message,
    history, conversation list), the recipient can no longer download the file the recalled
    message sent, its server drops its copy, and the sender's server no longer serves it to
    the recipient's server."""
    import treq

    from imfed.peer import PeerError

    from conftest import node_rows

    a, b = pair
    alice = await signed_up(a, "100", "Alice")
    bob = await signed_up(b, "200", "Bob")
    payload = os.urandom(50000)
    response = await treq.post(a.client_url + "files", data=payload, params={"name": "x.bin"},
                               headers={"Authorization": "Bearer " + alice.token})
    import json

    file_id = json.loads((await treq.content(response)).decode())["fileID"]
    text = await alice.ok("POST", "messages", {"recvID": "200@node-b", "messageType": "text",
                                               "content": {"message": "secret 机密"}})
    sent_file = await alice.ok("POST", "messages", {"recvID": "200@node-b",
                                                    "messageType": "file",
                                                    "content": {"fileID": file_id}})
    mids = [m["message"]["messageInfo"]["messageID"] for m in (text, sent_file)]
    for _ in mids:
        await bob.wait_event("message")

    async def download():
        response = await treq.get(b.client_url + "files/" + file_id,
                                  headers={"Authorization": "Bearer " + bob.token})
        return response.code, await treq.content(response)

    assert await download() == (200, payload)  # B now holds a copy
    copy = node_rows(b, "SELECT path FROM files WHERE file_id = ?", file_id)[0][0]
    assert copy and os.path.exists(copy)
    for mid in mids:
        await alice.ok("POST", "messages/%s/recall" % mid)
        await bob.wait_event("recall", match=lambda r, mid=mid: r["messageID"] == mid)

    for client, peer in ((alice, "200@node-b"), (bob, "100@node-a")):
        for mid in mids:
            message = (await client.ok("GET", "messages/" + mid))["message"]
            assert message["recalled"] and "content" not in message["messageInfo"], message
        history = await client.ok("GET", "conversations/%s/messages" % peer)
        assert [m["recalled"] for m in history["messages"]] == [True, True]
        assert not any("content" in m["messageInfo"] for m in history["messages"])
        last = (await client.ok("GET", "conversations"))["conversations"][0]["last"]
        assert "content" not in last["messageInfo"]
    for node in (a, b):
        stored = node_rows(node, "SELECT content FROM messages")
        assert stored and all("secret" not in row[0] and file_id not in row[0]
                              for row in stored)
    status, _ = await download()
    assert status == 404
    assert not os.path.exists(copy)
    peer = b.role.directory.active("node-a")
    with pytest.raises(PeerError):
        await b.role.client.download("node-a", peer.address, "/sns/download/file",
                                     {"fileID": file_id}, str(b.role.file_dir) + "/again",
                                     1 << 20)
    # The sender still has her upload.
    response = await treq.get(a.client_url + "files/" + file_id,
                              headers={"Authorization": "Bearer " + alice.token})
    assert response.code == 200 and await treq.content(response) == payload


@pytest_twisted.ensureDeferred
async def test_a_send_repeated_with_its_txn_id_is_sent_once(pair):
    """Issue #30, 4: a client that sends again with the same txnId (its connection broke after
    the server had committed) gets the first answer, and nothing is sent twice; a one-to-one
    message and a group message alike; another user's same txnId is their own."""
    from conftest import node_rows, signed_up
    from test_groups import make_group

    a, b = pair
    alice = await signed_up(a, "100", "Alice")
    bob = await signed_up(b, "200", "Bob")
    carol = await signed_up(a, "101", "Carol")
    body = {"recvID": "200@node-b", "messageType": "text", "content": {"message": "once"},
            "txnId": "t-1"}
    first = await alice.ok("POST", "messages", body)
    again = await alice.ok("POST", "messages", body)
    assert again["message"]["messageInfo"]["messageID"] == \
        first["message"]["messageInfo"]["messageID"]
    theirs = await carol.ok("POST", "messages", body)
    assert theirs["message"]["messageInfo"]["messageID"] != \
        first["message"]["messageInfo"]["messageID"]
    await bob.wait_event("message")
    await bob.wait_event("message")
    texts = node_rows(b, "SELECT sender_id FROM messages WHERE recv_id = '200@node-b'")
    assert sorted(r[0] for r in texts) == ["100@node-a", "101@node-a"]  # one each
    gid = await make_group(alice, "txn", [bob])
    group = {"messageType": "text", "content": {"message": "g"}, "txnId": "t-2"}
    ids = [(await client.ok("POST", "groups/%s/messages" % gid, group))["messageID"]
           for client in (alice, alice)]
    assert ids[0] == ids[1]
    from conftest import wait_until

    await wait_until(lambda: node_rows(b, "SELECT COUNT(*) FROM group_messages")[0][0] == 1,
                     what="the group message on B")
    status, answer = await alice.call("POST", "messages", dict(body, txnId="no spaces"))
    assert (status, answer["errcode"]) == (400, "bad_txnId")
