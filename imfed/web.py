"""Klein glue shared by every REST interface: paths, JSON in and out, the signature guard, and
the one place where failures become the profile's JSON error bodies."""

from __future__ import annotations

import errno
import functools
import inspect
import json
import os
import re
import sqlite3
import time

from twisted.internet.defer import CancelledError, ensureDeferred
from twisted.logger import Logger
from twisted.protocols.basic import FileSender
from werkzeug.exceptions import HTTPException

from .crypto import sm2
from .crypto.signing import (RequestVerifier, SignatureError, off_reactor, parse_authorization,
                             sign_response)
from .crypto.tls import peer_server_id
from .metrics import REQUEST_SECONDS, REQUESTS
from .wire.paths import SNS
from .wire.errors import ApiError, BadRequest, Style, TooLarge, error_body
from .wire.fields import ascii_digits
from .timers import now_ms
from .storage.outage import OUTAGE, store_unavailable

__all__ = ["JSON_TYPE", "SIGNED", "SESSION", "bearer", "sns_route", "read_json", "Endpoints",
           "endpoint", "install_errors", "verify_signed", "sign_answer", "render_failure",
           "send_file", "body_size", "parse_json", "query_arg", "required_arg", "int_arg"]

log = Logger()

JSON_TYPE = b"application/json;charset=utf-8"
DEFAULT_MAX_BODY = 1 << 20


def sns_route(app, path, methods=None):
    """Register an endpoint of imfed/wire/paths.py (or a path relative to ``/sns/``) at
    ``/sns/<path>`` and ``/sns/v1/<path>``, each with and without a trailing slash
    (docs/protocol.md §2), for its method (or ``methods``)."""
    if not isinstance(path, str):
        methods = methods or (path.method,)
        path = path.path
    methods = methods or ("POST",)
    path = path.strip("/")

    def deco(f):
        for prefix in (SNS, SNS + "v1/"):
            for suffix in ("", "/"):
                f = app.route(prefix + path + suffix, methods=list(methods), strict_slashes=False,
                              endpoint=f.__name__)(f)
        return f

    return deco


MAX_DEPTH = 32
"""JSON nested deeper than this is refused (no message of the profile nests past 5)."""


def read_json(request, limit: int = DEFAULT_MAX_BODY) -> dict:
    """The request body as a JSON object: 413 over ``limit`` (measured before it is read),
    400 for anything but an object of at most MAX_DEPTH levels."""
    if body_size(request) > limit:
        raise TooLarge("request body over %d bytes" % limit)
    body = _body(request)
    if not body.strip():
        raise BadRequest("request body must be a JSON object", "malformed_json")
    value = parse_json(body)
    if not isinstance(value, dict):
        raise BadRequest("request body must be a JSON object", "malformed_json")
    return value


def parse_json(body: bytes):
    """JSON text to a value, or BadRequest: not UTF-8, not JSON, or nested too deep."""
    if _too_deep(body):
        raise BadRequest("request body nests deeper than %d levels" % MAX_DEPTH,
                         "malformed_json")
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest("request body is not valid UTF-8 JSON", "malformed_json") from None
    if b"\\u" in body and not _storable(value):
        # Only an escape can put these in a string (raw ones are not UTF-8, or not JSON).
        raise BadRequest("request body holds a character no text may (U+0000, or half of a "
                         "UTF-16 surrogate pair)", "bad_text")
    return value


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(value) -> bool:
    """No string in ``value`` (keys included) holds NUL, which PostgreSQL cannot store, or a
    lone surrogate, which is not Unicode text at all (it cannot be written as UTF-8)."""
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is None
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    return True


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(rb"[][{}]")


def _too_deep(body: bytes) -> bool:
    """Whether brackets outside strings nest past MAX_DEPTH (a cheap scan before parsing:
    json.loads recurses, and a deep document would reach Python's recursion limit)."""
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return False
    depth = 0
    for m in _BRACKET.finditer(_STRING.sub(b'""', body)):
        if m.group() in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                return True
        else:
            depth -= 1
    return False


def body_size(request) -> int:
    """The size of the request body received, without reading it."""
    content = request.content
    if content is None:
        return 0
    here = content.tell()
    size = content.seek(0, os.SEEK_END)
    content.seek(here)
    return size


def query_arg(request, name: str, default: str | None = None) -> str | None:
    """A query parameter as text; ``default`` when absent, 400 when not UTF-8."""
    values = request.args.get(name.encode())
    if not values:
        return default
    try:
        return values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("%s is not UTF-8" % name, "bad_" + name) from None


def required_arg(request, name: str) -> str:
    value = query_arg(request, name)
    if value is None:
        raise BadRequest("query parameter %s is required" % name, "missing_" + name)
    return value


def int_arg(request, name: str, default: int, maximum: int) -> int:
    value = query_arg(request, name)
    if value is None:
        return default
    if not ascii_digits(value) or len(value) > 19 or int(value) > maximum:
        raise BadRequest("%s must be an integer up to %d" % (name, maximum), "bad_" + name)
    return int(value)


def _body(request) -> bytes:
    content = request.content
    if content is None:
        return b""
    content.seek(0)
    data = content.read()
    content.seek(0)
    return data


def _dump(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _failure_body(style: Style, exc: BaseException) -> tuple[int, dict]:
    if isinstance(exc, ApiError):
        return exc.status, error_body(style, exc.message, exc.errcode)
    if isinstance(exc, SignatureError):
        return 401, error_body(style, str(exc), "bad_signature")
    if isinstance(exc, HTTPException):
        code = exc.code or 500
        if code < 400:
            code = 404  # routing's redirects (a path with "//"): we do not redirect
        names = {404: "no_such_path", 405: "method_not_allowed"}
        return code, error_body(style, exc.name, names.get(code, "http_%d" % code))
    if _disk_full(exc):
        return 507, error_body(style, "no room left on this server's disk", "disk_full")
    if store_unavailable(exc):
        return 503, error_body(style, "the store is unavailable: try again shortly",
                               "store_unavailable")
    return 500, error_body(style, "internal error", "internal")


def _disk_full(exc: BaseException) -> bool:
    """No room to write: the filesystem's, SQLite's (SQLITE_FULL) or PostgreSQL's (53100)."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.OperationalError):
        return "disk is full" in str(exc)
    return getattr(exc, "sqlstate", None) == "53100"


def _log_unexpected(request, exc: BaseException, failure=None) -> None:
    """A line for what no endpoint meant to answer: a full disk as a warning, anything else
    with its traceback (``failure``, or the exception being handled)."""
    if isinstance(exc, (ApiError, SignatureError, HTTPException)):
        return
    if store_unavailable(exc):
        OUTAGE.began(exc)  # one line an outage, not a traceback a request
        return
    path = request.path.decode("latin-1", "replace")
    if _disk_full(exc):
        log.warn("no room left on the disk ({error}) in {path}", error=exc, path=path)
    else:
        log.failure("unhandled error in {path}", failure=failure, path=path)


def _error_answer(request, style: Style, exc: BaseException) -> tuple[int, bytes]:
    """(status, JSON body) for ``exc``, with its status and headers set on ``request``."""
    status, result = _failure_body(style, exc)
    body = _dump(result)
    if isinstance(exc, ApiError):
        for name, value in getattr(exc, "headers", {}).items():
            request.setHeader(name, value)
    elif status == 503:
        request.setHeader(b"retry-after", b"5")
    request.setResponseCode(status)
    _json_headers(request, body)
    return status, body


class Endpoints:
    """Base of a Klein route class.  Subclasses set ``app``, ``style``, and for signed routes
    ``verifier`` (a RequestVerifier), ``signing_key`` and ``server_id``."""

    style: Style = Style.INTERCONNECT
    interface = "federation"
    """The interface's name in metrics: federation, client or management."""
    verifier: RequestVerifier | None = None
    signing_key: sm2.PrivateKey | None = None
    server_id: str = ""
    max_body: int = DEFAULT_MAX_BODY

    def resource(self):
        return self.app.resource()

    async def authorize(self, request) -> None:
        """After a signed request verified: refuse it by policy (raise Forbidden), or not."""

    async def session_user(self, request):
        """The user of a SESSION endpoint's request (Unauthorized otherwise)."""
        raise NotImplementedError


def install_errors(app) -> None:
    """Routing failures (unknown path, wrong method) and anything that escapes an endpoint
    become JSON: the one error-mapping place, beside ``_failure_body``."""

    @app.handle_errors(Exception)
    def _errors(self, request, failure):
        exc = failure.value
        _log_unexpected(request, exc, failure)
        return _error_answer(request, getattr(self, "style", Style.INTERCONNECT), exc)[1]


SIGNED = "signed"
"""An endpoint for other servers: the request's signature is verified (401 otherwise) and the
endpoint class's ``authorize`` applied; the route is given the calling serverId as ``origin``,
and the answer is signed whatever its status."""
SESSION = "session"
"""An endpoint for a logged-in user: ``Authorization: Bearer <token>`` is looked up with the
endpoint class's ``session_user`` (401 otherwise); the route is given the user as ``user``."""


def endpoint(auth: str | None = None, raw: bool = False):
    """Make a route method whose answer (a dict) becomes JSON, with every failure, wherever it
    arises, the profile's JSON error body (the one error path).  ``auth`` declares who may
    call it (None: anyone; SIGNED; SESSION); a ``raw`` route writes its own answer (a file, an
    event stream) and returns bytes."""

    def deco(handler):
        @functools.wraps(handler)
        def wrapper(self, request, *args, **kwargs):
            return ensureDeferred(_run(self, handler, auth, raw, request, args, kwargs))

        return wrapper

    return deco


def bearer(request) -> str:
    """The token of ``Authorization: Bearer <token>``, or ""."""
    value = request.getHeader(b"authorization") or b""
    scheme, _, token = value.decode("latin-1").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def request_nonce(request) -> str:
    """The nonce of a request's Authorization header, or "" (responses are signed over it)."""
    raw = request.getHeader(b"authorization")
    try:
        return parse_authorization(raw.decode("latin-1") if raw is not None else None).nonce
    except SignatureError:
        return ""


async def verify_signed(self, request) -> None:
    """The guard: verify the request's signature (SignatureError) and apply the endpoint
    class's policy (``authorize``); the verified request is ``request.signed``."""
    raw = request.getHeader(b"authorization")
    if self.verifier is None:
        raise SignatureError("this listener takes no signed requests")
    request.signed = await self.verifier.verify(
        request.method.decode("ascii"), request.uri.decode("latin-1"),
        raw.decode("latin-1") if raw is not None else None, _body(request),
        peer_server_id(request))
    await self.authorize(request)


async def sign_answer(self, request, status: int, body_sm3: str | None = None,
                      body: bytes = b"") -> None:
    """Set X-IMFed-Signature on the answer to a signed request (over ``body``, or over a
    streamed body whose SM3 is known beforehand)."""
    args = (self.signing_key, status, request_nonce(request), self.server_id)
    if self.verifier is None:
        header = sign_response(*args, 0, body, body_sm3)
    else:
        reactor = self.verifier.clock
        header = await off_reactor(reactor, sign_response, *args,
                                   now_ms(reactor), body, body_sm3)
    request.setHeader(b"x-imfed-signature", header)


async def render_failure(self, request, exc: BaseException, signed: bool) -> bytes:
    """The one place an exception becomes the answer: status, JSON body, signature."""
    _log_unexpected(request, exc)
    status, body = _error_answer(request, self.style, exc)
    if signed and self.signing_key is not None:
        await sign_answer(self, request, status, body=body)
    return body


CLIENT_CLOSED = 499
"""The status counted (never sent) for a request whose client went away before its answer."""


def _gone(request) -> bool:
    return bool(getattr(request, "_disconnected", False)) or request.channel is None


def _json_headers(request, body: bytes) -> None:
    """A JSON answer's type and length (a length known up front: no chunked framing for the
    peer to take apart)."""
    request.setHeader(b"content-type", JSON_TYPE)
    request.setHeader(b"content-length", b"%d" % len(body))


async def _run(self, handler, auth, raw, request, args, kwargs) -> bytes:
    started = time.monotonic()
    try:
        return await _answer(self, handler, auth, raw, request, args, kwargs)
    finally:
        name = handler.__name__
        REQUESTS.labels(self.server_id, self.interface, name, str(request.code),
                        getattr(request, "who", "-") if auth == SIGNED else "-").inc()
        REQUEST_SECONDS.labels(self.server_id, self.interface, name).observe(
            time.monotonic() - started)


async def _answer(self, handler, auth, raw, request, args, kwargs) -> bytes:
    signed = auth == SIGNED
    try:
        if signed:
            await verify_signed(self, request)
            kwargs["origin"] = request.who = request.signed.origin
        elif auth == SESSION:
            kwargs["user"] = user = await self.session_user(request)
            request.who = user.user_id
        result = handler(self, request, *args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
    except CancelledError:
        if _gone(request):
            # The client went away (a long poll it gave up on, say): nobody to answer, and
            # nothing went wrong here.  Counted as 499, as web servers count it.
            request.code = CLIENT_CLOSED
            return b""
        raise
    except Exception as exc:
        if _gone(request):
            request.code = CLIENT_CLOSED
            return b""
        return await render_failure(self, request, exc, signed)
    if OUTAGE.since is not None:
        OUTAGE.over()
    if raw:
        return result
    body = _dump(result)
    _json_headers(request, body)
    if signed and self.signing_key is not None:
        await sign_answer(self, request, request.code, body=body)
    return body


async def send_file(request, path: str, content_type: bytes = b"application/octet-stream"
                    ) -> bytes:
    """Stream a whole file as the answer (a producer reads it as the peer takes it: never
    whole in memory); answer b"" for Klein to finish the request."""
    size = os.path.getsize(path)
    request.setHeader(b"content-type", content_type)
    request.setHeader(b"content-length", b"%d" % size)
    if request.method == b"HEAD":
        return b""
    with open(path, "rb") as f:
        try:
            await FileSender().beginFileTransfer(f, request)
        except Exception:
            log.info("download of {path} ended early", path=path)
    return b""
