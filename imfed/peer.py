"""The outbound side of server-to-server calls: mutual TLS, signed requests, verified answers.

One PeerClient per daemon role; it keeps persistent HTTPS connections per destination.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
from typing import Awaitable, Callable
from urllib.parse import urlencode

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone, _HTTP11ClientFactory
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer
from zope.interface import implementer

from .config import https_address
from .crypto import sm2, tls
from .crypto.pki import Certificate
from .crypto.signing import SignatureError, off_reactor, sign_request, verify_response
from .crypto.sm3 import SM3

__all__ = ["PeerError", "PeerResponse", "PeerClient", "bootstrap_call"]


class PeerError(Exception):
    """A call that did not produce a trustworthy answer: unreachable, refused at TLS, timed
    out, unsigned or wrongly signed, or not JSON."""


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


@attrs.define
class PeerClient:
    server_id: str
    key: sm2.PrivateKey
    identity: tls.TLSIdentity
    reactor: object
    certificate_of: CertLookup
    timeout: float = 30.0
    max_response: int = 8 << 20
    policy: tls.PeerPolicy = attrs.field(init=False)
    pool: HTTPConnectionPool = attrs.field(init=False)
    agent: Agent = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.policy = tls.PeerPolicy(self.identity)
        self.pool = HTTPConnectionPool(self.reactor, persistent=True)
        self.pool._factory = _QuietClientFactory  # no "Starting factory" line per connection
        # One connection per lane the outbox may drive at once (outbox.lanes_per_destination).
        self.pool.maxPersistentPerHost = 16
        # Idle connections are closed here before a peer's listener would time them out
        # (idle_timeout_seconds, 120 by default): a request never races the peer's close.
        self.pool.cachedConnectionTimeout = 60
        self.agent = Agent.usingEndpointFactory(self.reactor,
                                                _NoDelayEndpoints(self.reactor, self.policy),
                                                pool=self.pool)

    def now_ms(self) -> int:
        return int(self.reactor.seconds() * 1000)

    def use(self, identity: tls.TLSIdentity, key: sm2.PrivateKey) -> None:
        """Sign with ``key`` and present ``identity`` from now on (a renewed certificate);
        idle connections made with the old one are closed."""
        self.identity, self.key = identity, key
        self.policy.use(identity)
        self.pool.closeCachedConnections()

    async def _request(self, destination: str, address: str, method: str, path: str,
                 query: dict | None, data: bytes, signed: bool) -> tuple[bytes, Headers, str]:
        """(URL, headers, nonce) of a request to ``destination``: its identity announced to
        the TLS policy, and, when ``signed``, its Authorization header."""
        host, port = https_address(address)
        self.policy.expect(host, port, destination)
        target = path + ("?" + urlencode(query) if query else "")
        headers = Headers()
        nonce = ""
        if signed:
            auth, nonce = await off_reactor(self.reactor, sign_request, self.key, method,
                                            target, self.server_id, destination, data,
                                            self.now_ms())
            headers.addRawHeader(b"authorization", auth.encode("ascii"))
        return _url(host, port, target), headers, nonce

    async def _check_answer(self, destination: str, status: int, headers: Headers, nonce: str,
                            body: bytes = b"", body_sm3: str | None = None) -> None:
        """PeerError unless the answer is signed by ``destination`` over this exchange."""
        cert = await self.certificate_of(destination)
        if cert is None:
            raise PeerError("no certificate known for %s" % destination)
        header = headers.getRawHeaders(b"x-imfed-signature", [b""])[0]
        try:
            await off_reactor(self.reactor, verify_response, header.decode("latin-1"), status,
                              nonce, destination, cert.public_key, body, body_sm3)
        except SignatureError as e:
            raise PeerError("%s: %s" % (destination, e)) from None

    async def call(self, destination: str, address: str, method: str, path: str,
                   body: dict | None = None, query: dict | None = None,
                   signed: bool = True) -> PeerResponse:
        """Send one request to ``destination`` at ``address`` (https://host[:port]) over mutual
        TLS, signed unless ``signed`` is False (getservercert and the like); answer its JSON
        reply, whatever its status, with the response signature verified for a signed call.
        PeerError otherwise."""
        data = json.dumps(body, ensure_ascii=False).encode("utf-8") if body is not None else b""
        url, headers, nonce = await self._request(destination, address, method, path, query,
                                                  data, signed)
        status, response_headers, content = await _exchange(
            self.agent, self.reactor, method, url, headers,
            data if body is not None else None, self.timeout, self.max_response, destination)
        if signed and not (status in LISTENER_REFUSALS and
                           not response_headers.hasHeader(b"x-imfed-signature")):
            await self._check_answer(destination, status, response_headers, nonce, content)
        # A refusal by the destination's listener (imfed/listening.py: too large, too slow)
        # comes before its signature check and is not signed; mutual TLS has shown it is the
        # destination's.
        return PeerResponse(status, _json_object(content, destination))

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
            await self._check_answer(destination, response.code, response.headers, nonce,
                                     content)
            body = _json_object(content, destination)
            raise PeerError("%s answered %d: %s" % (destination, response.code,
                                                    body.get("error") or body.get("desc")))
        sink = _FileSink(dest_path, limit, self.reactor)
        response.deliverBody(sink)
        try:
            size, md5, sm3 = await sink.done
        except OSError:
            raise  # our own disk (full, say): not the peer's fault
        except Exception as e:
            raise PeerError("download from %s failed: %s" % (destination, _describe(e))) from None
        await self._check_answer(destination, 200, response.headers, nonce, body_sm3=sm3)
        return size, md5, sm3

    def close(self) -> Deferred:
        return self.pool.closeCachedConnections()


class _QuietClientFactory(_HTTP11ClientFactory):
    noisy = False


@implementer(IAgentEndpointFactory)
class _NoDelayEndpoints:
    """TLS over TCP with Nagle's algorithm off: a request's headers and body go out as
    separate TLS records, and Nagle would hold the body until the server acknowledged the
    headers (which delayed ACKs postpone)."""

    def __init__(self, reactor, policy: tls.PeerPolicy) -> None:
        self.reactor, self.policy = reactor, policy

    def endpointForURI(self, uri):
        creator = self.policy.creatorForNetloc(uri.host, uri.port)
        host = uri.host.decode("ascii") if isinstance(uri.host, bytes) else uri.host
        return wrapClientTLS(creator, _NoDelay(HostnameEndpoint(self.reactor, host, uri.port)))


@implementer(IStreamClientEndpoint)
class _NoDelay:
    def __init__(self, inner) -> None:
        self.inner = inner

    def connect(self, factory):
        def nodelay(protocol):
            setter = getattr(protocol.transport, "setTcpNoDelay", None)
            if setter is not None:
                setter(True)
            return protocol

        return self.inner.connect(factory).addCallback(nodelay)


@implementer(IBodyProducer)
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
        self.done = Deferred()
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


def _url(host: str, port: int, target: str) -> bytes:
    return ("https://%s:%d%s" % (host if ":" not in host else "[%s]" % host, port,
                                 target)).encode("utf-8")


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
        self.done = Deferred()

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
    agent = Agent(reactor, contextFactory=policy, pool=pool)
    status, _, content = await _exchange(
        agent, reactor, "POST", _url(host, port, path), Headers(),
        json.dumps(body, ensure_ascii=False).encode("utf-8"), timeout, 8 << 20, address)
    return PeerResponse(status, _json_object(content, address))


def _describe(exc: Exception) -> str:
    reasons = getattr(exc, "reasons", None)
    if reasons:
        return "; ".join(str(r.value) for r in reasons)
    return str(exc) or type(exc).__name__
