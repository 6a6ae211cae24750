"""The outbound side of server-to-server calls: mutual TLS, signed requests, verified answers.

One PeerClient per daemon role; it keeps persistent HTTPS connections per destination.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
from typing import Any, Awaitable, Callable
from urllib.parse import urlencode

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Protocol
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone, _HTTP11ClientFactory
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from .config import https_address
from .crypto import sm2, tls
from .crypto.pki import Certificate
from .crypto.signing import (SignatureError, off_reactor, parse_response_signature, sign_request,
                             verify_response)
from .crypto.sm3 import SM3
from .pipelined import (PIPELINE_HEADER, PIPELINE_IN_ORDER, Behind, Broken, Pipes,
                        PipelinedConnection)
from .timers import now_ms

__all__ = ["PeerError", "PeerBehind", "PeerRefusedDownload", "PeerResponse", "PeerClient", "Lane",
           "bootstrap_call", "ClockWatch"]


class PeerError(Exception):
    """A call that did not produce a trustworthy answer: unreachable, refused at TLS, timed
    out, unsigned or wrongly signed, or not JSON."""


class PeerBehind(PeerError):
    """A call of a :class:`Lane` not sent, or not handled by the peer, because a call before
    it in the lane failed: it goes again after that one, and was not itself an attempt."""


class PeerRefusedDownload(PeerError):
    """A download the peer answered, signed, with an error status (``status``): 404 when it
    no longer keeps the file (its retention, say)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@attrs.frozen
class PeerResponse:
    status: int
    body: dict

    @property
    def ok(self) -> bool:
        code = self.body.get("code")
        return 200 <= self.status < 300 and code in (0, "0")


LISTENER_REFUSALS = (408, 413)
"""Answers a listener gives before reading a request (so unsigned)."""

CertLookup = Callable[[str], Awaitable["Certificate | None"]]


class ClockWatch:
    """How far our clock is from our peers', read off the ``ts`` of their signed answers:
    a node whose clock is off by minutes has every signed call refused (docs/protocol.md §3,
    ±300 s), and should say so in /health rather than report itself well."""

    WARN_MS, FAIL_MS, RECENT_MS = 30_000, 240_000, 3_600_000

    def __init__(self) -> None:
        self._offsets: dict[str, tuple[int, int]] = {}  # peer: (when, their ts - ours)

    def saw(self, peer: str, their_ts: int, now_ms: int) -> None:
        self._offsets[peer] = (now_ms, their_ts - now_ms)
        while len(self._offsets) > 256:
            self._offsets.pop(next(iter(self._offsets)))

    def report(self, now_ms: int) -> tuple[bool, dict | None]:
        """(ok, what /health says): the median offset of the peers answered in the last hour;
        a warning from 30 s, failing from 240 s (most of the signature window)."""
        recent = sorted(off for when, off in self._offsets.values()
                        if now_ms - when <= self.RECENT_MS)
        if not recent:
            return True, None
        median = recent[len(recent) // 2]
        out: dict = {"offsetSeconds": round(-median / 1000, 1), "peers": len(recent)}
        if abs(median) >= self.WARN_MS:
            out["warning"] = ("this server's clock is %.0f s %s its peers' (by their signed "
                              "answers); signed calls fail past 300 s" % (
                                  abs(median) / 1000, "behind" if median > 0 else "ahead of"))
        return abs(median) < self.FAIL_MS, out


@attrs.define
class PeerClient:
    server_id: str
    key: sm2.PrivateKey
    identity: tls.TLSIdentity
    reactor: Any
    certificate_of: CertLookup
    timeout: float = 30.0
    max_response: int = 8 << 20
    tls_policy: str = tls.GM_ONLY
    policy: tls.PeerPolicy = attrs.field(init=False)
    clock_watch: "ClockWatch" = attrs.field(init=False, factory=lambda: ClockWatch())
    pool: HTTPConnectionPool = attrs.field(init=False)
    agent: Agent = attrs.field(init=False)
    pipes: Pipes = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.policy = tls.PeerPolicy(self.identity, self.tls_policy)
        self.pool = HTTPConnectionPool(self.reactor, persistent=True)
        self.pool._factory = _QuietClientFactory  # no "Starting factory" line per connection
        # One connection per lane the outbox may drive at once (outbox.lanes_per_destination).
        self.pool.maxPersistentPerHost = 16
        # Idle connections are closed here before a peer's listener would time them out
        # (idle_timeout_seconds, 120 by default): a request never races the peer's close.
        self.pool.cachedConnectionTimeout = 60
        self.agent = Agent.usingEndpointFactory(
            self.reactor, _Endpoints(self.reactor, self.policy, self.timeout), pool=self.pool)
        self.pipes = Pipes(self.reactor, self.timeout, self.max_response,
                           per_host=self.pool.maxPersistentPerHost,
                           idle_seconds=self.pool.cachedConnectionTimeout)

    def now_ms(self) -> int:
        return now_ms(self.reactor)

    def use(self, identity: tls.TLSIdentity, key: sm2.PrivateKey) -> None:
        """Sign with ``key`` and present ``identity`` from now on (a renewed certificate);
        idle connections made with the old one are closed."""
        self.identity, self.key = identity, key
        self.policy.use(identity)
        self.pool.closeCachedConnections()
        self.pipes.close()

    async def _sign(self, destination: str, address: str, method: str, target: str,
                    data: bytes) -> tuple[str, int, str, str]:
        """(host, port, Authorization, nonce) of a signed request to ``destination``, its
        identity announced to the TLS policy."""
        host, port = https_address(address)
        self.policy.expect(host, port, destination)
        auth, nonce = await off_reactor(self.reactor, sign_request, self.key, method, target,
                                        self.server_id, destination, data, self.now_ms())
        return host, port, auth, nonce

    async def _request(self, destination: str, address: str, method: str, path: str,
                 query: dict | None, data: bytes, signed: bool) -> tuple[bytes, Headers, str]:
        """(URL, headers, nonce) of a request to ``destination``: its identity announced to
        the TLS policy, and, when ``signed``, its Authorization header."""
        target = _target(path, query)
        headers = Headers()
        nonce = ""
        if signed:
            host, port, auth, nonce = await self._sign(destination, address, method, target,
                                                       data)
            headers.addRawHeader(b"authorization", auth.encode("ascii"))
        else:
            host, port = https_address(address)
            self.policy.expect(host, port, destination)
        return _url(host, port, target), headers, nonce

    async def _check_answer(self, destination: str, status: int, signature: bytes | None,
                            nonce: str, body: bytes = b"", body_sm3: str | None = None) -> None:
        """PeerError unless the answer is signed by ``destination`` over this exchange."""
        cert = await self.certificate_of(destination)
        if cert is None:
            raise PeerError("no certificate known for %s" % destination)
        header = (signature or b"").decode("latin-1")
        try:
            await off_reactor(self.reactor, verify_response, header, status, nonce,
                              destination, cert.public_key, body, body_sm3)
        except SignatureError as e:
            raise PeerError("%s: %s" % (destination, e)) from None
        self.clock_watch.saw(destination, parse_response_signature(header)[1], self.now_ms())

    async def _answer(self, destination: str, status: int, signature: bytes | None,
                      nonce: str, content: bytes) -> PeerResponse:
        """The JSON answer to a signed call, its signature checked."""
        if not (status in LISTENER_REFUSALS and signature is None):
            await self._check_answer(destination, status, signature, nonce, content)
        # A refusal by the destination's listener (imfed/listening.py: too large, too slow)
        # comes before its signature check and is not signed; mutual TLS has shown it is the
        # destination's.
        return PeerResponse(status, _json_object(content, destination))

    async def call(self, destination: str, address: str, method: str, path: str,
                   body: dict | None = None, query: dict | None = None,
                   signed: bool = True) -> PeerResponse:
        """Send one request to ``destination`` at ``address`` (https://host[:port]) over mutual
        TLS, signed unless ``signed`` is False (getservercert and the like); answer its JSON
        reply, whatever its status, with the response signature verified for a signed call.
        PeerError otherwise."""
        data = _json_bytes(body)
        url, headers, nonce = await self._request(destination, address, method, path, query,
                                                  data, signed)
        status, response_headers, content = await _exchange(
            self.agent, self.reactor, method, url, headers,
            data if body is not None else None, self.timeout, self.max_response, destination)
        if not signed:
            return PeerResponse(status, _json_object(content, destination))
        return await self._answer(destination, status, _signature(response_headers), nonce,
                                  content)

    def lane(self, destination: str, address: str) -> "Lane":
        """A sequence of signed calls to ``destination`` whose order matters (an outbox lane):
        see :class:`Lane`.  Close it when done."""
        return Lane(self, destination, address)

    async def download(self, destination: str, address: str, path: str, query: dict,
                       dest_path: str, limit: int) -> tuple[int, str, str]:
        """A signed GET whose answer is a file, streamed to ``dest_path`` (never whole in
        memory) while its size, MD5 and SM3 are taken; the response signature is checked over
        the SM3.  (size, md5, sm3); PeerError for anything else, the JSON error included."""
        url, headers, nonce = await self._request(destination, address, "GET", path, query,
                                                  b"", True)
        try:
            d = self.agent.request(b"GET", url, headers, None)
            d.addTimeout(self.timeout, self.reactor)
            response = await d
        except Exception as e:
            raise PeerError("%s unreachable: %s" % (destination, _describe(e))) from None
        if response.code != 200:
            content = await read_capped(response, self.max_response, self.timeout,
                                        self.reactor, destination)
            await self._check_answer(destination, response.code, _signature(response.headers),
                                     nonce, content)
            body = _json_object(content, destination)
            raise PeerRefusedDownload("%s answered %d: %s" % (
                destination, response.code, body.get("error") or body.get("desc")),
                response.code)
        sink = _FileSink(dest_path, limit, self.reactor)
        response.deliverBody(sink)  # type: ignore[call-arg,misc]  # (a zope method)
        try:
            size, md5, sm3 = await sink.done
        except OSError:
            raise  # our own disk (full, say): not the peer's fault
        except Exception as e:
            raise PeerError("download from %s failed: %s" % (destination, _describe(e))) from None
        await self._check_answer(destination, 200, _signature(response.headers), nonce,
                                 body_sm3=sm3)
        return size, md5, sm3

    def close(self) -> Deferred:
        self.pipes.close(shut=True)
        return self.pool.closeCachedConnections()


class Lane:
    """Signed calls to one destination whose order matters (an outbox lane), over one
    connection of their own.  :meth:`call` may be called again before the calls before it are
    answered; each is sent after the one before it: at once when the peer has acknowledged
    pipelining on the connection (imfed/pipelined.py, docs/protocol.md §2), else when that
    one's answer is in.  Once a call fails (no answer, or an error status), the calls behind
    it fail with :class:`PeerBehind`, unsent or unhandled, so that nothing overtakes it.
    Answers as :meth:`PeerClient.call`; :meth:`close` when done."""

    def __init__(self, client: PeerClient, destination: str, address: str) -> None:
        self.client, self.destination, self.address = client, destination, address
        self._turn: Deferred | None = None  # fires when the call before lets the next go
        self._conn: PipelinedConnection | None = None
        self._key: tuple[str, int] | None = None
        self._sent = 0  # calls sent and not yet answered
        self._broken: str | None = None

    async def call(self, method: str, path: str, body: dict | None = None,
                   query: dict | None = None) -> PeerResponse:
        previous = self._turn
        mine: Deferred = Deferred()
        self._turn = mine
        try:
            if previous is not None:
                await previous
            self._not_behind()  # before signing: nothing to sign for
            status, headers, content, nonce = await self._send(method, path, body, query, mine)
        except BaseException as e:
            if self._broken is None:
                self._broken = str(e) or type(e).__name__
            raise
        finally:
            if not mine.called:
                mine.callback(None)
        signature = headers.get(b"x-imfed-signature", [None])[0]
        return await self.client._answer(self.destination, status, signature, nonce, content)

    async def _send(self, method, path, body, query, mine: Deferred):
        client = self.client
        data, target = _json_bytes(body), _target(path, query)
        host, port, auth, nonce = await client._sign(self.destination, self.address, method,
                                                     target, data)
        conn = await self._connection(host, port)
        head = ["%s %s HTTP/1.1\r\nhost: %s\r\nauthorization: %s\r\n%s: %s\r\n" % (
            method, target, _netloc(host, port), auth, PIPELINE_HEADER.decode(),
            PIPELINE_IN_ORDER.decode())]
        if body is not None:
            head.append("content-type: application/json;charset=utf-8\r\ncontent-length: %d"
                        "\r\n" % len(data))
        head.append("\r\n")
        self._not_behind()  # again: a call before this one may have failed while it was signed
        d = conn.request("".join(head).encode("utf-8"), data)
        self._sent += 1
        if conn.in_order:
            mine.callback(None)  # the next call may go now: the peer keeps them in order
        try:
            status, headers, content = await d
        except Behind as e:
            raise PeerBehind("%s: %s" % (self.destination, e)) from None
        except Broken as e:
            raise PeerError("%s unreachable: %s" % (self.destination, e)) from None
        finally:
            self._sent -= 1
        if status >= 400:
            self._broken = "HTTP %d" % status
        return status, headers, content, nonce

    def _not_behind(self) -> None:
        """PeerBehind once a call of this lane has failed."""
        if self._broken is not None:
            raise PeerBehind("%s: behind a call that failed (%s)" % (self.destination,
                                                                     self._broken))

    async def _connection(self, host: str, port: int) -> PipelinedConnection:
        conn = self._conn
        if conn is not None and conn.usable and self._key == (host, port):
            return conn
        if conn is not None and self._sent:
            # Calls before this one are out on a connection that is going away: this one
            # must not overtake them on another.
            raise PeerBehind("%s: the connection closed behind earlier calls" %
                             self.destination)
        self.close()
        creator = self.client.policy.creatorForNetloc(host, port)
        self._key = (host, port)
        try:
            self._conn = await self.client.pipes.acquire(host, port, creator)
        except Exception as e:
            raise PeerError("%s unreachable: %s" % (self.destination, _describe(e))) from None
        return self._conn

    def close(self) -> None:
        """Done: the connection goes back to the client's pool (or is closed)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self.client.pipes.release(self._key, conn)


class _QuietClientFactory(_HTTP11ClientFactory):
    noisy = False


@implementer(IAgentEndpointFactory)
class _Endpoints:
    """The Agent's connections: TLS (with TLCP where a peer speaks nothing else) made by the
    TLS layer, handshake first."""

    def __init__(self, reactor, policy, timeout: float = 30.0) -> None:
        self.reactor, self.policy, self.timeout = reactor, policy, timeout

    def endpointForURI(self, uri):
        creator = self.policy.creatorForNetloc(uri.host, uri.port)
        host = uri.host.decode("ascii") if isinstance(uri.host, bytes) else uri.host
        return tls.client_endpoint(self.reactor, host, uri.port, creator, self.timeout)


class _BytesProducer:
    """A JSON body written at once, in the same reactor turn as the headers (FileBodyProducer
    would read it through a cooperator task, a few turns later and at a cost per request)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.length = data, len(data)

    def startProducing(self, consumer):
        consumer.write(self.data)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class _FileSink(Protocol):
    """Writes a response body to a file as it arrives, hashing it, on a thread of its own:
    MD5, SM3 and file writes release the GIL, so the reactor goes on decrypting TLS meanwhile.
    While more than ``HIGH`` bytes wait for that thread the transport is paused (memory stays
    flat whatever the network's speed); stops past ``limit``."""

    HIGH, LOW, REPORT = 8 << 20, 2 << 20, 1 << 20

    def __init__(self, path: str, limit: int, reactor) -> None:
        self.reactor, self.limit, self.size = reactor, limit, 0
        self.done: Deferred = Deferred()
        self.failed: Exception | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pending, self._paused, self._ended = 0, False, False
        threading.Thread(target=self._work, args=(path,), name="imfed-download",
                         daemon=True).start()

    def dataReceived(self, data: bytes) -> None:
        if self.failed:
            return
        self.size += len(data)
        if self.size > self.limit:
            self.failed = PeerError("file over %d bytes" % self.limit)
            self.transport.stopProducing()
            return
        self._pending += len(data)
        self._queue.put(data)
        if self._pending > self.HIGH and not self._paused:
            self._paused = True
            self.transport.pauseProducing()

    def connectionLost(self, reason=None) -> None:
        self._ended = True
        if self.failed is None and reason is not None and \
                not reason.check(ResponseDone, PotentialDataLoss):
            self.failed = reason.value
        self._queue.put(None)  # the thread finishes what is queued, then reports

    def _written(self, n: int) -> None:
        self._pending -= n
        if self._paused and self._pending < self.LOW and not self._ended:
            self._paused = False
            self.transport.resumeProducing()

    def _finished(self, md5: str, sm3: str, error: Exception | None) -> None:
        failure = self.failed or error
        if failure is not None:
            self.done.errback(failure)
        else:
            self.done.callback((self.size, md5, sm3))

    def _work(self, path: str) -> None:
        """The thread: every chunk hashed and written in order, until the None at the end."""
        md5, sm3, error, unreported = hashlib.md5(), SM3(), None, 0
        try:
            f = open(path, "wb")
        except OSError as e:
            f, error = None, e
        while True:
            data = self._queue.get()
            if data is None:
                break
            if f is not None:
                try:
                    md5.update(data)
                    sm3.update(data)
                    f.write(data)
                except OSError as e:
                    error = e
                    f.close()
                    f = None
            unreported += len(data)
            if unreported >= self.REPORT:
                self.reactor.callFromThread(self._written, unreported)
                unreported = 0
        if f is not None:
            f.close()
        self.reactor.callFromThread(self._written, unreported)
        self.reactor.callFromThread(self._finished, md5.hexdigest(), sm3.hexdigest(), error)


def _json_bytes(body: dict | None) -> bytes:
    """A request's JSON body as sent (empty for none)."""
    return json.dumps(body, ensure_ascii=False).encode("utf-8") if body is not None else b""


def _target(path: str, query: dict | None) -> str:
    """The request target as sent and signed: the path, and the query string if any."""
    return path + ("?" + urlencode(query) if query else "")


def _netloc(host: str, port: int) -> str:
    return "%s:%d" % (host if ":" not in host else "[%s]" % host, port)


def _url(host: str, port: int, target: str) -> bytes:
    return ("https://%s%s" % (_netloc(host, port), target)).encode("utf-8")


def _signature(headers: Headers) -> bytes | None:
    return (headers.getRawHeaders(b"x-imfed-signature") or [None])[0]


async def _exchange(agent, reactor, method: str, url: bytes, headers: Headers,
                    data: bytes | None, timeout: float, limit: int, who: str):
    """(status, headers, body) of one request; PeerError when it does not complete."""
    producer = None
    if data is not None:
        headers.addRawHeader(b"content-type", b"application/json;charset=utf-8")
        producer = _BytesProducer(data)
    try:
        d = agent.request(method.encode("ascii"), url, headers, producer)
        d.addTimeout(timeout, reactor)
        response = await d
    except Exception as e:
        raise PeerError("%s unreachable: %s" % (who, _describe(e))) from None
    content = await read_capped(response, limit, timeout, reactor, who)
    return response.code, response.headers, content


class _CappedBody(Protocol):
    """Collects a response body up to ``limit`` bytes; past it, stops the transfer (the
    connection is dropped, nothing more is read) and fails."""

    def __init__(self, limit: int, who: str) -> None:
        self.limit, self.who = limit, who
        self.parts: list[bytes] = []
        self.size = 0
        self.done: Deferred = Deferred()

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        self.size += len(data)
        if self.size > self.limit:
            self.parts = []
            self.transport.stopProducing()
            self.done.errback(PeerError("%s answered more than %d bytes" % (self.who,
                                                                             self.limit)))
            return
        self.parts.append(data)

    def connectionLost(self, reason=None) -> None:
        if self.done.called:
            return
        if reason is None or reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.parts))
        else:
            self.done.errback(PeerError("%s unreachable: %s" % (self.who,
                                                                _describe(reason.value))))


async def read_capped(response, limit: int, timeout: float, reactor, who: str) -> bytes:
    """A response's body, read as it arrives and refused (PeerError) the moment it passes
    ``limit`` bytes: a peer cannot make us hold more than that, even by announcing nothing."""
    length = response.length
    if isinstance(length, int) and length > limit:
        response.deliverBody(_Discard())
        raise PeerError("%s answered more than %d bytes" % (who, limit))
    sink = _CappedBody(limit, who)
    response.deliverBody(sink)
    d = sink.done
    d.addTimeout(timeout, reactor)
    try:
        return await d
    except PeerError:
        raise
    except Exception as e:
        raise PeerError("%s unreachable: %s" % (who, _describe(e))) from None


class _Discard(Protocol):
    def connectionMade(self) -> None:
        self.transport.stopProducing()


def _json_object(content: bytes, who: str) -> dict:
    try:
        value = json.loads(content.decode("utf-8"))
    except ValueError:
        raise PeerError("%s answered something that is not JSON" % who) from None
    if not isinstance(value, dict):
        raise PeerError("%s answered JSON that is not an object" % who)
    return value


async def bootstrap_call(reactor, policy: tls.BootstrapPolicy, address: str, path: str,
                         body: dict, timeout: float = 30.0) -> PeerResponse:
    """An unsigned POST from a server that holds no certificate yet (joining)."""
    host, port = https_address(address)
    pool = HTTPConnectionPool(reactor, persistent=False)
    pool._factory = _QuietClientFactory
    agent = Agent.usingEndpointFactory(reactor, _Endpoints(reactor, policy, timeout), pool=pool)
    status, _, content = await _exchange(
        agent, reactor, "POST", _url(host, port, path), Headers(),
        _json_bytes(body), timeout, 8 << 20, address)
    return PeerResponse(status, _json_object(content, address))


def _describe(exc: Exception) -> str:
    reasons = getattr(exc, "reasons", None)
    if reasons:
        return "; ".join(str(r.value) for r in reasons)
    return str(exc) or type(exc).__name__
