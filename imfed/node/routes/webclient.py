"""The web client's files (imfed/webclient, docs/webclient.md), as a browser wants them: the
page names its scripts and styles under ``/static/<version>/``, where ``version`` is a hash of
every file of the client, so a browser keeps them for a year without asking again and an
upgraded daemon's page names new ones; each file gzipped when the browser takes gzip, with an
ETag so that a page or an unversioned file asked again answers 304; the page's security
headers on all of them."""

from __future__ import annotations

import functools
import gzip
import hashlib
import re
from importlib import resources

import attrs

from ...wire.errors import NotFound

__all__ = ["serve_page", "serve_file", "version", "CSP"]

CSP = (b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       b"img-src 'self' blob:; media-src 'self' blob:; form-action 'self'; base-uri 'none'; "
       b"frame-ancestors 'none'")
"""No inline script, nothing from another origin, no framing (docs/webclient.md)."""

_TYPES = {"html": b"text/html;charset=utf-8", "js": b"text/javascript;charset=utf-8",
          "css": b"text/css;charset=utf-8", "svg": b"image/svg+xml"}
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*\.(html|js|css|svg)$")
_YEAR = b"public, max-age=31536000, immutable"


@attrs.frozen
class _Asset:
    kind: bytes
    body: bytes
    gzipped: bytes
    etag: bytes


def _folder():
    return resources.files("imfed").joinpath("webclient")


@functools.cache
def _names() -> tuple[str, ...]:
    return tuple(sorted(f.name for f in _folder().iterdir() if _NAME.match(f.name)))


@functools.cache
def version() -> str:
    """A hash of every file of the client: it changes when any of them does."""
    digest = hashlib.sha256()
    for name in _names():
        digest.update(name.encode() + b"\0" + _folder().joinpath(name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.cache
def _asset(name: str) -> _Asset | None:
    if name not in _names():
        return None
    body = _folder().joinpath(name).read_bytes()
    if name == "index.html":
        body = body.replace(b"{{version}}", version().encode())
    etag = b'"%s"' % hashlib.sha256(body).hexdigest()[:24].encode()
    return _Asset(_TYPES[name.rsplit(".", 1)[1]], body, gzip.compress(body, 9, mtime=0), etag)


def _send(request, asset: _Asset, cache: bytes) -> bytes:
    for header, value in ((b"content-type", asset.kind), (b"content-security-policy", CSP),
                          (b"x-content-type-options", b"nosniff"),
                          (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
                          (b"cache-control", cache), (b"etag", asset.etag),
                          (b"vary", b"accept-encoding")):
        request.setHeader(header, value)
    if asset.etag in (request.getHeader(b"if-none-match") or b"").replace(b" ", b"").split(b","):
        request.setResponseCode(304)
        return b""
    if b"gzip" in (request.getHeader(b"accept-encoding") or b"").lower():
        request.setHeader(b"content-encoding", b"gzip")
        return asset.gzipped
    return asset.body


def serve_page(request) -> bytes:
    """The page itself: asked again each time (``no-cache``), 304 when unchanged."""
    asset = _asset("index.html")
    assert asset is not None, "imfed/webclient/index.html is part of the package"
    return _send(request, asset, b"no-cache")


def serve_file(request, name: str, wanted_version: str | None = None) -> bytes:
    """One file of the client: kept a year under the current version; under another (a page
    from before an upgrade) or none, asked again each time.  404 for anything else."""
    asset = _asset(name) if name != "index.html" else None
    if asset is None:
        raise NotFound("no such file", "no_such_path")
    return _send(request, asset, _YEAR if wanted_version == version() else b"no-cache")
