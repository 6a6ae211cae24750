"""Listening sockets for every role: TCP → (TLS) → HTTP/1.1 → Klein, with the limits that
hold before any request is parsed, authenticated or routed (docs/security.md):

- connections: at most ``max_connections`` per listener and ``max_connections_per_source``
  per client address (refused at accept);
- time: a request's headers must arrive within ``header_timeout_seconds`` of its first byte,
  its body at no less than ``min_body_rate`` bytes/s after that, and an idle connection is
  closed after ``idle_timeout_seconds``;
- size: a body over the listener's limit for its path is refused with 413 by Content-Length,
  before a byte of it is read, or, chunked, as soon as it passes the limit; nothing more of it
  is read.

Roles build their listeners from here; only the composition root (service.py) assembles
roles, so no role imports it.
"""

from __future__ import annotations

import json
import resource
import socket
import time
from typing import Any, Callable

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.internet.defer import ensureDeferred, fail, maybeDeferred, succeed
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.logger import ILogObserver, Logger
from twisted.internet.task import LoopingCall
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web.http import HTTPChannel
from twisted.web.server import Request, Site
from zope.interface import implementer

from .config import Limits, Listen
from .crypto import tls
from .metrics import CONNECTIONS_REFUSED
from .pipelined import PIPELINE_HEADER, PIPELINE_IN_ORDER
from .timers import cancel
from .wire.errors import ApiError, Style, error_body

__all__ = ["InOrder", "Listener", "http_site", "tls_listener", "JsonRequest",
           "raise_file_limit", "BodyLimit"]

log = Logger()

BodyLimit = Callable[[bytes, bytes], int]
"""(method, path) → the largest body the listener takes for that request, in bytes."""

_REASONS = {408: b"Request Timeout", 413: b"Content Too Large", 429: b"Too Many Requests"}


class InOrder(MultiService):
    """A MultiService that stops its children one at a time, last first, each only after the
    one added after it has finished stopping: a store closes only once every listener, timer
    and queue that writes to it is done (plain MultiService stops them all at once, and an
    interaction caught between a closed pool and a stopping timer never finishes)."""

    log_observer = None
    """Set (imfed/logs.py) when ``[log]`` chooses how the daemon logs."""

    def setServiceParent(self, parent) -> None:
        # twistd makes the application, puts this tree in it, then starts logging with the
        # application's ILogObserver if it has one.
        if self.log_observer is not None and hasattr(parent, "setComponent"):
            parent.setComponent(ILogObserver, self.log_observer)
        super().setServiceParent(parent)

    def stopService(self):
        Service.stopService(self)
        return ensureDeferred(self._stop_each())

    async def _stop_each(self) -> None:
        for service in reversed(list(self)):
            if service.running:
                try:
                    await maybeDeferred(service.stopService)
                except Exception:
                    log.failure("stopping {service} failed", service=service)


class JsonRequest(Request):
    """Our requests never carry HTML forms: skip Twisted's form parsing of POST bodies, which
    parses every Content-Type with the email package (a sixth of a node's reactor time per
    federation request, by py-spy).  A chunked body is counted as it arrives and refused by
    the channel the moment it passes the listener's limit."""

    _received = 0
    channel: Any  # a GuardedChannel, None once the connection is gone

    who = "-"
    """Who made the request, for the access log: the calling serverId of a signed request,
    the user of a session (set by web.endpoint)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(*args, **kwargs)
        self.started = time.monotonic()

    def write(self, data: bytes) -> None:
        if not self.startedWriting and self.requestHeaders.hasHeader(PIPELINE_HEADER):
            # The caller may have sent more requests behind this one (imfed/pipelined.py):
            # twisted.web handles them one at a time, in order; after an error answer the
            # connection closes, so none behind it is handled.
            self.responseHeaders.setRawHeaders(PIPELINE_HEADER, [PIPELINE_IN_ORDER])
            if self.code >= 400 and self.channel is not None:
                self.channel.persistent = False
                self.responseHeaders.setRawHeaders(b"connection", [b"close"])
        super().write(data)

    def handleContentChunk(self, data: bytes) -> None:
        self._received += len(data)
        channel = self.channel  # a GuardedChannel (http_site), None once the connection is gone
        if channel is not None and self._received > channel.body_limit:
            channel.refuse(413, "too_large", "request body over %d bytes" % channel.body_limit)
            return
        super().handleContentChunk(data)


class _Held:
    """Stands in for a request's transfer decoder while the request waits to be admitted."""

    def __init__(self, inner) -> None:
        self.inner, self.ended = inner, False
        self.parts: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.parts.append(data)

    def noMoreData(self) -> None:
        self.ended = True

    def release(self) -> None:
        parts, self.parts = self.parts, []
        for data in parts:
            self.inner.dataReceived(data)
        if self.ended:
            self.inner.noMoreData()


class GuardedChannel(HTTPChannel):
    """HTTP/1.1 with deadlines and a body limit checked before the body is read.  The site
    gives the limits (``site.limits``), the body limit per path (``site.body_limit``) and the
    style of the error bodies (``site.style``)."""

    site: Any  # the http_site that made it (Twisted sets it)
    transport: Any
    body_limit = 1 << 62
    _refused = False
    _silent = False
    _deadline = None
    _waiting_for = ""
    _in_request = False

    # -- deadlines: one timer per connection, moved (not remade) from headers to body --

    def _arm(self, seconds: float, what: str) -> None:
        self._waiting_for = what
        if self._deadline is not None and self._deadline.active():
            self._deadline.reset(seconds)
        else:
            self._deadline = self.callLater(seconds, self._late)

    def _disarm(self) -> None:
        self._deadline = cancel(self._deadline)

    def _late(self) -> None:
        self._deadline = None
        what = self._waiting_for
        if self._silent:  # nothing said at all: nothing to answer
            CONNECTIONS_REFUSED.labels(getattr(self.transport, "imfed_listener", "-"),
                                       "silent").inc()
            self.transport.abortConnection()
            return
        log.info("closing a connection from {peer}: {what} too slow", what=what,
                 peer=_peer_host(self.transport))
        self.refuse(408, "too_slow", "the request's %s did not arrive in time" % what)

    def connectionMade(self) -> None:
        super().connectionMade()
        # The first request must begin within header_timeout_seconds of the accept (TLS
        # handshake included): a connection that says nothing is not held for the idle time.
        self._silent = True
        self._arm(self.site.limits.header_timeout_seconds, "first request")

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        if self._silent:
            self._silent = False
            established = getattr(self.transport, "imfed_established", None)
            if established is not None:
                established()
        if not self._in_request and not self._handlingRequest:
            # The first byte of a request: its headers have header_timeout_seconds.
            self._in_request = True
            self._arm(self.site.limits.header_timeout_seconds, "headers")
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:
        limit = self.site.body_limit(self._command, self._path)
        self.body_limit = limit
        if self.length is not None and self.length > limit:
            self.refuse(413, "too_large", "request body over %d bytes" % limit)
            return
        expected = limit if self.length is None else self.length
        if expected:
            grace = self.site.limits.header_timeout_seconds
            self._arm(grace + expected / self.site.limits.min_body_rate, "body")
        else:
            self._disarm()
        super().allHeadersReceived()
        gate = self.site.gate
        admitted = gate(self._command, self._path, self.requests[-1]) \
            if gate is not None and expected else None
        if admitted is not None:
            self._hold(admitted)

    def _hold(self, admitted) -> None:
        """Read none of the body until ``admitted`` (a Deferred) says whether the request may
        send it: the network is paused, what already came is kept in memory (one read at
        most), then handed on, or the request refused with 401 unread."""
        held = _Held(self._transferDecoder)
        self._transferDecoder = held
        self._networkProducer.pauseProducing()

        def decided(ok) -> None:
            if self._refused or self.transport is None:
                return
            if isinstance(ok, ApiError):  # refused for a reason of its own (a rate limit)
                self.refuse(ok.status, ok.errcode, ok.message, getattr(ok, "headers", {}))
                return
            if not ok:
                self.refuse(401, "no_session", "log in first: Authorization: Bearer <token>")
                return
            self._transferDecoder = held.inner
            self._networkProducer.resumeProducing()
            held.release()

        def failed(failure) -> None:
            log.failure("admitting a request", failure)
            decided(False)

        admitted.addCallbacks(decided, failed)

    def allContentReceived(self) -> None:
        if self._refused:
            return
        self._disarm()
        super().allContentReceived()

    def requestDone(self, request) -> None:
        # (Twisted may have kept an empty chunk: only bytes of a next request count.)
        self._in_request = bool(any(self._dataBuffer) and self.persistent)
        if self._in_request:
            # The next request began while this one was handled: its clock starts now.
            self._arm(self.site.limits.header_timeout_seconds, "headers")
        super().requestDone(request)

    def connectionLost(self, reason=None) -> None:
        self._disarm()
        super().connectionLost(reason)

    def _respondToBadRequestAndDisconnect(self) -> None:
        """A request twisted.web cannot parse (a bad request line, a header with NUL or
        without a colon, a malformed chunk): the profile's JSON 400, not a bare one."""
        self.refuse(400, "malformed_request", "the request is not valid HTTP/1.1")

    # -- refusing before any work --

    def refuse(self, status: int, errcode: str, message: str, headers=None) -> None:
        """Answer ``status`` with the profile's JSON error body (and ``headers``, bytes to
        bytes), read nothing more, close."""
        if self._refused:
            return
        self._refused = True
        self._disarm()
        body = json.dumps(error_body(self.site.style, message, errcode)).encode()
        extra = b"".join(b"%s: %s\r\n" % item for item in (headers or {}).items())
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json;charset=utf-8"
                             b"\r\ncontent-length: %d\r\n%sconnection: close\r\n\r\n%s"
                             % (status, _REASONS.get(status, b"Error"), len(body), extra,
                                body))
        self.loseConnection()


def _peer_host(transport) -> str:
    try:
        return transport.getPeer().host
    except Exception:
        return "?"


def access_line(timestamp, request) -> str:
    """``<address> <who> "<method> <path> <protocol>" <status> <bytes> <ms>ms [<tls>]``: the
    caller's serverId or user ID, the time from the request's first line to its answer and, on
    a TLS listener, the protocol and suite its connection agreed (``TLSv1.3/TLS_SM4_GCM_SM3``,
    ``TLCPv1.1/ECC_SM4_CBC_SM3``)."""
    text = (b"%s %s %s" % (request.method, request.uri, request.clientproto)).decode("latin-1")
    if not text.isprintable() or '"' in text or "\\" in text:  # rare: escaped, one by one
        text = "".join(c if c.isprintable() and c not in '"\\' else "\\x%02x" % ord(c)
                       for c in text)
    ms = (time.monotonic() - getattr(request, "started", time.monotonic())) * 1000
    line = '%s %s "%s" %d %s %.1fms' % (
        _peer_host(request.transport) if request.transport else "-",
        getattr(request, "who", "-"), text, request.code, request.sentLength or "-", ms)
    agreed = tls.negotiated(request.channel.transport) if request.channel else None
    return line if agreed is None else "%s %s/%s" % (line, agreed.protocol, agreed.suite)


class _QuietSite(Site):
    def log(self, request) -> None:
        pass


def http_site(resource, limits: Limits, style: Style, body_limit: BodyLimit,
              access_log: bool = True, gate=None) -> Site:
    """A Site for a Klein resource whose connections keep ``limits``; ``access_log`` False
    leaves requests out of the daemon's log (one line per request costs a busy node about a
    tenth of its reactor time).  ``gate(method, path, request)``, when given, is asked about each
    request with a body once its headers are in: None to read the body, or a Deferred that says
    whether the caller may send it (before then nothing of it is read)."""
    site: Any = (Site if access_log else _QuietSite)(resource, requestFactory=JsonRequest,
                                                timeout=limits.idle_timeout_seconds,
                                                logFormatter=access_line)
    site.protocol = GuardedChannel
    site.noisy = False  # no "Starting factory" lines
    site.limits, site.style, site.body_limit = limits, style, body_limit
    site.gate = gate
    site.displayTracebacks = False
    return site


class _Counted(ProtocolWrapper):
    """Counts what the connection's protocol wrote, to tell a client that reads from one that
    does not (``_Guard.reap``)."""

    written = 0
    unsent_before = sent_before = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)
        super().write(data)

    def writeSequence(self, data) -> None:
        self.written += sum(map(len, data))
        super().writeSequence(data)

    def unsent(self) -> int:
        """Bytes written and still in the transport's buffer, not yet taken by the kernel."""
        t = self.transport
        try:
            return len(t.dataBuffer) - t.offset + t._tempDataLen
        except AttributeError:
            return 0


SLOW_READER_BYTES = 64 << 10
"""A connection with this much written and unsent (an answer or two) that the client has not
taken a byte of between two scans REAP_SECONDS apart (30-60 s, as a web server's send
timeout) is closed: a client that asks and never reads cannot make the node hold answers for
as long as the connection may idle."""
REAP_SECONDS = 30.0


class _Guard(WrappingFactory):
    """Counts accepted connections, per listener and per client address, and refuses one
    over a cap at accept: all connections (``max_connections``, ``..._per_source``) and, apart,
    those that have not yet begun a request (``max_pending_connections``, ``..._per_source``:
    a TLS handshake not done, or a client that says nothing), so that silent connections from a
    few addresses cannot fill the room a peer needs.  Turns off Nagle's algorithm on those it
    keeps (an answer's headers and body go out as separate TLS records, and Nagle would hold
    the second back until the peer acknowledged the first)."""

    _warned = 0.0
    protocol = _Counted

    def __init__(self, wrapped, limits: Limits, reactor, name: str = "-") -> None:
        super().__init__(wrapped)
        self.noisy = False
        self.limits, self.reactor, self.name = limits, reactor, name
        self.per_source: dict[str, int] = {}
        self.pending_per_source: dict[str, int] = {}
        self.pending = 0

    def _over(self, host: str) -> str | None:
        limits = self.limits
        if len(self.protocols) >= limits.max_connections:
            return "total"
        if self.per_source.get(host, 0) >= limits.max_connections_per_source:
            return "per_source"
        if self.pending >= limits.max_pending_connections:
            return "pending"
        if self.pending_per_source.get(host, 0) >= limits.max_pending_connections_per_source:
            return "pending_per_source"
        return None

    def buildProtocol(self, addr):
        host = getattr(addr, "host", "?")
        over = self._over(host)
        if over is not None:
            CONNECTIONS_REFUSED.labels(self.name, over).inc()
            now = self.reactor.seconds()
            if now - self._warned > 10:
                self._warned = now
                log.warn("refusing connections from {host}: {n} open from it ({p} not yet in a "
                         "request), {total} in all ({pending} not yet in a request); limit "
                         "reached: {over}", host=host, n=self.per_source.get(host, 0),
                         p=self.pending_per_source.get(host, 0), total=len(self.protocols),
                         pending=self.pending, over=over)
            return None
        protocol = super().buildProtocol(addr)
        protocol.imfed_source = host
        protocol.imfed_established = lambda: self._established(protocol)
        protocol.imfed_listener = self.name
        _add(self.per_source, host, 1)
        _add(self.pending_per_source, host, 1)
        self.pending += 1
        protocol.imfed_pending = True
        return protocol

    def reap(self) -> int:
        """Close the connections whose clients read nothing since the last scan while
        SLOW_READER_BYTES or more wait for them; answer how many."""
        closed = 0
        for p in list(self.protocols):
            unsent = p.unsent()
            sent = p.written - unsent
            stalled = unsent >= SLOW_READER_BYTES and p.unsent_before >= SLOW_READER_BYTES \
                and sent == p.sent_before
            p.unsent_before, p.sent_before = unsent, sent
            if stalled:
                CONNECTIONS_REFUSED.labels(self.name, "slow_reader").inc()
                p.transport.abortConnection()
                closed += 1
        return closed

    def _established(self, p) -> None:
        """``p`` began its first request: it no longer counts as pending."""
        if getattr(p, "imfed_pending", False):
            p.imfed_pending = False
            self.pending -= 1
            _add(self.pending_per_source, p.imfed_source, -1)

    def registerProtocol(self, p) -> None:
        super().registerProtocol(p)
        setter = getattr(p.transport, "setTcpNoDelay", None)
        if setter is not None:
            setter(True)

    def unregisterProtocol(self, p) -> None:
        super().unregisterProtocol(p)
        self._established(p)
        host = getattr(p, "imfed_source", None)
        if host is not None:
            _add(self.per_source, host, -1)
            p.imfed_source = None


def _add(counts: dict[str, int], key: str, n: int) -> None:
    left = counts.get(key, 0) + n
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


@implementer(IStreamServerEndpoint)
class SharedPortEndpoint:
    """A TCP port that several processes listen on at once (SO_REUSEPORT: the kernel spreads
    the connections among them): the processes of one node on PostgreSQL
    (docs/scaling.md)."""

    def __init__(self, reactor, port: int, interface: str, backlog: int = 1024) -> None:
        self.reactor, self.port, self.interface, self.backlog = reactor, port, interface, backlog

    def listen(self, factory):
        family = socket.AF_INET6 if ":" in self.interface else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.interface, self.port))
            sock.listen(self.backlog)
            sock.setblocking(False)
            return succeed(self.reactor.adoptStreamPort(sock.fileno(), family, factory))
        except OSError as e:
            return fail(CannotListenError(self.interface, self.port, e))
        finally:
            sock.close()  # the reactor holds its own copy of the descriptor


BACKLOG = 1024


class Listener(StreamServerEndpointService):
    """A listening port that, when stopped, also closes the connections it accepted (a
    stopped role must not keep answering, or hanging, on connections from before).  A port
    that cannot be bound stops the start with one line naming it (Twisted would log it and
    run on without the port: a daemon that systemd thinks healthy and nobody can reach)."""

    _raiseSynchronously = True

    def __init__(self, reactor, listen: Listen, factory, limits: Limits,
                 shared: bool = False) -> None:
        endpoint_type = TCP6ServerEndpoint if ":" in listen.host else TCP4ServerEndpoint
        self.listen = listen
        self.tracked = _Guard(factory, limits, reactor, str(listen))
        # A deep accept queue: a burst of connections waits to be accepted (and judged by the
        # caps above) rather than hang half-open in the kernel (50, Twisted's default, is
        # overrun by one peer's pool opening at once; the kernel caps it at somaxconn).
        endpoint = SharedPortEndpoint(reactor, listen.port, listen.host, BACKLOG) if shared \
            else endpoint_type(reactor, listen.port, backlog=BACKLOG, interface=listen.host)
        super().__init__(endpoint, self.tracked)

    def privilegedStartService(self) -> None:  # twistd binds here, before startService
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            self._cannot_listen(e)

    def startService(self) -> None:
        try:
            super().startService()
        except CannotListenError as e:
            self._cannot_listen(e)
        self._reaper = LoopingCall(self.tracked.reap)
        self._reaper.clock = self.tracked.reactor
        self._reaper.start(REAP_SECONDS, now=False)

    def _cannot_listen(self, e: CannotListenError):
        reason = getattr(e.socketError, "strerror", None) or e.socketError
        raise SystemExit("imfed: cannot listen on %s:%d: %s"
                         % (self.listen.host, self.listen.port, reason))

    _reaper: LoopingCall | None = None

    def stopService(self):
        if self._reaper is not None and self._reaper.running:
            self._reaper.stop()
        d = super().stopService()
        for protocol in list(self.tracked.protocols):
            protocol.transport.abortConnection()
        return d


def tls_listener(reactor, listen: Listen, server_tls: tls.ServerTLS, resource, limits: Limits,
                 style: Style, body_limit: BodyLimit, access_log: bool = True,
                 shared: bool = False) -> Listener:
    """A mutual-TLS HTTPS listener service for a Klein resource."""
    # (ServerTLS and Site provide their interfaces through zope.interface, which mypy does not
    # read.)
    site = http_site(resource, limits, style, body_limit, access_log)
    factory = TLSMemoryBIOFactory(server_tls, False, site)  # type: ignore[arg-type]
    factory.noisy = False
    return Listener(reactor, listen, factory, limits, shared)


def raise_file_limit(wanted: int = 65536) -> int:
    """Raise the soft open-file limit towards the hard one (every connection is a file; the
    usual soft limit of 1,024 is below what the listeners' caps allow).  The limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft
