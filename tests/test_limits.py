"""Limits that hold before a request is read (docs/security.md): body size by Content-Length
and while a chunked body arrives, answers from peers, connections per source, deadlines."""

from __future__ import annotations

import json
import socket

import pytest
import pytest_twisted
from klein import Klein
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from zope.interface import implementer
from twisted.internet.interfaces import IPullProducer

from conftest import PlainClientPolicy, join_node, read_until, start_management, wait_until
from imfed.config import Limits, Listen
from imfed.crypto.tls import ServerTLS
from imfed.listening import tls_listener
from imfed.peer import PeerError
from imfed.testing import free_port
from imfed.wire.errors import Style

GIB = 1 << 30


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@implementer(IPullProducer)
class _Flood(Protocol):
    """Sends a request head, then up to ``total`` body bytes as fast as the connection takes
    them, until the server answers or closes; keeps what the server said."""

    CHUNK = b"x" * (1 << 16)

    def __init__(self, head: bytes, total: int, chunked: bool = False) -> None:
        self.head, self.total, self.chunked = head, total, chunked
        self.sent = 0
        self.answer = b""
        self.closed = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.head)
        self.transport.registerProducer(self, False)

    def resumeProducing(self) -> None:
        if self.answer or self.sent >= self.total:
            self.transport.unregisterProducer()
            return
        chunk = self.CHUNK
        if self.chunked:
            chunk = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        self.sent += len(self.CHUNK)
        self.transport.write(chunk)

    def stopProducing(self) -> None:
        pass

    def dataReceived(self, data: bytes) -> None:
        self.answer += data

    def connectionLost(self, reason=None) -> None:
        self.closed.callback(None)


async def flood(port: int, policy, path: str, chunked: bool) -> _Flood:
    endpoint = wrapClientTLS(policy.creatorForNetloc(b"127.0.0.1", port),
                             TCP4ClientEndpoint(reactor, "127.0.0.1", port))
    length = b"transfer-encoding: chunked" if chunked else b"content-length: %d" % GIB
    head = (b"POST %s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n%s"
            b"\r\n\r\n" % (path.encode(), length))
    protocol = _Flood(head, GIB, chunked)
    await connectProtocol(endpoint, protocol)
    d = protocol.closed
    d.addTimeout(60, reactor)
    await d
    return protocol


def assert_refused_413(protocol: _Flood, style_code) -> None:
    head, _, body = protocol.answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), protocol.answer[:200]
    answer = json.loads(body)
    assert answer["code"] == style_code and answer["errcode"] == "too_large"
    assert protocol.sent < 64 << 20, protocol.sent  # it stopped reading long before 1 GiB


@pytest_twisted.ensureDeferred
async def test_a_gib_body_to_management_without_certificate_is_refused_unread(tmp_path):
    running = start_management(str(tmp_path / "m"))
    try:
        before = rss_bytes()
        for chunked in (False, True):
            protocol = await flood(running.port, PlainClientPolicy(None),
                                   "/sns/restApi/managerserver/apply", chunked)
            assert_refused_413(protocol, "1")
        assert rss_bytes() - before < 20 << 20
        # Nothing reached the store: no application was made.
        assert not any(rows for table, rows in running.db_snapshot()
                       if table == "applications")
    finally:
        await running.service.stopService()


@pytest_twisted.ensureDeferred
async def test_a_gib_body_to_a_node_with_a_valid_certificate_is_refused_unread(tmp_path):
    running = start_management(str(tmp_path / "m"))
    a = await join_node(running, str(tmp_path / "a"), "node-a")
    b = await join_node(running, str(tmp_path / "b"), "node-b")
    try:
        n = b.config.node
        policy = PlainClientPolicy(n.ca_file, n.cert_file, n.key_file)
        before = rss_bytes()
        for chunked in (False, True):
            protocol = await flood(a.config.node.listen.port, policy, "/sns/chat", chunked)
            assert_refused_413(protocol, 1)
        assert rss_bytes() - before < 20 << 20
    finally:
        await b.stop()
        await a.stop()
        await running.service.stopService()


class _Huge:
    """A stand-in peer whose every answer is ``size`` bytes, with or without announcing it."""

    app = Klein()

    def __init__(self, size: int, announce: bool) -> None:
        self.size, self.announce, self.sent = size, announce, 0

    @app.route("/sns/find/users", methods=["GET"])
    def answer(self, request):
        if self.announce:
            request.setHeader(b"content-length", b"%d" % self.size)
        chunk = b" " * (1 << 16)

        @implementer(IPullProducer)
        class Producer:
            def resumeProducing(producer):
                if self.sent >= self.size:
                    request.unregisterProducer()
                    request.finish()
                    return
                self.sent += len(chunk)
                request.write(chunk)

            def stopProducing(producer):
                pass

        request.registerProducer(Producer(), False)
        return request.notifyFinish().addErrback(lambda _: None).addCallback(lambda _: b"")


@pytest.mark.parametrize("announce", [True, False])
@pytest_twisted.ensureDeferred
async def test_a_peers_huge_answer_is_cut_off_at_the_cap(tmp_path, announce):
    running = start_management(str(tmp_path / "m"))
    a = await join_node(running, str(tmp_path / "a"), "node-a")
    b = await join_node(running, str(tmp_path / "b"), "node-b")
    await b.stop()  # node-b's identity is played by the stand-in below
    port = free_port()
    huge = _Huge(300 << 20, announce)
    issued_tls = ServerTLS(b.role.identity)
    listener = tls_listener(reactor, Listen("127.0.0.1", port), issued_tls,
                            huge.app.resource(), Limits(), Style.INTERCONNECT,
                            lambda method, path: 1 << 20)
    listener.startService()
    try:
        await a.role.refresher.refresh()
        await wait_until(lambda: a.role.directory.active("node-b"), what="node-b known")
        before = rss_bytes()
        with pytest.raises(PeerError, match="more than"):
            await a.role.client.call("node-b", "https://127.0.0.1:%d" % port, "GET",
                                     "/sns/find/users", query={"queryStr": "x"})
        assert rss_bytes() - before < 20 << 20
        assert huge.sent < 32 << 20  # the transfer was stopped, not read to its end
    finally:
        await listener.stopService()
        await a.stop()
        await running.service.stopService()


def _connect_from(source: str, port: int) -> socket.socket:
    s = socket.socket()
    s.bind((source, 0))
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    return s


def _closed(s: socket.socket) -> bool:
    try:
        return s.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _read_all(s: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            data = s.recv(1 << 16)
        except BlockingIOError:
            return out
        except OSError:
            return out
        if not data:
            return out
        out += data


@pytest_twisted.ensureDeferred
async def test_connections_per_source_are_capped_and_slow_requests_cut(tmp_path):
    running = start_management(str(tmp_path / "m"))
    a = await join_node(running, str(tmp_path / "a"), "node-a", max_connections_per_source=20,
                        header_timeout_seconds=0.5, idle_timeout_seconds=3.0)
    port = a.config.node.client_listen.port
    idle = []
    try:
        # 30 idle connections from one address: 20 kept, the rest closed at once.
        idle = [_connect_from("127.0.0.2", port) for _ in range(30)]
        await wait_until(lambda: sum(_closed(s) for s in idle) >= 10, what="over-cap closed")
        await deferLater(reactor, 0.2, lambda: None)
        assert sum(_closed(s) for s in idle) == 10
        # Another address is served meanwhile.
        from conftest import ApiClient
        status, answer = await ApiClient(a, "x").call("GET", "me")
        assert status == 401 and answer["errcode"] == "no_session"
        # Idle ones are closed after idle_timeout_seconds.
        await wait_until(lambda: all(_closed(s) for s in idle), timeout=10, what="idle closed")

        # Headers dripped a byte at a time: cut at header_timeout_seconds with 408.
        slow = _connect_from("127.0.0.3", port)
        await deferLater(reactor, 0.05, lambda: None)
        received = b""
        for byte in b"GET /api/v1/me HTTP/1.1\r\nhost: x\r\n":
            try:
                slow.send(bytes([byte]))
            except OSError:
                break
            await deferLater(reactor, 0.1, lambda: None)
            received += _read_all(slow)
            if received:
                break
        assert received.startswith(b"HTTP/1.1 408"), received
        assert json.loads(received.partition(b"\r\n\r\n")[2])["errcode"] == "too_slow"
        slow.close()
    finally:
        for s in idle:
            s.close()
        await a.stop()
        await running.service.stopService()


@pytest_twisted.ensureDeferred
async def test_silent_connections_from_a_few_addresses_leave_room_for_a_peer(tmp_path):
    """Issue #29, 5: nine addresses opening silent connections (no TLS ever) fill neither the
    federation port nor its total; a peer's handshake and request are served meanwhile, and
    the silent ones are closed header_timeout_seconds after they were accepted (not after the
    idle time)."""
    from conftest import http, issue_from
    from imfed.listening import raise_file_limit

    raise_file_limit()  # as the daemon does: this process holds both ends of each connection
    running = start_management(str(tmp_path / "m"))
    a = await join_node(running, str(tmp_path / "a"), "node-a", max_connections=200,
                        max_connections_per_source=100, max_pending_connections=150,
                        max_pending_connections_per_source=10, header_timeout_seconds=2.0,
                        idle_timeout_seconds=120.0)
    listen = a.config.node.listen
    silent = []
    try:
        for i in range(9):
            silent += [_connect_from("127.0.0.%d" % (i + 2), listen.port) for _ in range(30)]
        # Each address keeps 10; the rest are closed at accept.
        await wait_until(lambda: sum(_closed(s) for s in silent) >= 9 * 20,
                         what="over the per-address pending cap closed")
        started = reactor.seconds()
        peer = issue_from(running.ca, str(tmp_path / "q"), "node-q")
        status, _, _ = await http(PlainClientPolicy(peer.ca_file, peer.cert_file,
                                                    peer.key_file), "GET",
                                  "https://127.0.0.1:%d/sns/verify/users?userID=x%%40node-a"
                                  % listen.port)
        assert status == 401  # served: unsigned, refused by the route after a good handshake
        await wait_until(lambda: all(_closed(s) for s in silent), timeout=5,
                         what="silent connections closed")
        assert reactor.seconds() - started < 5
    finally:
        for s in silent:
            s.close()
        await a.stop()
        await running.service.stopService()


@pytest_twisted.ensureDeferred
async def test_an_upload_without_a_session_is_refused_before_its_body(tmp_path):
    """Issue #29, 6: POST /api/v1/files with a 95 MB Content-Length and no session (none, or
    a made-up token) is answered 401 after its headers alone: nothing of the body is read or
    spooled. With a session the same upload goes through."""
    import os

    from conftest import signed_up

    running = start_management(str(tmp_path / "m"))
    a = await join_node(running, str(tmp_path / "a"), "node-a")
    port = a.config.node.client_listen.port
    try:
        alice = await signed_up(a, "100", "Alice")
        spooled_before = _spooled()
        for auth in (b"", b"authorization: Bearer 0123456789abcdef\r\n"):
            s = _connect_from("127.0.0.2", port)
            await deferLater(reactor, 0.05, lambda: None)
            s.send(b"POST /api/v1/files?name=x HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n"
                   b"%s\r\n" % (95 << 20, auth))
            s.send(b"y" * 4096)  # a first piece, as a client streams it
            received = await read_until(s, bool)
            s.close()
            assert received.startswith(b"HTTP/1.1 401"), received
            assert json.loads(received.partition(b"\r\n\r\n")[2])["errcode"] == "no_session"
        assert _spooled() == spooled_before
        data = os.urandom(300000)
        import treq

        response = await treq.post(a.client_url + "files", data=data, params={"name": "ok"},
                                   headers={"Authorization": "Bearer " + alice.token})
        assert response.code == 200
        assert json.loads(await treq.content(response))["size"] == len(data)
    finally:
        await a.stop()
        await running.service.stopService()


def _spooled() -> int:
    """Temporary files this process holds open (twisted.web spools large bodies into them)."""
    import os

    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            continue
        count += target.startswith(("/tmp/", "/var/tmp/")) and "(deleted)" in target
    return count


@pytest_twisted.ensureDeferred
async def test_event_streams_that_never_read_hold_a_bounded_buffer(tmp_path):
    """Issue #29, 7: streams whose clients read nothing do not grow the node: once a
    connection's send buffer is full nothing more is written to it (the events wait in the
    store), and a stream stalled that long is closed."""
    from conftest import signed_up

    running = start_management(str(tmp_path / "m"))
    # (Alice and Bob are not friends: the limit on strangers' messages is lifted here, and
    # Alice's 400 sends are past a person's minute.)
    a = await join_node(running, str(tmp_path / "a"), "node-a",
                        stranger_messages_per_sender=10 ** 6, sends_per_minute=10 ** 6)
    port = a.config.node.client_listen.port
    streams = []
    try:
        alice = await signed_up(a, "100", "Alice")
        bob = await signed_up(a, "200", "Bob")
        a.role.client_api.stream_stall_seconds = 5.0
        for i in range(5):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.bind(("127.0.0.%d" % (i + 2), 0))
            s.connect(("127.0.0.1", port))
            s.setblocking(False)
            s.send(b"GET /api/v1/events/stream HTTP/1.1\r\nhost: x\r\nauthorization: Bearer "
                   b"%s\r\n\r\n" % bob.token.encode())
            streams.append(s)
        await deferLater(reactor, 0.3, lambda: None)
        for wrapper in _client_listener(a).tracked.protocols:
            # A slow network: the kernel takes little, so what waits is the node's.
            wrapper.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        text = "x" * 4000
        most = 0
        for i in range(400):  # 1.6 MB of events for Bob, offered to each stream
            await alice.ok("POST", "messages", {"recvID": "200@node-a", "messageType": "text",
                                                "content": {"message": text}})
            if i % 50 == 49:
                queued = _queued_by_source(a)
                queued.pop("127.0.0.1", None)
                most = max([most, *queued.values()])
        assert 0 < most < 1 << 20, most
        await wait_until(lambda: len([h for h in _queued_by_source(a) if h != "127.0.0.1"])
                         == 0, timeout=30, what="stalled streams closed")
    finally:
        for s in streams:
            s.close()
        await a.stop()
        await running.service.stopService()


def _client_listener(node):
    return [s for s in node.service if getattr(s, "listen", None) ==
            node.config.node.client_listen][0]


def _queued_by_source(node) -> dict[str, int]:
    """Bytes written and not yet sent, per client address, on the node's client listener."""
    out = {}
    for wrapper in _client_listener(node).tracked.protocols:
        t = wrapper.transport
        queued = len(t.dataBuffer) - t.offset + t._tempDataLen
        host = t.getPeer().host
        out[host] = out.get(host, 0) + queued
    return out


@pytest_twisted.ensureDeferred
async def test_a_client_hanging_up_on_a_long_poll_is_quiet(tmp_path):
    """Issue #29, 13: a client that goes away during ``GET /events?wait=`` is not an error:
    no traceback, no critical line, not counted as a 5xx (it is counted as 499, closed by
    the client)."""
    from twisted.logger import formatEvent, globalLogPublisher

    from conftest import signed_up
    from imfed.metrics import REGISTRY

    running = start_management(str(tmp_path / "m"))
    a = await join_node(running, str(tmp_path / "a"), "node-a")
    port = a.config.node.client_listen.port
    lines = []

    def observe(event):
        lines.append((event.get("log_level"), formatEvent(event) or "",
                      event.get("log_failure")))

    def count(status):
        return REGISTRY.get_sample_value("imfed_requests_total", {
            "server": "node-a", "interface": "client", "endpoint": "events",
            "status": status, "peer": "-"}) or 0

    try:
        bob = await signed_up(a, "200", "Bob")
        before = count("499")
        globalLogPublisher.addObserver(observe)
        for _ in range(3):
            s = _connect_from("127.0.0.2", port)
            await deferLater(reactor, 0.05, lambda: None)
            s.send(b"GET /api/v1/events?since=999999&wait=30 HTTP/1.1\r\nhost: x\r\n"
                   b"authorization: Bearer %s\r\n\r\n" % bob.token.encode())
            await deferLater(reactor, 0.3, lambda: None)
            s.close()
        await wait_until(lambda: count("499") >= before + 3, what="three hang-ups counted")
        globalLogPublisher.removeObserver(observe)
        assert count("500") == 0
        assert not [line for line in lines if line[2] is not None or
                    "unhandled" in line[1] or "Traceback" in line[1]], lines
    finally:
        globalLogPublisher.removeObserver(observe)
        await a.stop()
        await running.service.stopService()


@pytest_twisted.ensureDeferred
async def test_clients_that_ask_and_never_read_are_closed(tmp_path, monkeypatch):
    """Issue #29, 7: twenty connections each asking for a large history and reading nothing
    do not make the node hold their answers: once a scan finds one that took nothing while
    64 KiB or more wait for it, it is closed.  A client that reads slowly is not."""
    from conftest import signed_up
    from imfed import listening

    monkeypatch.setattr(listening, "REAP_SECONDS", 0.5)
    running = start_management(str(tmp_path / "m"))
    a = await join_node(running, str(tmp_path / "a"), "node-a",
                        stranger_messages_per_sender=10 ** 6)
    port = a.config.node.client_listen.port
    readers = []
    try:
        alice = await signed_up(a, "100", "Alice")
        bob = await signed_up(a, "200", "Bob")
        for i in range(200):
            await alice.ok("POST", "messages", {"recvID": "200@node-a", "messageType": "text",
                                                "content": {"message": "%d " % i + "y" * 4000}})
        request = (b"GET /api/v1/conversations/100@node-a/messages?limit=200 HTTP/1.1\r\n"
                   b"host: x\r\nauthorization: Bearer %s\r\n\r\n" % bob.token.encode())
        for i in range(20):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.bind(("127.0.0.%d" % (2 + i % 5), 0))
            s.connect(("127.0.0.1", port))
            s.setblocking(False)
            readers.append(s)
        await deferLater(reactor, 0.3, lambda: None)
        for wrapper in _client_listener(a).tracked.protocols:
            # A slow network: the kernel takes little, so what waits is the node's.
            wrapper.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        for s in readers:
            s.send(request)
        await deferLater(reactor, 2.0, lambda: None)  # a few scans
        await wait_until(lambda: all(_drained_and_closed(s) for s in readers), timeout=15,
                         what="the connections that read nothing closed")
        # A slow reader: takes a little every few tenths of a second, and gets it all.
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", port))
        slow.setblocking(False)
        slow.send(request)
        got = await read_until(slow, lambda got: got.endswith(b"}"), tries=400)
        slow.close()
        assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"}"), len(got)
    finally:
        for s in readers:
            s.close()
        await a.stop()
        await running.service.stopService()


def _drained_and_closed(s: socket.socket) -> bool:
    """Whether the other end closed ``s``, once what it had sent is read and dropped."""
    while True:
        try:
            data = s.recv(1 << 16)
        except BlockingIOError:
            return False
        except OSError:
            return True
        if not data:
            return True


@pytest_twisted.ensureDeferred
async def test_a_kept_alive_connection_is_not_cut_after_a_request_with_a_body(tmp_path):
    """Issue #30, 8: after a request with a body, an idle kept-alive connection gets no 408,
    and the next request has header_timeout_seconds from its own first byte."""
    running = start_management(str(tmp_path / "m"))
    a = await join_node(running, str(tmp_path / "a"), "node-a", header_timeout_seconds=0.6,
                        idle_timeout_seconds=30.0)
    try:
        s = socket.create_connection(("127.0.0.1", a.config.node.client_listen.port))
        s.setblocking(False)
        body = b'{"login": "nobody", "password": "wrongwrong"}'
        s.send(b"POST /api/v1/login HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s"
               % (len(body), body))
        first = await read_until(s, lambda got: got.endswith(b"}"))
        assert first.startswith(b"HTTP/1.1 401"), first
        idle = await read_until(s, bool, tries=30)  # 1.5 s, over the header deadline
        assert idle == b"", idle
        for part in (b"GET /api/v1/me HTTP/1.1\r\n", b"host: x\r\n", b"\r\n"):
            s.send(part)  # headers over 0.4 s: within their 0.6 s from the first byte
            await deferLater(reactor, 0.2, lambda: None)
        second = await read_until(s, lambda got: got.endswith(b"}"))
        assert second.startswith(b"HTTP/1.1 401"), second  # no_session: answered, not 408
        s.close()
    finally:
        await a.stop()
        await running.service.stopService()


@pytest_twisted.ensureDeferred
async def test_client_sends_and_uploads_are_rate_limited_per_user(tmp_path):
    """Issue #30: one user may send ``sends_per_minute`` messages (one-to-one and group
    together) and ``uploads_per_minute`` files a minute through the client API; past it, 429
    ``rate_limited`` with Retry-After, counted in imfed_rate_limited_total, and nothing of the
    refused call is done.  Another user is not held back by it."""
    import treq

    from conftest import lone_node, node_rows, signed_up
    from imfed.metrics import REGISTRY

    def refused(kind):
        return REGISTRY.get_sample_value("imfed_rate_limited_total",
                                         {"server": "node-a", "kind": kind}) or 0.0

    async with lone_node(tmp_path, sends_per_minute=3, uploads_per_minute=2) as node:
        alice = await signed_up(node, "100", "Alice")
        bea = await signed_up(node, "101", "Bea")
        group = (await alice.ok("POST", "groups", {"groupName": "g"}))["groupInfo"]["groupID"]
        before = refused("send"), refused("upload")
        text = {"recvID": "101@node-a", "messageType": "text"}
        for i in range(2):
            await alice.ok("POST", "messages", dict(text, content={"message": "m%d" % i}))
        await alice.ok("POST", "groups/%s/messages" % group,
                       {"messageType": "text", "content": {"message": "g"}})
        for path, body in (("messages", dict(text, content={"message": "over"})),
                           ("groups/%s/messages" % group,
                            {"messageType": "text", "content": {"message": "over"}})):
            response = await treq.post(node.client_url + path, json.dumps(body).encode(),
                                       headers={"Authorization": "Bearer " + alice.token})
            answer = json.loads(await treq.content(response))
            assert response.code == 429 and answer["errcode"] == "rate_limited", answer
            assert 1 <= int(response.headers.getRawHeaders("retry-after")[0]) <= 60
        assert refused("send") - before[0] == 2
        stored = [r[0] for r in node_rows(node, "SELECT content FROM messages")]
        assert not [c for c in stored if "over" in c], stored
        # Bea's own minute is hers.
        await bea.ok("POST", "messages", {"recvID": "100@node-a", "messageType": "text",
                                          "content": {"message": "hi"}})
        answers = []
        for i in range(3):
            response = await treq.post(node.client_url + "files",
                                       data=b"x" * (10 if i < 2 else 4 << 20),
                                       params={"name": "f%d" % i},
                                       headers={"Authorization": "Bearer " + alice.token})
            answers.append((response.code, json.loads(await treq.content(response)),
                            response.headers))
        assert [a[0] for a in answers] == [200, 200, 429] and refused("upload") - before[1] == 1
        code, answer, headers = answers[2]
        assert answer["errcode"] == "rate_limited" and headers.getRawHeaders("retry-after")
        # Refused before its 4 MB body was read, by the listener: no route answered it.
        assert not REGISTRY.get_sample_value("imfed_requests_total", {
            "server": "node-a", "interface": "client", "endpoint": "upload", "status": "429",
            "peer": "-"})
        assert len(node_rows(node, "SELECT file_id FROM files")) == 2


def test_rate_limit_settings_are_checked():
    from imfed.config import ConfigError, parse

    node = {"server_id": "node-a", "listen": "127.0.0.1:1", "management_url": "https://m:1"}
    assert parse({"data_dir": "/tmp/x", "node": node}).node.sends_per_minute == 300
    for key, value in (("sends_per_minute", 0), ("sends_per_minute_per_address", -1),
                       ("uploads_per_minute", "many")):
        with pytest.raises(ConfigError, match=key):
            parse({"data_dir": "/tmp/x", "node": dict(node, **{key: value})})
