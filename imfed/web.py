"""Klein glue shared by every REST interface: paths, JSON in and out, the signature guard, and
the one place where failures become the profile's JSON error bodies."""

from __future__ import annotations

import functools
import inspect
import json
import os

from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger
from twisted.protocols.basic import FileSender
from twisted.web.server import Request
from werkzeug.exceptions import HTTPException

from .crypto import sm2
from .crypto.signing import (RequestVerifier, SignatureError, off_reactor, parse_authorization,
                             sign_response)
from .crypto.tls import peer_server_id
from .wire.errors import ApiError, BadRequest, Style, TooLarge, error_body

__all__ = ["JSON_TYPE", "sns_route", "read_json", "Endpoints", "endpoint", "install_errors",
           "verify_signed", "sign_answer", "render_failure", "JsonRequest", "limited_request",
           "send_file", "query_arg", "required_arg", "int_arg"]

log = Logger()

JSON_TYPE = b"application/json;charset=utf-8"
DEFAULT_MAX_BODY = 1 << 20


def sns_route(app, path: str, methods=("POST",)):
    """Register ``/sns/<path>`` and ``/sns/v1/<path>``, each with and without a trailing slash
    (PROFILE.md §2)."""
    path = path.strip("/")

    def deco(f):
        for prefix in ("/sns/", "/sns/v1/"):
            for suffix in ("", "/"):
                f = app.route(prefix + path + suffix, methods=list(methods), strict_slashes=False,
                              endpoint=f.__name__)(f)
        return f

    return deco


def read_json(request, limit: int = DEFAULT_MAX_BODY) -> dict:
    """The request body as a JSON object: 413 over ``limit``, 400 for anything but an object."""
    if getattr(request, "too_large", False):
        raise TooLarge("request body over %d bytes" % limit)
    body = _body(request)
    if len(body) > limit:
        raise TooLarge("request body over %d bytes" % limit)
    if not body.strip():
        raise BadRequest("request body must be a JSON object", "malformed_json")
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("request body is not valid UTF-8 JSON", "malformed_json") from None
    if not isinstance(value, dict):
        raise BadRequest("request body must be a JSON object", "malformed_json")
    return value


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
    if not value.isdigit() or int(value) > maximum:
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
        names = {404: "no_such_path", 405: "method_not_allowed"}
        return code, error_body(style, exc.name, names.get(code, "http_%d" % code))
    return 500, error_body(style, "internal error", "internal")


class Endpoints:
    """Base of a Klein route class.  Subclasses set ``app``, ``style``, and for signed routes
    ``verifier`` (a RequestVerifier), ``signing_key`` and ``server_id``."""

    style: Style = Style.INTERCONNECT
    verifier: RequestVerifier | None = None
    signing_key: sm2.PrivateKey | None = None
    server_id: str = ""
    max_body: int = DEFAULT_MAX_BODY

    def resource(self):
        return self.app.resource()

    async def authorize(self, request) -> None:
        """After a signed request verified: refuse it by policy (raise Forbidden), or not."""


def install_errors(app) -> None:
    """Routing failures (unknown path, wrong method) and anything that escapes an endpoint
    become JSON: the one error-mapping place, beside ``_failure_body``."""

    @app.handle_errors(Exception)
    def _errors(self, request, failure):
        exc = failure.value
        if not isinstance(exc, (ApiError, SignatureError, HTTPException)):
            log.failure("unhandled error in {path}", failure=failure,
                        path=request.path.decode("latin-1", "replace"))
        status, body = _failure_body(getattr(self, "style", Style.INTERCONNECT), exc)
        request.setResponseCode(status)
        request.setHeader(b"content-type", JSON_TYPE)
        return _dump(body)


def endpoint(signed: bool = False):
    """Make a route method that returns a dict answer JSON, with every failure as the profile's
    JSON body.  ``signed=True`` first verifies the request signature (401 otherwise), exposes it
    as ``request.signed``, and signs the response whatever its status."""

    def deco(handler):
        @functools.wraps(handler)
        def wrapper(self, request, *args, **kwargs):
            return ensureDeferred(_run(self, handler, signed, request, args, kwargs))

        return wrapper

    return deco


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
                                   int(reactor.seconds() * 1000), body, body_sm3)
    request.setHeader(b"x-imfed-signature", header)


async def render_failure(self, request, exc: BaseException, signed: bool) -> bytes:
    """The one place an exception becomes the answer: status, JSON body, signature."""
    if not isinstance(exc, (ApiError, SignatureError)):
        log.failure("unhandled error in {path}", path=request.path.decode("latin-1", "replace"))
    status, result = _failure_body(self.style, exc)
    body = _dump(result)
    request.setResponseCode(status)
    request.setHeader(b"content-type", JSON_TYPE)
    if signed and self.signing_key is not None:
        await sign_answer(self, request, status, body=body)
    return body


async def _run(self, handler, signed, request, args, kwargs) -> bytes:
    try:
        if signed:
            await verify_signed(self, request)
        result = handler(self, request, *args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        return await render_failure(self, request, exc, signed)
    body = _dump(result)
    request.setHeader(b"content-type", JSON_TYPE)
    if signed and self.signing_key is not None:
        await sign_answer(self, request, request.code, body=body)
    return body


class JsonRequest(Request):
    """Our requests never carry HTML forms: skip Twisted's form parsing of POST bodies, which
    parses every Content-Type with the email package (a sixth of a node's reactor time per
    federation request, by py-spy)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(*args, **kwargs)


def limited_request(max_bytes: int):
    """A Request class that stops keeping a body beyond ``max_bytes`` (bodies past 100 kB are
    spooled to a temporary file by Twisted, so nothing large is held in memory); the handler
    sees ``request.too_large`` and answers 413."""

    class LimitedRequest(JsonRequest):
        too_large = False
        _received = 0

        def handleContentChunk(self, data: bytes) -> None:
            self._received += len(data)
            if self._received > max_bytes:
                if not self.too_large:
                    self.too_large = True
                    self.content.seek(0)
                    self.content.truncate()
                return
            super().handleContentChunk(data)

    return LimitedRequest


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
