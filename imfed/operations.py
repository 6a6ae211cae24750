"""The operator's listener (``[metrics] listen``, plain HTTP, loopback): ``GET /health`` and
``GET /metrics`` for every role of the process (docs/operations.md).

``/health`` answers 200 when every role can work, 503 when one cannot (its store is not
writable, its certificate has expired), with what each check found; a management server that
cannot be reached is reported but is not a failure (a node goes on federating from the
directory it has).  ``/metrics`` is Prometheus' text format (imfed/metrics.py); the gauges that
describe the stores are read just before each scrape."""

from __future__ import annotations

import ipaddress
import json

from klein import Klein
from werkzeug.exceptions import NotFound
from twisted.web.resource import Resource
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .metrics import REGISTRY
from .storage import days_left, writable

__all__ = ["OperatorApi", "operator_site", "store_and_certificates", "host_allowed"]


async def store_and_certificates(db, clock, certificates: dict) -> tuple[bool, dict]:
    """The checks every role makes: its store writable in time, and each of its certificates
    ({name: certificate}) with days left.  (ok, what was found)."""
    checks: dict = {"database": await writable(db, clock)}
    ok = checks["database"] == "writable"
    for name, cert in certificates.items():
        checks[name] = round(days_left(cert, clock), 1)
        ok = ok and checks[name] > 0
    return ok, checks


def _host_of(value: bytes) -> str:
    """The host of a Host header, without its port (``[::1]:9100`` gives ``::1``)."""
    text = value.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1:].partition("]")[0]
    return text.rpartition(":")[0] if text.count(":") == 1 else text


def host_allowed(value: bytes | None, names: tuple[str, ...]) -> bool:
    """An IP literal, ``localhost`` or one of ``names`` (``[metrics] hosts``): a page in a
    browser whose domain an attacker points at 127.0.0.1 (DNS rebinding) names its domain,
    and is refused."""
    if not value:
        return False
    host = _host_of(value)
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return host == "localhost" or host in names


class _HostChecked(Resource):
    """Every request's Host header is checked before the routes see it."""

    isLeaf = True

    def __init__(self, inner, hosts: tuple[str, ...]) -> None:
        super().__init__()
        self.inner, self.hosts = inner, hosts

    def render(self, request):
        if host_allowed(request.getHeader(b"host"), self.hosts):
            return self.inner.render(request)
        request.setResponseCode(403)
        request.setHeader(b"content-type", b"application/json;charset=utf-8")
        return (b'{"code":1,"error":"the Host header must be an IP address, localhost or one '
                b'of [metrics] hosts","errcode":"bad_host"}')


class OperatorApi:
    app = Klein()

    def __init__(self, roles, hosts: tuple[str, ...] = (), admin=None) -> None:
        """``roles()``: the roles now running, objects with ``server_id``, ``async health()
        -> (ok, checks)`` and ``async collect_metrics()``; ``hosts``: DNS names the listener
        may be reached by besides IP addresses and localhost; ``admin``: the admin API
        (imfed/adminapi.py) served under /admin/v1/."""
        self.roles, self.hosts = roles, tuple(h.lower() for h in hosts)
        self.admin = admin

    def resource(self):
        return _HostChecked(self.app.resource(), self.hosts)

    @app.route("/health", methods=["GET"])
    async def health(self, request):
        ok, report = True, {}
        for role in self.roles():
            try:
                role_ok, checks = await role.health()
            except Exception as e:  # a check that fails is the answer, not a 500
                role_ok, checks = False, {"error": str(e) or type(e).__name__}
            ok = ok and role_ok
            report[role.server_id] = dict(checks, ok=role_ok)
        request.setResponseCode(200 if ok else 503)
        request.setHeader(b"content-type", b"application/json;charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps({"status": "ok" if ok else "failing", "servers": report},
                          ensure_ascii=False).encode("utf-8")

    @app.route("/metrics", methods=["GET"])
    async def metrics(self, request):
        for role in self.roles():
            await role.collect_metrics()
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(REGISTRY)

    @app.route("/admin/v1/", branch=True)
    def admin_api(self, request):
        if self.admin is None:
            raise NotFound()
        return self.admin.app.resource()

    @app.handle_errors(Exception)
    def _errors(self, request, failure):
        request.setResponseCode(getattr(failure.value, "code", None) or 500)
        request.setHeader(b"content-type", b"application/json;charset=utf-8")
        return b'{"code":1,"error":"no such path: /health, /metrics and /admin/v1/ only",' \
               b'"errcode":"no_such_path"}'


def operator_site(roles, hosts: tuple[str, ...] = (), admin_token: str | None = None):
    """The operator listener's site: /health, /metrics and the admin API, whose callers are
    checked before a byte of a body is read (imfed/adminapi.py)."""
    from .adminapi import AdminApi, body_limit
    from .config import Limits
    from .listening import http_site
    from .wire.errors import Style

    admin = AdminApi(roles, admin_token)
    return http_site(OperatorApi(roles, hosts, admin).resource(), Limits(), Style.INTERCONNECT,
                     body_limit, access_log=False, gate=admin.gate)
