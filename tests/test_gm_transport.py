"""The GM transport between servers (docs/crypto.md): TLS 1.3 with SM4 (RFC 8998), TLCP with two
certificates on the same port, the [tls] policy, and handshakes that must be refused.

What was negotiated is read from the connections themselves: the access log's last field, which
each listener writes from its connection's TLS state, and the handshake's own answers."""

from __future__ import annotations

import contextlib
import json
import time
import weakref

import attrs

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.interfaces import (IOpenSSLClientConnectionCreator,
                                         IOpenSSLServerConnectionCreator)
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import formatEvent, globalLogPublisher
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web.resource import Resource
from twisted.web.iweb import IPolicyForHTTPS
from twisted.web.server import Site
from zope.interface import implementer

from imfed.crypto import _tongsuo, pki, signing, sm2
from imfed.metrics import REGISTRY

from conftest import (PlainClientPolicy, add_user, http, issue_from, json_of, register, signed_up,
                      start_management, wait_until)

SM4_13 = "TLSv1.3/TLS_SM4_GCM_SM3"
GETSERVERCERT = "/sns/restApi/getservercert"


@contextlib.contextmanager
def log_lines():
    """Every log line written while inside, as text."""
    lines: list[str] = []

    def observe(event):
        lines.append(formatEvent(event) or "")

    globalLogPublisher.addObserver(observe)
    try:
        yield lines
    finally:
        globalLogPublisher.removeObserver(observe)


def federation_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if '"POST /sns' in line or '"GET /sns' in line]


def between_nodes(lines: list[str]) -> list[str]:
    """The access lines of calls one node made to the other (not to or from the management
    server)."""
    return [line for line in federation_lines(lines)
            if line.split(" ")[1] in ("node-a", "node-b") and "/managerserver/" not in line]


PATHS = ("/sns/chat", "/sns/download/file", "/sns/invite/grpreq", "/sns/invite/grprep",
         "/sns/notify/grpchat")
"""What _message_and_file makes one node call on the other: a message, a file, a group."""


def every_path(calls: list[str]) -> list[str]:
    """``calls``, once each of PATHS is seen among them."""
    for path in PATHS:
        assert [line for line in calls if path in line], (path, calls)
    return calls


def metric(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _address(node) -> tuple[str, int]:
    listen = node.config.node.listen
    return listen.host, listen.port


async def _upload(client, payload: bytes, name: str) -> dict:
    response = await treq.post(client.node.client_url + "files", data=payload,
                               params={"name": name},
                               headers={"Authorization": "Bearer " + client.token})
    assert response.code == 200
    return json.loads((await treq.content(response)).decode())


async def _message_and_file(a, b, phone_a: str, phone_b: str) -> None:
    """A text and a file from a user of A to one of B; B's user downloads the file (B fetches
    it from A over the federation)."""
    alice = await signed_up(a, phone_a, "Alice")
    bob = await signed_up(b, phone_b, "Bob")
    await alice.ok("POST", "messages", {"recvID": "%s@node-b" % phone_b, "messageType": "text",
                                        "content": {"message": "国密 hello"}})
    uploaded = await _upload(alice, b"\x00\x01" * 40000, "data.bin")
    await alice.ok("POST", "messages", {"recvID": "%s@node-b" % phone_b, "messageType": "file",
                                        "content": {"fileID": uploaded["fileID"]}})
    got = [await bob.wait_event("message") for _ in range(2)]
    assert got[0]["messageInfo"]["content"]["message"] == "国密 hello"
    response = await treq.get(b.client_url + "files/" + uploaded["fileID"],
                              headers={"Authorization": "Bearer " + bob.token})
    assert response.code == 200 and await treq.content(response) == b"\x00\x01" * 40000
    # A group mastered on A with Bob in it: invitation, membership notices, a message each way.
    from test_groups import make_group

    gid = await make_group(alice, "国密群", [bob])
    for client, text in ((alice, "from A"), (bob, "from B")):
        await client.ok("POST", "groups/%s/messages" % gid,
                        {"messageType": "text", "content": {"message": text}})
    await bob.wait_event("group_message", match=lambda m: m["messageInfo"]["content"].get(
        "message") == "from A")
    await alice.wait_event("group_message", match=lambda m: m["messageInfo"]["content"].get(
        "message") == "from B")


def _fresh_connections(node) -> None:
    """Close a node's kept outbound connections: the next call makes a new one."""
    node.role.client.pool.closeCachedConnections()
    node.role.client.pipes.close()


@pytest_twisted.ensureDeferred
async def test_messages_and_files_travel_over_tls13_with_sm4(pair):
    a, b = pair
    before = metric("imfed_tls_handshakes_total", server="node-b", protocol="TLSv1.3",
                    suite="TLS_SM4_GCM_SM3", role="server")
    with log_lines() as lines:
        await _message_and_file(a, b, "100", "200")
    calls = every_path(between_nodes(lines))
    assert all(line.endswith(SM4_13) for line in calls), calls
    assert metric("imfed_tls_handshakes_total", server="node-b", protocol="TLSv1.3",
                  suite="TLS_SM4_GCM_SM3", role="server") > before
    # The node that dialled saw the same.
    host, port = _address(b)
    agreed = a.role.client.policy.negotiated_with(host, port)
    assert (agreed.protocol, agreed.suite, agreed.gm) == ("TLSv1.3", "TLS_SM4_GCM_SM3", True)
    health = await b.role.health()
    assert health[1]["transport"] == {"policy": "gm-only"}


@pytest_twisted.ensureDeferred
async def test_messages_and_files_travel_over_tlcp_between_two_nodes(pair):
    """A node that remembers a peer as TLCP-only dials it with TLCP first: the listener takes
    TLCP on its one port, with both nodes' signing and encryption certificates (ECDHE)."""
    a, b = pair
    assert a.role.identity.tlcp and b.role.identity.tlcp  # issued at join
    for one, other in ((a, b), (b, a)):
        _fresh_connections(one)
        one.role.client.policy.tlcp_only[_address(other)] = time.time()
    with log_lines() as lines:
        await _message_and_file(a, b, "101", "201")
    calls = every_path(between_nodes(lines))
    assert all(line.endswith("TLCPv1.1/ECDHE_SM4_GCM_SM3") for line in calls), calls
    agreed = a.role.client.policy.negotiated_with(*_address(b))
    assert (agreed.protocol, agreed.suite) == ("TLCPv1.1", "ECDHE_SM4_GCM_SM3")


@pytest_twisted.ensureDeferred
async def test_tlcp_ecc_suite_and_sm4_only_tls13_client(management):
    """Clients that are not imfed: TLCP offering the ECC suites alone (no encryption
    certificate of its own), and TLS 1.3 offering TLS_SM4_GCM_SM3 alone."""
    url = management.url + GETSERVERCERT
    body = b'{"serverId": "manager"}'
    ca_file = management.data_dir + "/management/ca/ca.pem"
    with log_lines() as lines:
        for suites, expected in (("tlcp", "TLCPv1.1/ECC_SM4_GCM_SM3"), ("sm4", SM4_13)):
            status, _, content = await http(PlainClientPolicy(ca_file, suites=suites), "POST",
                                            url, body)
            assert status == 200 and "encCert" in json_of(content)
            line = [x for x in federation_lines(lines) if GETSERVERCERT in x][-1]
            assert line.endswith(expected), line


@pytest_twisted.ensureDeferred
async def test_gm_only_refuses_aes_and_gm_preferred_takes_it_with_a_warning(tmp_path):
    """A peer whose TLS offers only AES (OpenSSL 4 through pyOpenSSL): refused by a gm-only
    server at the handshake, logged, nothing else affected; taken by a gm-preferred one, which
    then warns in /health.  An SM4 client still gets SM4 from the gm-preferred server."""
    strict = start_management(str(tmp_path / "strict"))
    loose = start_management(str(tmp_path / "loose"), top={"tls": {"policy": "gm-preferred"}})
    try:
        body = b'{"serverId": "manager"}'
        ca = strict.data_dir + "/management/ca/ca.pem"
        refused = metric("imfed_tls_handshake_failures_total", server="manager",
                         role="server", kind="cipher")
        with log_lines() as lines:
            with pytest.raises(Exception):
                await http(PlainClientPolicy(ca, suites="aes"), "POST",
                           strict.url + GETSERVERCERT, body)
            await wait_until(lambda: any("TLS handshake from 127.0.0.1 refused" in x
                                         for x in lines), what="the refusal logged")
        assert metric("imfed_tls_handshake_failures_total", server="manager", role="server",
                      kind="cipher") == refused + 1
        status, _, _ = await http(PlainClientPolicy(ca), "POST", strict.url + GETSERVERCERT,
                                  body)
        assert status == 200  # the listener goes on

        ca = loose.data_dir + "/management/ca/ca.pem"
        with log_lines() as lines:
            status, _, _ = await http(PlainClientPolicy(ca, suites="aes"), "POST",
                                      loose.url + GETSERVERCERT, body)
            assert status == 200
            status, _, _ = await http(PlainClientPolicy(ca), "POST", loose.url + GETSERVERCERT,
                                      body)
            assert status == 200
        calls = [x for x in federation_lines(lines) if GETSERVERCERT in x]
        assert "/TLS_AES_" in calls[0] and calls[1].endswith(SM4_13), calls
        ok, checks = await loose.role.health()
        assert ok and checks["transport"]["policy"] == "gm-preferred"
        assert "without an SM4 suite" in checks["transport"]["warning"]
        assert "TLS_AES" in list(checks["transport"]["withoutSm4"].values())[0]
    finally:
        await strict.service.stopService()
        await loose.service.stopService()


# -- a GM TLS stack that is not imfed: Tongsuo's TLCP, set up here -------------------------

def _tlcp_pair(ca: pki.CertificateAuthority, folder, server_id: str, enc_for: str | None = None):
    """A vendor server's two pairs, issued by the federation CA (the encryption one for
    ``enc_for``'s name where a test wants it wrong)."""
    issued = issue_from(ca, str(folder), server_id)
    enc_key = sm2.generate_private_key()
    enc = ca.certify_key(enc_key.public_key().spki_der(), enc_for or server_id, "127.0.0.1",
                         kind=pki.ENC)
    return issued, enc_key, enc


def _tlcp_context(ca, issued, enc_key, enc, suites: str) -> _tongsuo.Context:
    ctx = _tongsuo.Context(ntls_only=True)
    ctx.set_cipher_list(suites)
    ctx.use_tlcp_certificates(issued.cert.der, issued.key.to_pem(), enc.der, enc_key.to_pem())
    ctx.trust(ca.cert.der)
    return ctx


def _chain_only(conn, der, errno, depth, ok):
    return bool(ok)


@implementer(IOpenSSLClientConnectionCreator, IOpenSSLServerConnectionCreator)
class _Creator:
    """What Twisted asks for a connection: one of Tongsuo's, on the test's own context."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.connections: list = []

    def _make(self, tlsProtocol):
        conn = _tongsuo.Connection(self.ctx, _chain_only)
        self.connections.append(conn)
        return conn

    clientConnectionForTLS = serverConnectionForTLS = _make


@implementer(IPolicyForHTTPS)
class _Using:
    """An HTTPS policy that dials with one creator."""

    def __init__(self, creator) -> None:
        self.creator = creator

    def creatorForNetloc(self, hostname, port):
        return self.creator


class _Vendor(Resource):
    """The vendor's HTTP side: checks the signed request with imfed's wire rules (the
    profile's, docs/protocol.md §3) and answers signed."""

    isLeaf = True

    def __init__(self, issued, caller_cert: pki.Certificate) -> None:
        super().__init__()
        self.issued, self.caller_cert, self.seen = issued, caller_cert, []

    def render_POST(self, request):
        body = request.content.read()
        signed = signing.parse_authorization(request.getHeader("authorization"))
        text = signing.string_to_sign("POST", request.uri.decode(), signed.origin,
                                      signed.destination, signed.ts, signed.nonce, body)
        ok = self.caller_cert.public_key.verify(signed.sig, text)
        self.seen.append((signed.origin, ok, json.loads(body)))
        answer = b'{"code":"0","desc":"ok"}'
        ts = int(reactor.seconds() * 1000)
        request.setHeader(b"x-imfed-signature", signing.sign_response(
            self.issued.key, 200, signed.nonce, self.issued.server_id, ts, answer).encode())
        request.setHeader(b"content-type", b"application/json")
        return answer


@pytest_twisted.ensureDeferred
async def test_a_tlcp_only_vendor_and_imfed_exchange_signed_calls_both_ways(pair, management,
                                                                            tmp_path):
    a, _ = pair
    authority = management.ca
    issued, enc_key, enc = _tlcp_pair(authority, tmp_path / "v", "node-v")

    # 1. The vendor dials imfed: TLCP, ECDHE with its two certificates, a signed call.
    await register(management.role, issued, address="https://127.0.0.1:1")
    await a.role.refresher.refresh()
    await wait_until(lambda: a.role.directory.active("node-v"), what="node-v known to A")
    ctx = _tlcp_context(authority, issued, enc_key, enc, "ECDHE-SM2-SM4-GCM-SM3")
    add_user(a, "300", "Carol")
    target = "/sns/verify/users?userID=300%40node-a"
    header, _ = signing.sign_request(issued.key, "GET", target, "node-v", "node-a", b"",
                                     int(reactor.seconds() * 1000))
    host, port = _address(a)
    creator = _Creator(ctx)
    with log_lines() as lines:
        status, headers, content = await http(
            _Using(creator), "GET", "https://%s:%d%s" % (host, port, target), None,
            {"Authorization": header})
    assert status == 200, content
    signing.verify_response(headers.getRawHeaders(b"x-imfed-signature")[0].decode(), status,
                            signing.parse_authorization(header).nonce, "node-a",
                            a.role.identity.certificate.public_key, content)
    assert creator.connections[0].is_tlcp()
    line = [x for x in federation_lines(lines) if "/sns/verify/users" in x][-1]
    assert " node-v " in line and line.endswith("TLCPv1.1/ECDHE_SM4_GCM_SM3"), line

    # 2. imfed dials the vendor, whose server speaks TLCP alone: TLS 1.3 is refused, imfed
    # falls back to TLCP on its own and the signed call and its signed answer go through.
    vendor = _Vendor(issued, a.role.identity.certificate)
    server_creator = _Creator(_tlcp_context(authority, issued, enc_key, enc,
                                            "ECDHE-SM2-SM4-GCM-SM3:ECC-SM2-SM4-GCM-SM3"))
    listening = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        TLSMemoryBIOFactory(server_creator, False, Site(vendor)))
    try:
        address = "https://127.0.0.1:%d" % listening.getHost().port
        client = a.role.client
        client.certificate_of = _with(client.certificate_of, "node-v", issued.cert)
        answer = await client.call("node-v", address, "POST", "/sns/chat",
                                   {"hello": "tlcp"})
        assert answer.ok and answer.body == {"code": "0", "desc": "ok"}
        assert vendor.seen == [("node-a", True, {"hello": "tlcp"})]
        agreed = client.policy.negotiated_with("127.0.0.1", listening.getHost().port)
        assert (agreed.protocol, agreed.suite) == ("TLCPv1.1", "ECDHE_SM4_GCM_SM3")
        # Remembered: the next connection goes to TLCP first.
        assert ("127.0.0.1", listening.getHost().port) in client.policy.tlcp_only
    finally:
        await listening.stopListening()


def _with(lookup, server_id, cert):
    async def certificate_of(sid):
        return cert if sid == server_id else await lookup(sid)
    return certificate_of


@pytest_twisted.ensureDeferred
async def test_tlcp_handshakes_that_must_be_refused(pair, management, tmp_path):
    """A TLCP client whose encryption certificate is wrong (another subject, the signing key
    certified twice, issued by another CA), a truncated ClientHello: each refused, logged, and
    the listener serves the next good client.  (A signing certificate in the encryption
    certificate's place does not get this far: Tongsuo will not load it.)"""
    a, _ = pair
    authority = management.ca
    host, port = _address(a)
    url = "https://%s:%d/sns/verify/users?userID=x%%40node-a" % (host, port)
    other_ca = pki.CertificateAuthority.create(str(tmp_path / "other-ca"), "other")
    cases = {
        "another subject": _tlcp_pair(authority, tmp_path / "c1", "node-v", enc_for="node-w"),
    }
    same = issue_from(authority, str(tmp_path / "c2"), "node-v")
    cases["the signing key certified again as the encryption key"] = (
        same, same.key, authority.certify_key(same.key.public_key().spki_der(), "node-v",
                                              "127.0.0.1", kind=pki.ENC))
    issued, enc_key, _ = _tlcp_pair(authority, tmp_path / "c3", "node-v")
    foreign = other_ca.certify_key(enc_key.public_key().spki_der(), "node-v", "127.0.0.1",
                                   kind=pki.ENC)
    cases["an encryption certificate of another CA"] = (issued, enc_key, foreign)
    reasons = {"another subject": "names 'node-w', expected 'node-v'",
               "the signing key certified again as the encryption key": "share one key",
               "an encryption certificate of another CA": "does not chain"}
    for name, (who, key, enc) in cases.items():
        ctx = _tlcp_context(authority, who, key, enc, "ECDHE-SM2-SM4-GCM-SM3")
        if name == "an encryption certificate of another CA":
            ctx.trust(other_ca.cert.der)
        creator = _Creator(ctx)
        with log_lines() as lines:
            with pytest.raises(Exception):
                await http(_Using(creator), "GET", url)
            await wait_until(lambda: any("TLS handshake from 127.0.0.1 refused" in x
                                         for x in lines), what="%s: refusal logged" % name)
        refusal = [x for x in lines if "TLS handshake from 127.0.0.1 refused" in x][0]
        assert reasons[name] in refusal, (name, refusal)

    # A truncated handshake: half a TLCP ClientHello, then the connection closes.
    class _Half(Protocol):
        def connectionMade(self):
            self.transport.write(b"\x16\x01\x01\x00\x80\x01\x00\x00\x7c\x01\x01")
            self.transport.loseConnection()

        def connectionLost(self, reason=None):
            self.done.callback(None)

    half = _Half()
    half.done = Deferred()
    await connectProtocol(TCP4ClientEndpoint(reactor, host, port), half)
    await half.done

    # Nothing else affected: a good client of the same kind is served.
    good = _Creator(_tlcp_context(authority, *_tlcp_pair(authority, tmp_path / "ok", "node-v"),
                                  "ECC-SM2-SM4-GCM-SM3"))
    status, _, _ = await http(_Using(good), "GET", url)
    assert status == 401  # unsigned: refused by the route, after a good handshake
    assert good.connections[0].is_tlcp()


@pytest_twisted.ensureDeferred
async def test_gm_only_client_never_offers_aes(tmp_path):
    """The downgrade seen from our side: imfed as a client (gm-only) against a server that
    offers only AES suites fails rather than encrypt with AES."""
    from imfed.peer import PeerClient, PeerError

    authority = pki.CertificateAuthority.create(str(tmp_path / "ca"), "test CA")
    me = issue_from(authority, str(tmp_path / "me"), "node-a")
    them = issue_from(authority, str(tmp_path / "them"), "node-x")
    from OpenSSL import SSL

    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.use_certificate_file(them.cert_file)
    ctx.use_privatekey_file(them.key_file)

    @implementer(IOpenSSLServerConnectionCreator)
    class _AesServer:
        def serverConnectionForTLS(self, tlsProtocol):
            return SSL.Connection(ctx, None)

    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        TLSMemoryBIOFactory(_AesServer(), False, Factory.forProtocol(Protocol)))

    async def certificate_of(server_id):
        return them.cert

    client = PeerClient(server_id="node-a", key=me.key, identity=me.identity(),
                        reactor=reactor, certificate_of=certificate_of, timeout=5.0)
    try:
        with pytest.raises(PeerError):
            await client.call("node-x", "https://127.0.0.1:%d" % port.getHost().port, "POST",
                              "/sns/chat", {})
        assert client.policy.negotiated_with("127.0.0.1", port.getHost().port) is None
    finally:
        await client.close()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_an_installation_from_before_tlcp_obtains_encryption_certificates(tmp_path):
    """A management store at the previous schema (003) and a node that joined without an
    encryption certificate: the store is upgraded at start (servers keep their rows, with no
    encCert), the node asks for one through modify on its own, the operator approves, and the
    node speaks TLCP from then on, without a restart."""
    import os
    import sqlite3

    from imfed.management import review, store
    from imfed.storage import schema_files

    from conftest import RunningNode, node_config
    from imfed.devdefault import join_and_approve

    data_dir = str(tmp_path / "m")
    os.makedirs(data_dir)
    db_file = os.path.join(data_dir, "old.sqlite3")
    conn = sqlite3.connect(db_file)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for version, sql in schema_files("management")[:3]:
        conn.executescript(sql)
        conn.execute("INSERT INTO schema_version VALUES (?)", (version,))
    conn.execute("INSERT INTO servers (server_id, server_name, server_address, server_type, "
                 "area, country, owner_id, contact_name, contact_email, contact_mobile, status, "
                 "cert_pem, cert_fingerprint, changed_at) VALUES ('node-old', 'Old', "
                 "'https://127.0.0.1:9', '', '', 'CN', '', 'Ops', 'o@example.com', "
                 "'13500000000', 0, 'x', 'y', 1)")
    conn.commit()
    conn.close()
    management = start_management(data_dir, database=db_file)
    node = None
    try:
        old = await management.role.store.get("node-old")
        assert old.server_name == "Old" and old.enc_cert_pem is None
        assert os.path.exists(db_file + ".before-v004")

        config = node_config(str(tmp_path / "a"), "node-a", management,
                             renew_check_seconds=0.2, database=str(tmp_path / "a" / "n.db"))
        await join_and_approve(reactor, management.role, config.node, "test")
        # As a node from before would be: no encryption pair, none on record.
        for path in (config.node.enc_key_file, config.node.enc_cert_file):
            os.unlink(path)
        record = await management.role.store.get("node-a")
        await management.role.store.put(attrs.evolve(record, enc_cert_pem=None))
        node = RunningNode(config).start()
        assert not node.role.identity.tlcp

        registry = management.role.store
        app = await wait_until(lambda: registry.run(store.pending_for, "node-a"),
                               what="the node's modify")
        assert app.kind == "modify" and app.enc_csr_pem and not app.csr_pem
        signing_before = node.role.identity.certificate.fingerprint
        await registry.run(review.approve, app.application_id, management.role.ca, "test", 30,
                           registry.now_ms())
        await wait_until(lambda: node.role.identity.tlcp, what="the encryption certificate")
        assert node.role.identity.certificate.fingerprint == signing_before  # kept
        enc = node.role.identity.enc_certificate
        assert enc.kind == pki.ENC and enc.subject_cn == "node-a"
        status, _, content = await http(
            PlainClientPolicy(config.node.ca_file), "POST",
            management.url + GETSERVERCERT, b'{"serverId": "node-a"}')
        assert json_of(content)["encCert"] == enc.pem.decode()

        # The node now takes TLCP on its port.
        host, port = _address(node)
        vendor = _Creator(_tlcp_context(
            management.ca, *_tlcp_pair(management.ca, tmp_path / "v", "node-v"),
            "ECC-SM2-SM4-GCM-SM3"))
        with log_lines() as lines:
            status, _, _ = await http(_Using(vendor), "GET",
                                      "https://%s:%d/sns/verify/users?userID=x%%40node-a"
                                      % (host, port))
        assert status == 401  # unsigned, after a TLCP handshake
        assert [x for x in federation_lines(lines) if x.endswith("TLCPv1.1/ECC_SM4_GCM_SM3")]
    finally:
        if node is not None:
            await node.stop()
        await management.service.stopService()


def test_connections_done_with_are_freed(tmp_path):
    """A Connection Twisted is done with goes, and its SSL with it: the verify callback's
    registry must not keep every connection ever made (it once did: a leak per handshake)."""
    import gc

    authority = pki.CertificateAuthority.create(str(tmp_path / "ca"), "test CA")
    ctx = _tongsuo.Context()
    ctx.set_ciphersuites("TLS_SM4_GCM_SM3")
    ctx.trust(authority.cert.der)
    freed = []
    before = len(_tongsuo._connections)
    for _ in range(300):
        conn = _tongsuo.Connection(ctx, _chain_only)
        conn.set_connect_state()
        with contextlib.suppress(Exception):
            conn.do_handshake()  # a ClientHello into its memory BIO
        weak = weakref.ref(conn, lambda _: freed.append(1))
        del conn, weak
    gc.collect()
    assert len(_tongsuo._connections) <= before and len(freed) == 300
