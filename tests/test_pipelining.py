"""Pipelined calls between nodes (imfed/pipelined.py, docs/protocol.md §3.5): a lane's calls
go out before the earlier answers are in, the peer handles them in order, and nothing passes a
call that failed."""

from __future__ import annotations

import json

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol

from imfed.peer import PeerBehind
from imfed.pipelined import Behind, Broken, PipelinedConnection

from conftest import add_user
from test_node_delivery import _received


def _chat(n: int, text: str, **override) -> dict:
    info = {"senderID": "100@node-a", "recvID": "200@node-b", "messageType": "text",
            "version": "v1", "type": 1, "messageID": "pipelined%04d@node-a" % n,
            "content": {"message": text}}
    info.update(override)
    return {"messageInfo": info}


async def _settle(d: Deferred):
    try:
        return await d
    except Exception as e:
        return e


@pytest_twisted.ensureDeferred
async def test_a_lane_pipelines_in_order_and_nothing_passes_a_failure(pair):
    a, b = pair
    add_user(a, "100", "Alice")
    add_user(b, "200", "Bob")
    peer = a.role.directory.active("node-b")
    lane = a.role.client.lane("node-b", peer.address)
    try:
        first = await lane.call("POST", "/sns/chat", _chat(1, "one"))
        assert first.ok
        conn = lane._conn
        assert conn.in_order  # B said it keeps a connection's requests in order

        calls = [ensureDeferred(lane.call("POST", "/sns/chat", body)) for body in (
            _chat(2, "two"), _chat(3, "bad", messageType="video"), _chat(4, "four"),
            _chat(5, "five"))]
        assert len(conn.waiting) == 4  # all four sent before the first of them was answered
        two, bad, four, five = [await _settle(d) for d in calls]
        assert two.ok
        assert bad.status == 400 and bad.body["errcode"] == "bad_messageType"
        # B closed the connection after its error answer and handled nothing behind it.
        assert isinstance(four, PeerBehind) and isinstance(five, PeerBehind)
        assert not conn.usable
        assert _received(b, "100@node-a") == ["one", "two"]
        # The lane is spent: a later call is not sent either.
        with pytest.raises(PeerBehind):
            await lane.call("POST", "/sns/chat", _chat(6, "six"))
    finally:
        lane.close()
    assert _received(b, "100@node-a") == ["one", "two"]

    # A new lane sends them again (as the outbox does on its next pass), still in order.
    lane = a.role.client.lane("node-b", peer.address)
    try:
        again = [ensureDeferred(lane.call("POST", "/sns/chat", _chat(n, text)))
                 for n, text in ((4, "four"), (5, "five"), (6, "six"))]
        assert [(await d).ok for d in again] == [True, True, True]
    finally:
        lane.close()
    assert _received(b, "100@node-a") == ["one", "two", "four", "five", "six"]


# -- the client's reading of answers, against canned bytes on a loopback socket --

class _Canned(Protocol):
    """Answers each request (a head ending in a blank line, no body) with the next of
    ``answers``, and closes after one that says so; ``None`` closes the connection instead."""

    def __init__(self, answers: list) -> None:
        self.answers, self.buf = answers, b""

    def dataReceived(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            _, self.buf = self.buf.split(b"\r\n\r\n", 1)
            answer = self.answers.pop(0)
            if answer is None:
                self.transport.loseConnection()
                return
            self.transport.write(answer)
            if b"connection: close" in answer.lower():
                self.transport.loseConnection()
                return


async def _connection(answers: list, timeout: float = 10.0, limit: int = 1000):
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        Factory.forProtocol(lambda: _Canned(answers)))
    conn = PipelinedConnection(reactor, timeout, limit)
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), conn)
    return port, conn


REQUEST = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"


@pytest_twisted.ensureDeferred
async def test_answers_framed_every_way_http_allows():
    answers = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\nno length: ends with the close",
    ]
    port, conn = await _connection(answers)
    try:
        ds = [conn.request(REQUEST, b"") for _ in range(4)]
        first, second, third, fourth = [await d for d in ds]
        assert first == (200, {b"content-length": [b"5"], b"x-a": [b"1", b"2"]}, b"hello")
        assert second[0] == 201 and second[2] == b""
        assert third[0] == 200 and third[2] == b"abcde"
        assert fourth[0] == 404 and fourth[2] == b"no length: ends with the close"
        assert not conn.usable and not conn.in_order
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_failed_answer_fails_those_behind_it_as_behind():
    answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n", b"", b""]
    port, conn = await _connection(answers, limit=1000)
    try:
        ds = [conn.request(REQUEST, b"") for _ in range(3)]
        results = [await _settle(d) for d in ds]
        assert isinstance(results[0], Broken) and not isinstance(results[0], Behind)
        assert "over 1000 bytes" in str(results[0])
        assert all(isinstance(r, Behind) for r in results[1:])
        assert not conn.usable
        with pytest.raises(Broken):
            await conn.request(REQUEST, b"")  # nothing more goes on a dead connection
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_not_http_a_close_and_silence_each_fail_the_call():
    for answers, timeout, words in (
            ([b"SMTP ready\r\n\r\n"], 10.0, "bad status line"),
            ([b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx"], 10.0,
             "conflicting Content-Length"),
            ([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"], 10.0,
             "unknown transfer coding"),
            ([None], 10.0, "closed before the answer"),
            ([b""], 0.2, "no answer within 0.2 s")):
        port, conn = await _connection(answers, timeout=timeout)
        try:
            with pytest.raises(Broken) as failed:
                await conn.request(REQUEST, b"")
            assert words in str(failed.value)
            assert not conn.usable
        finally:
            await port.stopListening()


# -- a peer that does not say it keeps pipelined requests in order --

class _Recording(Protocol):
    """A TLS peer that is not imfed: answers each request 30 ms after it whole, and records
    how many requests had arrived unanswered at each arrival (``in_order`` adds the header)."""

    def __init__(self, log: dict, in_order: bool) -> None:
        self.log, self.in_order, self.buf, self.open = log, in_order, b"", 0

    def dataReceived(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, rest = self.buf.split(b"\r\n\r\n", 1)
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            if len(rest) < length:
                return
            self.log["bodies"].append(json.loads(rest[:length])["n"])
            self.buf = rest[length:]
            self.open += 1
            self.log["unanswered"].append(self.open)
            reactor.callLater(0.03, self._answer)

    def _answer(self) -> None:
        self.open -= 1
        extra = b"x-imfed-pipeline: in-order\r\n" if self.in_order else b""
        self.transport.write(b"HTTP/1.1 200 OK\r\n%scontent-length: 11\r\n\r\n{\"code\": 0}"
                             % extra)


@pytest_twisted.ensureDeferred
async def test_a_lane_pipelines_only_where_the_peer_says_it_keeps_order(management, tmp_path):
    from twisted.protocols.tls import TLSMemoryBIOFactory

    from imfed.crypto import tls
    from imfed.peer import PeerClient, PeerError

    from conftest import issue_from

    caller = issue_from(management.ca, str(tmp_path / "a"), "node-a")
    other = issue_from(management.ca, str(tmp_path / "x"), "node-x")

    async def certificate_of(server_id):
        return other.cert if server_id == "node-x" else None

    client = PeerClient(server_id="node-a", key=caller.key, identity=caller.identity(),
                        reactor=reactor, certificate_of=certificate_of)
    try:
        for in_order, most in ((False, 1), (True, 4)):
            log = {"bodies": [], "unanswered": []}
            port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
                TLSMemoryBIOFactory(tls.ServerTLS(other.identity()), False,
                                    Factory.forProtocol(lambda: _Recording(log, in_order))))
            lane = client.lane("node-x", "https://127.0.0.1:%d" % port.getHost().port)
            try:
                calls = [ensureDeferred(lane.call("POST", "/sns/chat", {"n": n}))
                         for n in range(5)]
                results = [await _settle(d) for d in calls]
            finally:
                lane.close()
                await port.stopListening()
            # The answers are unsigned, so each call fails its check, after the peer had it;
            # a failed check is no reason to hold back the calls behind it.
            assert all(isinstance(r, PeerError) and "no X-IMFed-Signature" in str(r)
                       for r in results)
            assert log["bodies"] == [0, 1, 2, 3, 4]
            # Not said: one at a time. Said (on the first answer): the other four at once.
            assert max(log["unanswered"]) == most, log
    finally:
        await client.close()
