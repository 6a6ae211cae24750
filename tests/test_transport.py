"""Mutual SM2 TLS and signed requests over real loopback sockets."""

from __future__ import annotations

import json

import pytest
import pytest_twisted
from twisted.internet import reactor

from imfed.crypto import signing, tls
from imfed.peer import PeerClient, PeerError

from conftest import REFUSED, PlainClientPolicy, http, issue_from, join_node, json_of, register

SERVERS = "/sns/restApi/managerserver/servers"


def _peer(issued, management) -> PeerClient:
    async def certificate_of(server_id):
        return management.role.identity.certificate if server_id == "manager" else None

    return PeerClient(server_id=issued.server_id, key=issued.key, identity=issued.identity(),
                      reactor=reactor, certificate_of=certificate_of)


def _signed_headers(issued, target, body, *, origin=None, destination="manager", ts=None,
                    nonce=None, key=None):
    ts = int(reactor.seconds() * 1000) if ts is None else ts
    header, nonce = signing.sign_request(key or issued.key, "POST", target,
                                         origin or issued.server_id, destination, body, ts, nonce)
    return {"Authorization": header, "Content-Type": "application/json"}, nonce


@pytest_twisted.ensureDeferred
async def test_signed_request_accepted_and_response_verified(management, tmp_path):
    node = issue_from(management.ca, str(tmp_path / "a"), "node-a")
    await register(management.role, node)
    client = _peer(node, management)
    try:
        answer = await client.call("manager", management.url, "POST", SERVERS,
                                   {"lastQueryTime": 0})
        assert answer.status == 200 and answer.ok
        assert [s["serverId"] for s in answer.body["servers"]] == ["node-a"]
        assert answer.body["serverTime"] > 0
        # Also under /sns/v1/ and with a trailing slash (docs/protocol.md §2).
        again = await client.call("manager", management.url, "POST",
                                  SERVERS.replace("/sns/", "/sns/v1/") + "/",
                                  {"lastQueryTime": answer.body["serverTime"]})
        assert again.ok and again.body["servers"] == []
    finally:
        await client.close()


@pytest_twisted.ensureDeferred
async def test_bad_signed_requests_get_401_json(management, tmp_path):
    node = issue_from(management.ca, str(tmp_path / "a"), "node-a")
    await register(management.role, node)
    policy = PlainClientPolicy(node.ca_file, node.cert_file, node.key_file)
    url = management.url + SERVERS
    body = b'{"lastQueryTime": 0}'
    before = management.db_snapshot()

    async def attempt(headers, data=body):
        status, response_headers, content = await http(policy, "POST", url, data, headers)
        return status, json_of(content), response_headers

    good, nonce = _signed_headers(node, SERVERS, body)
    status, answer, _ = await attempt(good)
    assert status == 200 and answer["code"] == "0"

    from imfed.crypto.sm2 import generate_private_key

    cases = {
        "bad signature": _signed_headers(node, SERVERS, body, key=generate_private_key())[0],
        "stale ts": _signed_headers(node, SERVERS, body,
                                    ts=int(reactor.seconds() * 1000) - 301_000)[0],
        "future ts": _signed_headers(node, SERVERS, body,
                                     ts=int(reactor.seconds() * 1000) + 310_000)[0],
        "replayed nonce": good,
        "wrong destination": _signed_headers(node, SERVERS, body, destination="node-z")[0],
        "unknown origin": _signed_headers(node, SERVERS, body, origin="node-q")[0],
        "other path": _signed_headers(node, "/sns/v1/restApi/managerserver/servers", body)[0],
        "no header": {"Content-Type": "application/json"},
    }
    for name, headers in cases.items():
        status, answer, response_headers = await attempt(headers)
        assert status == 401, name
        assert answer["code"] != "0" and answer["errcode"] == "bad_signature", name
        assert answer["desc"], name
        assert response_headers.getRawHeaders(b"content-type") == [
            b"application/json;charset=utf-8"]
    changed, _ = _signed_headers(node, SERVERS, body)
    status, answer, _ = await attempt(changed, b'{"lastQueryTime": 1}')
    assert status == 401 and answer["errcode"] == "bad_signature"
    assert management.db_snapshot() == before


@pytest_twisted.ensureDeferred
async def test_tls_identity_must_match_origin_and_be_active(management, tmp_path):
    a = issue_from(management.ca, str(tmp_path / "a"), "node-a")
    b = issue_from(management.ca, str(tmp_path / "b"), "node-b")
    await register(management.role, a)
    await register(management.role, b, status=1)  # suspended
    body = b"{}"
    url = management.url + SERVERS
    # node-b's connection carrying node-a's signature.
    headers, _ = _signed_headers(a, SERVERS, body)
    status, _, content = await http(PlainClientPolicy(b.ca_file, b.cert_file, b.key_file),
                                    "POST", url, body, headers)
    assert status == 401 and "TLS client certificate" in json_of(content)["desc"]
    # A suspended server's own, correctly signed call.
    headers, _ = _signed_headers(b, SERVERS, body)
    status, _, content = await http(PlainClientPolicy(b.ca_file, b.cert_file, b.key_file),
                                    "POST", url, body, headers)
    assert status == 401 and "not an active server" in json_of(content)["desc"]
    # A signed call on a connection without a client certificate.
    headers, _ = _signed_headers(a, SERVERS, body)
    status, _, content = await http(PlainClientPolicy(a.ca_file), "POST", url, body, headers)
    assert status == 401 and "client certificate" in json_of(content)["desc"]


@pytest_twisted.ensureDeferred
async def test_foreign_ca_client_fails_handshake(management, other_ca):
    foreign = other_ca.issue("node-a")
    policy = PlainClientPolicy(management.role.identity.ca_file, foreign.cert_file,
                               foreign.key_file)
    with pytest.raises(REFUSED):
        await http(policy, "POST", management.url + "/sns/restApi/managerserver/cacert")
    # Without a certificate the unauthenticated calls work (a new node has none yet).
    status, _, content = await http(PlainClientPolicy(management.role.identity.ca_file), "GET",
                                    management.url + "/sns/restApi/managerserver/cacert")
    assert status == 200
    assert json_of(content)["caCert"].encode() == management.ca.cert.pem


@pytest_twisted.ensureDeferred
async def test_client_refuses_server_with_unexpected_identity(management, tmp_path):
    node = issue_from(management.ca, str(tmp_path / "a"), "node-a")
    await register(management.role, node)
    client = _peer(node, management)
    try:
        # The management server's certificate names "manager", not "node-b".
        with pytest.raises(PeerError, match="unreachable"):
            await client.call("node-b", management.url, "POST", SERVERS, {})
        # Dialled as "localhost", the certificate (IP 127.0.0.1 only) does not name the host.
        with pytest.raises(PeerError, match="unreachable"):
            await client.call("manager", management.url.replace("127.0.0.1", "localhost"),
                              "POST", SERVERS, {})
        # A response signed by anyone but the destination is a failed call.

        async def wrong_cert(server_id):
            return node.cert

        client.certificate_of = wrong_cert
        with pytest.raises(PeerError, match="signature"):
            await client.call("manager", management.url, "POST", SERVERS, {})
    finally:
        await client.close()


@pytest_twisted.async_yield_fixture
async def node_listener(tmp_path, management):
    node = await join_node(management, str(tmp_path / "node"), "node-n")
    listen = node.config.node.listen
    yield "https://127.0.0.1:%d" % listen.port, node.config.node
    await node.stop()


@pytest_twisted.ensureDeferred
async def test_node_listener_requires_client_certificate(node_listener, management, other_ca,
                                                         tmp_path):
    url, node = node_listener
    with pytest.raises(REFUSED):
        await http(PlainClientPolicy(node.ca_file), "GET", url + "/sns/chat")
    foreign = other_ca.issue("node-f")
    with pytest.raises(REFUSED):
        await http(PlainClientPolicy(node.ca_file, foreign.cert_file, foreign.key_file),
                   "GET", url + "/sns/chat")
    peer = issue_from(management.ca, str(tmp_path / "p"), "node-p")
    status, headers, content = await http(
        PlainClientPolicy(node.ca_file, peer.cert_file, peer.key_file), "GET",
        url + "/no/such/path")
    assert status == 404 and json_of(content)["code"] == 1
    assert json_of(content)["errcode"] == "no_such_path"


@pytest_twisted.ensureDeferred
async def test_error_mapping(management):
    policy = PlainClientPolicy(management.role.identity.ca_file)
    base = management.url
    before = management.db_snapshot()
    cases = [
        ("POST", "/sns/restApi/getservercert", b"{not json", 400, "malformed_json"),
        ("POST", "/sns/restApi/getservercert", b"[1, 2]", 400, "malformed_json"),
        ("POST", "/sns/restApi/getservercert", b"\xff\xfe", 400, "malformed_json"),
        ("POST", "/sns/restApi/getservercert", b"{}", 400, "bad_serverId"),
        ("POST", "/sns/restApi/getservercert", b'{"serverId": 7}', 400, "bad_serverId"),
        ("POST", "/sns/restApi/getservercert", b'{"serverId": "a/b"}', 400, "bad_serverId"),
        ("POST", "/sns/restApi/getservercert", b'{"serverId": "nobody"}', 404, "unknown_server"),
        ("POST", "/sns/restApi/getservercert",
         json.dumps({"serverId": "x" * (2 << 20)}).encode(), 413, "too_large"),
        ("GET", "/sns/restApi/getservercert", None, 405, "method_not_allowed"),
        ("GET", "/nowhere", None, 404, "no_such_path"),
    ]
    for method, path, body, status, errcode in cases:
        got, headers, content = await http(policy, method, base + path, body)
        answer = json_of(content)
        assert (got, answer["errcode"]) == (status, errcode), path
        assert answer["code"] == "1" and answer["desc"]
        assert b"Traceback" not in content
    got, _, content = await http(policy, "POST", base + "/sns/restApi/getservercert",
                                 b'{"serverId": "manager"}')
    assert got == 200 and json_of(content)["serverCert"].startswith("-----BEGIN CERTIFICATE")
    assert management.db_snapshot() == before


@pytest_twisted.ensureDeferred
async def test_handshake_is_tls13_with_sm2(management, tmp_path):
    from twisted.internet.defer import Deferred
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
    from twisted.internet.interfaces import IHandshakeListener
    from twisted.internet.protocol import Protocol
    from zope.interface import implementer

    node = issue_from(management.ca, str(tmp_path / "a"), "node-a")
    policy = tls.PeerPolicy(node.identity())
    policy.expect("127.0.0.1", management.port, "manager")

    @implementer(IHandshakeListener)
    class Probe(Protocol):
        def __init__(self):
            self.done = Deferred()

        def handshakeCompleted(self):
            conn = self.transport._tlsConnection  # only a test looks inside
            self.done.callback((conn.get_protocol_version_name(),
                                tls.leaf_certificate(conn.get_peer_certificate()).subject_cn))

    endpoint = wrapClientTLS(policy.creatorForNetloc(b"127.0.0.1", management.port),
                             TCP4ClientEndpoint(reactor, "127.0.0.1", management.port))
    probe = await connectProtocol(endpoint, Probe())
    version, cn = await probe.done
    probe.transport.loseConnection()
    assert (version, cn) == ("TLSv1.3", "manager")


@pytest_twisted.ensureDeferred
async def test_client_certificate_signed_under_another_id_is_refused(management, tmp_path):
    """Whatever OpenSSL decides about the SM2 ID, our own check refuses the certificate."""
    from imfed.crypto import pki, sm2

    from conftest import openssl

    key = sm2.generate_private_key()
    (tmp_path / "k.pem").write_bytes(key.to_pem())
    (tmp_path / "r.pem").write_bytes(pki.make_csr(key, "node-x").pem)
    ca_dir = management.data_dir + "/management/ca"
    openssl("x509", "-req", "-in", str(tmp_path / "r.pem"), "-CA", ca_dir + "/ca.pem",
            "-CAkey", ca_dir + "/ca.key", "-CAcreateserial", "-days", "30", "-sm3",
            "-sigopt", "distid:0000000000000001", "-vfyopt", "distid:1234567812345678",
            "-out", str(tmp_path / "c.pem"))
    policy = PlainClientPolicy(ca_dir + "/ca.pem", str(tmp_path / "c.pem"),
                               str(tmp_path / "k.pem"))
    with pytest.raises(REFUSED):
        await http(policy, "GET", management.url + "/sns/restApi/managerserver/cacert")
