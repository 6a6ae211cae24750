"""Signed requests and signed responses between servers (docs/protocol.md §3).

Pure wire code: canonical strings, header formats, the replay window and nonce cache, and one
verifier.  The Klein guard (imfed/web.py) and the peer client (imfed/peer.py) are the only users.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
import os
import re
import secrets
from typing import Any, Awaitable, Callable

import attrs
from twisted.application.service import Service
from twisted.internet.defer import maybeDeferred
from twisted.internet.threads import deferToThreadPool

from . import sm2
from .pki import Certificate, PKIError, verify_issued
from ..wire.fields import ascii_digits
from .sm3 import sm3_hex
from ..timers import now_ms

__all__ = [
    "SCHEME",
    "WINDOW_MS",
    "SignatureError",
    "string_to_sign",
    "response_string_to_sign",
    "sign_request",
    "parse_authorization",
    "sign_response",
    "parse_response_signature",
    "verify_response",
    "NonceCache",
    "RequestVerifier",
    "SignedRequest",
    "off_reactor",
]

SCHEME = "IMFED-SM2"
WINDOW_MS = 300_000
_NONCE = re.compile(r"^[0-9a-f]{16,64}$")
_PARAM = re.compile(r'\s*([a-z]+)="([^"]*)"\s*(?:,|$)')
_SERVER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class SignatureError(Exception):
    """An authentication failure: the request (or response) is not what it claims."""


def string_to_sign(method: str, target: str, origin: str, destination: str, ts: int | str,
                   nonce: str, body: bytes) -> bytes:
    return "\n".join([
        "IMFED-SM2-V1", method.upper(), target, origin, destination, str(ts), nonce,
        sm3_hex(body),
    ]).encode("utf-8")


def response_string_to_sign(status: int, nonce: str, responder: str, ts: int | str,
                            body: bytes, body_sm3: str | None = None) -> bytes:
    return "\n".join([
        "IMFED-SM2-RESP-V1", str(status), nonce, responder, str(ts),
        body_sm3 if body_sm3 is not None else sm3_hex(body),
    ]).encode("utf-8")


def _params(value: str, names: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(value):
        m = _PARAM.match(value, pos)
        if m is None or m.end() == pos:
            raise SignatureError("malformed signature parameters")
        key, val = m.group(1), m.group(2)
        if key in out or key not in names:
            raise SignatureError("unexpected or repeated parameter %r" % key)
        out[key] = val
        pos = m.end()
    missing = [n for n in names if n not in out]
    if missing:
        raise SignatureError("missing parameter %s" % ", ".join(missing))
    return out


def _b64(sig: bytes) -> str:
    return base64.b64encode(sig).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise SignatureError("signature is not base64") from None


def _ts(text: str) -> int:
    if not ascii_digits(text) or len(text) > 16:
        raise SignatureError("ts is not a millisecond timestamp")
    return int(text)


class _Crypto:
    """Where SM2 work runs: on the reactor thread (``threads`` 0, the default), or on a pool
    of that many threads.  tongsuopy releases the GIL in its C calls, so a pool lets a
    process sign and verify on several cores at once; but every computation handed to it
    costs the hand-off (queue, wake-up, the GIL passed back and forth), which on a machine
    whose cores are all busy cost more than the SM2 itself (docs/performance.md, #15)."""

    pool = None

    def use(self, threads: int):
        """A service running a pool of ``threads`` for SM2 work while it runs (None for 0:
        on the reactor thread)."""
        if threads == 0:
            return None
        from twisted.python.threadpool import ThreadPool

        return _PoolService(self, ThreadPool(0, threads, name="imfed-crypto"))

    def call(self, reactor, fn, *args):
        """``fn(*args)`` (an SM2 computation, pure) as a Deferred."""
        if self.pool is None:
            return maybeDeferred(fn, *args)
        return deferToThreadPool(reactor, self.pool, fn, *args)


class _PoolService(Service):
    def __init__(self, crypto: _Crypto, pool) -> None:
        self.crypto, self.pool = crypto, pool

    def startService(self) -> None:
        super().startService()
        self.pool.start()
        self.crypto.pool = self.pool

    def stopService(self):
        super().stopService()
        if self.crypto.pool is self.pool:
            self.crypto.pool = None
        self.pool.stop()


crypto = _Crypto()
"""The process's SM2 runner (top-level ``crypto_threads`` in the config)."""


def off_reactor(reactor, fn, *args):
    """An SM2 computation, where the config says (:class:`_Crypto`)."""
    return crypto.call(reactor, fn, *args)


def new_nonce() -> str:
    return secrets.token_hex(16)


def sign_request(key: sm2.PrivateKey, method: str, target: str, origin: str, destination: str,
                 body: bytes, ts: int, nonce: str | None = None) -> tuple[str, str]:
    """The Authorization header value for a request, and the nonce it used."""
    nonce = nonce or new_nonce()
    sig = key.sign(string_to_sign(method, target, origin, destination, ts, nonce, body))
    header = '%s origin="%s",destination="%s",ts="%d",nonce="%s",sig="%s"' % (
        SCHEME, origin, destination, ts, nonce, _b64(sig))
    return header, nonce


@attrs.frozen
class SignedRequest:
    origin: str
    destination: str
    ts: int
    nonce: str
    sig: bytes


def parse_authorization(value: str | None) -> SignedRequest:
    if not value:
        raise SignatureError("missing Authorization header")
    scheme, _, rest = value.strip().partition(" ")
    if scheme != SCHEME:
        raise SignatureError("Authorization scheme is not %s" % SCHEME)
    p = _params(rest, ("origin", "destination", "ts", "nonce", "sig"))
    if not _SERVER_ID.match(p["origin"]) or not _SERVER_ID.match(p["destination"]):
        raise SignatureError("origin or destination is not a serverId")
    if not _NONCE.match(p["nonce"]):
        raise SignatureError("nonce must be 16 to 64 lower-case hex characters")
    return SignedRequest(origin=p["origin"], destination=p["destination"], ts=_ts(p["ts"]),
                         nonce=p["nonce"], sig=_unb64(p["sig"]))


def sign_response(key: sm2.PrivateKey, status: int, nonce: str, responder: str, ts: int,
                  body: bytes, body_sm3: str | None = None) -> str:
    """``body_sm3`` stands in for the body when it is streamed (a file whose SM3 is known)."""
    sig = key.sign(response_string_to_sign(status, nonce, responder, ts, body, body_sm3))
    return 'origin="%s",ts="%d",sig="%s"' % (responder, ts, _b64(sig))


def parse_response_signature(value: str | None) -> tuple[str, int, bytes]:
    if not value:
        raise SignatureError("response carries no X-IMFed-Signature")
    p = _params(value.strip(), ("origin", "ts", "sig"))
    return p["origin"], _ts(p["ts"]), _unb64(p["sig"])


def verify_response(header: str | None, status: int, nonce: str, expected: str,
                    key: sm2.PublicKey, body: bytes, body_sm3: str | None = None) -> None:
    """Raise SignatureError unless the response is signed by ``expected`` over this exchange."""
    origin, ts, sig = parse_response_signature(header)
    if origin != expected:
        raise SignatureError("response signed by %r, expected %r" % (origin, expected))
    if not key.verify(sig, response_string_to_sign(status, nonce, origin, ts, body, body_sm3)):
        raise SignatureError("response signature does not verify")


class NonceCache:
    """Nonces seen per origin inside the replay window; forgets each once its request's ts has
    left the window (a replay would fail the ts check from then on)."""

    def __init__(self, window_ms: int = WINDOW_MS) -> None:
        self.window_ms = window_ms
        self._seen: dict[tuple[str, str], int] = {}
        self._expiries: list[tuple[int, tuple[str, str]]] = []  # a heap

    def check_and_add(self, origin: str, nonce: str, now_ms: int,
                      ts_ms: int | None = None) -> bool:
        """True (and remembered) when new; False for a replay.  ``ts_ms`` is the request's
        ts (now when not given)."""
        expiries, seen = self._expiries, self._seen
        while expiries and expiries[0][0] < now_ms:
            seen.pop(heapq.heappop(expiries)[1], None)
        key = (origin, nonce)
        if key in seen:
            return False
        expiry = (now_ms if ts_ms is None else ts_ms) + self.window_ms
        seen[key] = expiry
        heapq.heappush(expiries, (expiry, key))
        return True

    def __len__(self) -> int:
        return len(self._seen)

    def entries(self) -> list[tuple[str, str, int]]:
        """(origin, nonce, expiry in ms) of every nonce remembered, to be kept across a
        restart."""
        return [(origin, nonce, expiry) for (origin, nonce), expiry in self._seen.items()]

    def restore(self, entries, now_ms: int) -> None:
        for origin, nonce, expiry in entries:
            if expiry >= now_ms and (origin, nonce) not in self._seen:
                self._seen[(origin, nonce)] = expiry
                heapq.heappush(self._expiries, (expiry, (origin, nonce)))


CertLookup = Callable[[str], Awaitable["Certificate | None"]]


@attrs.define
class RequestVerifier:
    """Checks an incoming signed request as docs/protocol.md §3 lists, in that order.

    ``lookup(serverId)`` answers the certificate of a server that is status 0 in our directory,
    or None.
    """

    server_id: str
    ca: Certificate
    lookup: CertLookup
    clock: Any  # IReactorTime
    window_ms: int = WINDOW_MS
    nonces: Any = attrs.field(factory=NonceCache)  # or StoredNonces (several processes)
    """Or anything with its ``check_and_add`` answering a Deferred (cluster.StoredNonces)."""
    not_before_ms: int | None = None
    """After a start without the nonces of the previous run (a crash), requests signed before
    the start are refused: one of them could be a replay of a request the previous run took."""

    def now_ms(self) -> int:
        return now_ms(self.clock)

    async def verify(self, method: str, target: str, authorization: str | None, body: bytes,
                     tls_server_id: str | None) -> SignedRequest:
        req = parse_authorization(authorization)
        cert = await self.lookup(req.origin)
        if cert is None:
            raise SignatureError("origin %r is not an active server" % req.origin)
        try:
            verify_issued(cert, self.ca, server_id=req.origin)
        except PKIError as e:
            raise SignatureError("origin certificate: %s" % e) from None
        data = string_to_sign(method, target, req.origin, req.destination, req.ts, req.nonce,
                              body)
        if not await off_reactor(self.clock, cert.public_key.verify, req.sig, data):
            raise SignatureError("signature does not verify")
        if tls_server_id is None:
            raise SignatureError("a signed call needs a TLS client certificate")
        if tls_server_id != req.origin:
            raise SignatureError("TLS client certificate names %r, not origin %r"
                                 % (tls_server_id, req.origin))
        if req.destination != self.server_id:
            raise SignatureError("destination %r is not this server" % req.destination)
        now = self.now_ms()
        if abs(now - req.ts) > self.window_ms:
            raise SignatureError("ts is outside the replay window")
        if self.not_before_ms is not None and req.ts < self.not_before_ms:
            raise SignatureError("ts is before this server started (retry with a new one)")
        fresh = self.nonces.check_and_add(req.origin, req.nonce, now, req.ts)
        if not isinstance(fresh, bool):  # a store shared by several processes answers later
            fresh = await fresh
        if not fresh:
            raise SignatureError("nonce was already used")
        return req


class NonceKeeper(Service):
    """Keeps a verifier's nonces across a clean restart in ``path`` (written at stop, read and
    removed at start).  Without that file (the previous run crashed, or this is the first)
    the verifier refuses requests signed before the start instead.  A role puts it in the
    service tree before its listener, so it stops after it."""

    def __init__(self, verifier: RequestVerifier, path: str) -> None:
        self.verifier, self.path = verifier, path

    def startService(self) -> None:
        super().startService()
        self.load()

    def stopService(self):
        super().stopService()
        self.save()

    def load(self) -> None:
        now = self.verifier.now_ms()
        try:
            with open(self.path, "rb") as f:
                entries = json.loads(f.read())
            os.unlink(self.path)
        except (OSError, ValueError):
            self.verifier.not_before_ms = now
            return
        self.verifier.nonces.restore(entries, now)
        self.verifier.not_before_ms = None

    def save(self) -> None:
        data = json.dumps(self.verifier.nonces.entries()).encode()
        partial = self.path + ".part"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, self.path)
