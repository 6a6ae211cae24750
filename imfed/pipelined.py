"""HTTP/1.1 connections to peers on which requests may be pipelined (docs/protocol.md §2).

The outbox keeps each lane in order by sending its calls one at a time; on a connection whose
peer has said, by answering ``x-imfed-pipeline: in-order`` to a request that asked for it, that
it handles a connection's requests one after the other and closes the connection after any
error answer (so nothing behind a failed call is handled), a lane may send its next calls
before the answers to the earlier ones are in: the peer works on message k while this side
signs k+1.  Answers come back in order; a call behind one that failed fails with
:class:`Behind` without having been handled.

This is a small client of its own (Twisted's does not pipeline): it writes a request as one
buffer, reads status line, headers and a Content-Length, chunked or close-delimited body, with
the same limits as the rest of :mod:`imfed.peer`: headers at most 64 KiB, a body at most
``limit`` bytes, an answer within ``timeout`` seconds of its request.
"""

from __future__ import annotations

from collections import deque
from functools import partial
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol

from .crypto import tls
from .timers import cancel

__all__ = ["Behind", "Broken", "PipelinedConnection", "Pipes", "PIPELINE_HEADER",
           "PIPELINE_IN_ORDER"]

PIPELINE_HEADER = b"x-imfed-pipeline"
PIPELINE_IN_ORDER = b"in-order"

MAX_HEAD = 64 << 10


class Broken(Exception):
    """The connection failed (closed, reset, timed out, or the peer spoke something that is
    not HTTP/1.1) before this call's answer was read."""


class Behind(Broken):
    """Not answered because a call sent before it on the same connection failed: the peer
    closed the connection without handling it (or never received it)."""


class _Waiting:
    __slots__ = ("done", "deadline")

    def __init__(self, deadline: float) -> None:
        self.done: Deferred = Deferred()
        self.deadline = deadline


class PipelinedConnection(Protocol):
    """One connection; :meth:`request` may be called again before earlier answers are in.
    ``in_order`` becomes true once the peer has acknowledged pipelining."""

    transport: Any

    def __init__(self, reactor, timeout: float, limit: int) -> None:
        self.reactor, self.timeout, self.limit = reactor, timeout, limit
        self.waiting: deque[_Waiting] = deque()
        self.in_order = False
        self.open = False
        self.closing = False  # the peer will close after the answer being read
        self._buf = bytearray()
        self._state = "head"
        self._status = 0
        self._headers: dict[bytes, list[bytes]] = {}
        self._need = 0
        self._body: list[bytes] = []
        self._size = 0
        self._timer = None
        self.idle_timer = None

    # -- the connection --

    def connectionMade(self) -> None:
        self.open = True
        setter = getattr(self.transport, "setTcpNoDelay", None)
        if setter is not None:
            setter(True)

    @property
    def usable(self) -> bool:
        return self.open and not self.closing

    def request(self, head: bytes, body: bytes) -> Deferred:
        """Send a request (``head`` ends with the blank line); a Deferred of its
        (status, headers, body), or of a :class:`Broken` failure."""
        waiting = _Waiting(self.reactor.seconds() + self.timeout)
        if not self.usable:
            waiting.done.errback(Broken("connection closed"))
            return waiting.done
        self.waiting.append(waiting)
        if self._timer is None:
            self._arm()
        self.transport.write(head + body if body else head)
        return waiting.done

    def close(self) -> None:
        self.closing = True
        if self.open:
            self.transport.loseConnection()

    def connectionLost(self, reason=None) -> None:
        self.open = False
        self._timer = cancel(self._timer)
        self.idle_timer = cancel(self.idle_timer)
        if self._state == "close-delimited" and self.waiting:
            self._answered()  # the close ends the body
        self._fail(Broken("connection closed before the answer (%s)" %
                          (reason.getErrorMessage() if reason is not None else "closed")))

    def _fail(self, error: Broken) -> None:
        """Fail every call still waiting: the first with ``error``, the rest as behind it."""
        first = True
        while self.waiting:
            waiting = self.waiting.popleft()
            waiting.done.errback(error if first else Behind("behind a call that failed: %s"
                                                            % error))
            first = False

    def _abort(self, why: str) -> None:
        self.closing = True
        self._fail(Broken(why))
        if self.open:
            self.transport.abortConnection()

    # -- the deadline of the oldest call waiting --

    def _arm(self) -> None:
        delay = max(self.waiting[0].deadline - self.reactor.seconds(), 0.0)
        self._timer = self.reactor.callLater(delay, self._late)

    def _late(self) -> None:
        self._timer = None
        self._abort("no answer within %g s" % self.timeout)

    # -- reading answers --

    def dataReceived(self, data: bytes) -> None:
        self._buf += data
        try:
            while self._buf and self._step():
                pass
        except _Bad as e:
            self._abort("not an HTTP/1.1 answer: %s" % e)

    def _step(self) -> bool:
        """Consume what the buffer holds of the current state; True to go on."""
        state = self._state
        buf = self._buf
        if state == "head":
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise _Bad("headers over %d bytes" % MAX_HEAD)
                return False
            if end > MAX_HEAD:
                raise _Bad("headers over %d bytes" % MAX_HEAD)
            head = bytes(buf[:end])
            del buf[:end + 4]
            self._head(head)
            return True
        if state == "length":
            if self._take():
                self._answered()
            return True
        if state == "chunk-size":
            end = buf.find(b"\r\n")
            if end < 0:
                if len(buf) > 1024:
                    raise _Bad("chunk size line too long")
                return False
            line = bytes(buf[:end]).split(b";", 1)[0].strip()
            del buf[:end + 2]
            try:
                size = int(line, 16)
            except ValueError:
                raise _Bad("bad chunk size") from None
            if size < 0:
                raise _Bad("bad chunk size")
            if size == 0:
                self._state = "trailer"
            else:
                self._grow(size)
                self._need, self._state = size, "chunk"
            return True
        if state == "chunk":
            if self._take():
                self._state = "chunk-end"
            return True
        if state == "chunk-end":
            if len(buf) < 2:
                return False
            if buf[:2] != b"\r\n":
                raise _Bad("chunk not followed by CRLF")
            del buf[:2]
            self._state = "chunk-size"
            return True
        if state == "trailer":
            end = buf.find(b"\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise _Bad("trailer too long")
                return False
            del buf[:end + 2]
            if end == 0:
                self._answered()
            return True
        if state == "close-delimited":
            self._grow(len(buf))
            self._body.append(bytes(buf))
            del buf[:]
            return False
        raise _Bad("data after the last answer")

    def _take(self) -> bool:
        """Move what the buffer holds of the body part being read; True once it is whole."""
        take = min(self._need, len(self._buf))
        self._body.append(bytes(self._buf[:take]))
        del self._buf[:take]
        self._need -= take
        return not self._need

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit() \
                or len(parts[1]) != 3:
            raise _Bad("bad status line")
        status = int(parts[1])
        headers: dict[bytes, list[bytes]] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise _Bad("bad header line")
            headers.setdefault(name.lower(), []).append(value.strip())
        if 100 <= status < 200:
            return  # an interim answer (100 Continue): the real one follows
        if not self.waiting:
            raise _Bad("an answer to no request")
        self._status, self._headers = status, headers
        self._body, self._size = [], 0
        connection = b",".join(headers.get(b"connection", [])).lower()
        if b"close" in connection or (parts[0] == b"HTTP/1.0" and
                                       b"keep-alive" not in connection):
            self.closing = True
        coding = b",".join(headers.get(b"transfer-encoding", [])).lower()
        if coding:
            if coding.replace(b" ", b"").split(b",")[-1] != b"chunked":
                raise _Bad("unknown transfer coding")
            self._state = "chunk-size"
            return
        lengths = set(headers.get(b"content-length", []))
        if len(lengths) > 1:
            raise _Bad("conflicting Content-Length")
        if lengths:
            value = lengths.pop()
            if not value.isdigit():
                raise _Bad("bad Content-Length")
            self._need = int(value)
            self._grow(self._need)
            if self._need:
                self._state = "length"
            else:
                self._answered()
            return
        if status in (204, 304):
            self._answered()
            return
        self.closing = True  # the body ends with the connection
        self._state = "close-delimited"

    def _grow(self, n: int) -> None:
        self._size += n
        if self._size > self.limit:
            raise _Bad("answer over %d bytes" % self.limit)

    def _answered(self) -> None:
        waiting = self.waiting.popleft()
        self._state = "head" if not self.closing else "done"
        self._timer = cancel(self._timer)
        if self.waiting:
            self._arm()
        if self._headers.get(PIPELINE_HEADER, [b""])[0].lower() == PIPELINE_IN_ORDER:
            self.in_order = True
        body = b"".join(self._body)
        self._body = []
        waiting.done.callback((self._status, self._headers, body))
        if self.closing:
            # The peer closes after this answer: whatever was sent behind it is not handled.
            self._fail(Behind("the peer closed the connection after an earlier answer"))
            if self.open:
                self.transport.loseConnection()


class _Bad(Exception):
    pass


class Pipes:
    """Connections kept open per (host, port) between uses, up to ``per_host`` idle ones,
    each closed after ``idle_seconds`` unused."""

    def __init__(self, reactor, timeout: float, limit: int, per_host: int = 16,
                 idle_seconds: float = 60.0) -> None:
        self.reactor, self.timeout, self.limit = reactor, timeout, limit
        self.per_host, self.idle_seconds = per_host, idle_seconds
        self._idle: dict[tuple[str, int], list[PipelinedConnection]] = {}
        self._shut = False

    async def acquire(self, host: str, port: int, creator) -> PipelinedConnection:
        """An idle connection to (host, port), or a new one made with the TLS ``creator``."""
        self._shut = False  # in use again (a service started again after a stop)
        idle = self._idle.get((host, port))
        while idle:
            conn = idle.pop()
            conn.idle_timer = cancel(conn.idle_timer)
            if conn.usable:
                return conn
        endpoint = tls.client_endpoint(self.reactor, host, port, creator, self.timeout)
        factory = Factory.forProtocol(partial(PipelinedConnection, self.reactor, self.timeout,
                                              self.limit))
        factory.noisy = False  # no "Starting factory" line per connection
        d = endpoint.connect(factory)
        d.addTimeout(self.timeout, self.reactor)
        return await d

    def release(self, key: tuple[str, int], conn: PipelinedConnection) -> None:
        """Done with ``conn``: kept for the next use if it is healthy and quiet."""
        idle = self._idle.setdefault(key, [])
        if self._shut or not conn.usable or conn.waiting or len(idle) >= self.per_host:
            conn.close()
            return
        conn.idle_timer = self.reactor.callLater(self.idle_seconds, self._expire, key, conn)
        idle.append(conn)

    def _expire(self, key, conn: PipelinedConnection) -> None:
        conn.idle_timer = None
        idle = self._idle.get(key, [])
        if conn in idle:
            idle.remove(conn)
        conn.close()

    def close(self, shut: bool = False) -> None:
        """Close every idle connection (a renewed certificate); ``shut``: and every one given
        back from now on (shutting down)."""
        self._shut = self._shut or shut
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.idle_timer = cancel(conn.idle_timer)
                conn.close()
