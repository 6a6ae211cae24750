"""Klein glue shared by every REST interface: paths, JSON in and out, the signature guard, and
the one place where failures become the profile's JSON error bodies."""

from __future__ import annotations

import functools
import inspect
import json

from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger
from werkzeug.exceptions import HTTPException

from .crypto import sm2
from .crypto.signing import RequestVerifier, SignatureError, parse_authorization, sign_response
from .crypto.tls import peer_server_id
from .wire.errors import ApiError, BadRequest, Style, TooLarge, error_body

__all__ = ["JSON_TYPE", "sns_route", "read_json", "Endpoints", "endpoint", "install_errors"]

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


async def _run(self, handler, signed, request, args, kwargs) -> bytes:
    nonce = ""
    status = 200
    try:
        if signed:
            raw = request.getHeader(b"authorization")
            auth = raw.decode("latin-1") if raw is not None else None
            try:
                nonce = parse_authorization(auth).nonce
            except SignatureError:
                pass
            if self.verifier is None:
                raise SignatureError("this listener takes no signed requests")
            request.signed = await self.verifier.verify(
                request.method.decode("ascii"), request.uri.decode("latin-1"), auth,
                _body(request), peer_server_id(request))
            await self.authorize(request)
        result = handler(self, request, *args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        status = request.code
    except Exception as exc:
        if not isinstance(exc, (ApiError, SignatureError)):
            log.failure("unhandled error in {path}",
                        path=request.path.decode("latin-1", "replace"))
        status, result = _failure_body(self.style, exc)
    body = _dump(result)
    request.setResponseCode(status)
    request.setHeader(b"content-type", JSON_TYPE)
    if signed and self.signing_key is not None:
        ts = int(self.verifier.clock.seconds() * 1000) if self.verifier else 0
        request.setHeader(b"x-imfed-signature",
                          sign_response(self.signing_key, status, nonce, self.server_id, ts, body))
    return body
