"""Registration and review (§5.3.1, §6.1, docs/protocol.md §4): what an application holds, and
what submitting, approving, rejecting, suspending and resuming do to the store.

Everything here runs as one write transaction on a cursor, from the daemon (applications
arriving over HTTPS) and from the operator CLI (decisions) alike.  Every step is audited, and
every approved change owes each status-0 node a receivenotify.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import socket

import attrs

from ..config import https_address
from ..crypto import pki
from ..crypto.sm3 import sm3_hex
from ..storage import transaction
from ..wire import fields
from ..wire.errors import BadRequest, Conflict, NotFound
from ..wire.records import ServerStatus
from . import store
from .store import Application, ServerRecord

__all__ = ["parse_apply", "parse_changes", "new_application", "submit", "approve", "reject",
           "set_status", "token_matches", "CHANGEABLE"]

_EMAIL = re.compile(r"^[^@\s\"<>]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
_MOBILE = re.compile(r"^\+?[0-9][0-9 -]{4,23}[0-9]$")

# Wire name -> (column, required in an application, max length)
_FIELDS = {
    "serverName": ("server_name", True, 128),
    "serverAddress": ("server_address", True, 255),
    "serverType": ("server_type", False, 64),
    "area": ("area", False, 64),
    "country": ("country", False, 64),
    "contactName": ("contact_name", True, 64),
    "contactEmail": ("contact_email", True, 254),
    "contactMobile": ("contact_mobile", True, 32),
    "ownerId": ("owner_id", False, 128),
}
CHANGEABLE = ("serverName", "serverAddress", "serverType", "area", "country", "contactName",
              "contactEmail", "contactMobile", "csr", "encCsr")
_CSRS = ("csr", "encCsr")


def _check_field(name: str, value: str) -> str:
    if name == "contactEmail" and not _EMAIL.match(value):
        raise BadRequest("contactEmail is not an e-mail address", "bad_contactEmail")
    if name == "contactMobile" and not _MOBILE.match(value):
        raise BadRequest("contactMobile is not a phone number", "bad_contactMobile")
    if name == "serverAddress":
        try:
            https_address(value)
        except ValueError as e:
            raise BadRequest("serverAddress %s" % e, "bad_serverAddress") from None
        return value.rstrip("/")
    return value


def _csr(value, server_id: str, name: str = "csr") -> pki.CertificateRequest:
    code = "bad_" + name
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("%s must be a PEM PKCS#10 request" % name, code)
    if len(value) > 16384:
        raise BadRequest("%s is too long" % name, code)
    try:
        request = pki.CertificateRequest.from_pem(value)
    except pki.PKIError as e:
        raise BadRequest("%s: %s" % (name, e), code) from None
    if request.common_name != server_id:
        raise BadRequest("%s names %r, not serverId %r" % (name, request.common_name,
                                                            server_id), "csr_cn_mismatch")
    return request


@attrs.frozen
class Requests:
    """The key(s) an application asks the CA to certify: the signing key (``csr``) and TLCP's
    encryption key (``encCsr``), each optional in a modification."""

    sign: pki.CertificateRequest | None = None
    enc: pki.CertificateRequest | None = None


def _requests(body: dict, server_id: str) -> Requests:
    sign = _csr(body["csr"], server_id) if "csr" in body else None
    enc = _csr(body["encCsr"], server_id, "encCsr") if "encCsr" in body else None
    if sign is not None and enc is not None and sign.spki_der == enc.spki_der:
        raise BadRequest("encCsr must be for a key of its own, not the signing key",
                         "bad_encCsr")
    return Requests(sign, enc)


def parse_apply(body: dict) -> tuple[str, dict, Requests]:
    """(serverId, fields by wire name, CSRs) of a valid application; BadRequest otherwise."""
    server_id = fields.server_id(body.get("serverId"))
    data = {}
    for name, (_, required, max_len) in _FIELDS.items():
        value = fields.text(body, name, required=required, max_len=max_len)
        data[name] = _check_field(name, value) if value else value
    unknown = sorted(set(body) - set(_FIELDS) - {"serverId", *_CSRS})
    if unknown:
        raise BadRequest("unknown field %s" % unknown[0], "unknown_field")
    if body.get("csr") is None:
        _csr(None, server_id)  # required: the same error as a malformed one
    return server_id, data, _requests(body, server_id)


def parse_changes(body: dict, server_id: str) -> tuple[dict, Requests]:
    """The ``changes`` of a modification; serverId can never change (§6.1.2)."""
    changes = body.get("changes")
    if not isinstance(changes, dict) or not changes:
        raise BadRequest("changes must be a non-empty object", "bad_changes")
    if "serverId" in changes:
        raise BadRequest("serverId cannot be changed (§6.1.2)", "bad_changes")
    unknown = sorted(set(changes) - set(CHANGEABLE))
    if unknown:
        raise BadRequest("%s cannot be changed" % unknown[0], "bad_changes")
    data = {}
    for name in changes:
        if name in _CSRS:
            continue
        _, required, max_len = _FIELDS[name]
        value = fields.text(changes, name, required=required, max_len=max_len)
        data[name] = _check_field(name, value) if value else value
    return data, _requests(changes, server_id)


def _pem(request: pki.CertificateRequest | None) -> str | None:
    return request.pem.decode("ascii") if request is not None else None


def new_application(kind: str, server_id: str, submitted_by: str, now_ms: int, data: dict,
                    requests: Requests = Requests()) -> tuple[Application, str]:
    """A pending application and the token its submitter may poll it with."""
    token = secrets.token_hex(16)
    app = Application(application_id=secrets.token_hex(12), kind=kind, server_id=server_id,
                      status="pending", submitted_at=now_ms, submitted_by=submitted_by,
                      token_hash=sm3_hex(token.encode()), data=data,
                      csr_pem=_pem(requests.sign), enc_csr_pem=_pem(requests.enc))
    return app, token


def token_matches(app: Application, token: str) -> bool:
    return secrets.compare_digest(app.token_hash, sm3_hex(token.encode("utf-8", "replace")))


@transaction
def submit(cur, app: Application) -> None:
    """Record a pending application after the checks that need the store, under its lock."""
    existing = store.get_server(cur, app.server_id)
    if app.kind == "apply":
        _no_lookalike(cur, app.server_id)
        if existing is not None and existing.status == ServerStatus.DEREGISTERED:
            raise Conflict("serverId %s was deregistered and is never issued again"
                           % app.server_id, "server_id_retired")
        if existing is not None:
            raise Conflict("serverId %s is taken" % app.server_id, "server_id_taken")
    elif existing is None or existing.status == ServerStatus.DEREGISTERED:
        raise NotFound("no active server %s" % app.server_id, "unknown_server")
    if store.pending_for(cur, app.server_id) is not None:
        raise Conflict("an application for %s is already waiting for review" % app.server_id,
                       "application_pending")
    if app.data.get("serverAddress"):
        _address_free(cur, app.data["serverAddress"], app.server_id)
    store.insert_application(cur, app)
    detail = {"application": app.application_id}
    if app.csr_pem:
        detail["csr_key_sm3"] = sm3_hex(pki.CertificateRequest.from_pem(app.csr_pem).spki_der)
    if app.enc_csr_pem:
        detail["enc_csr_key_sm3"] = sm3_hex(
            pki.CertificateRequest.from_pem(app.enc_csr_pem).spki_der)
    store.audit(cur, app.submitted_at, app.submitted_by, "submit-" + app.kind, app.server_id,
                app.data.get("reason", ""), **detail, data=app.data)


def _no_lookalike(cur, server_id: str, application_id: str | None = None) -> None:
    """serverIds are compared without case: ``NODE-A`` beside ``node-a`` would let one pass
    for the other in a log, a list or an operator's eyes.  Deregistered ones count too."""
    cur.execute("SELECT server_id FROM servers WHERE lower(server_id) = lower(?) AND "
                "server_id != ?", (server_id, server_id))
    row = cur.fetchone()
    if row is None:
        cur.execute("SELECT server_id FROM applications WHERE kind = 'apply' AND status = "
                    "'pending' AND lower(server_id) = lower(?) AND server_id != ? AND "
                    "application_id != ?", (server_id, server_id, application_id or ""))
        row = cur.fetchone()
    if row is not None:
        raise Conflict("serverId %s differs only in case from %s" % (server_id, row[0]),
                       "server_id_lookalike")


def _address_key(address: str) -> tuple[str, int]:
    """(host, port) as the machine it names: every spelling of one IPv4 address (``127.1``,
    ``2130706433``, ``0x7f.0.0.1``, ``017700000001``, ``127.000.000.001``, ``::ffff:127.0.0.1``)
    is its dotted quad, ``localhost`` is 127.0.0.1, names are compared without case or a final
    dot."""
    host, port = https_address(address)
    return canonical_host(host), port


def canonical_host(host: str) -> str:
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        mapped = getattr(ip, "ipv4_mapped", None)
        return str(mapped or ip)
    if re.fullmatch(r"[0-9a-fx.]+", host) and not re.search(r"[g-wyz]", host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))  # the C library's lenient forms
        except OSError:
            pass
    return host


def _address_free(cur, address: str, server_id: str, application_id: str | None = None) -> None:
    """No other server, registered (active or suspended) or waiting for review, is at this
    host and port: ``user@host:port`` must resolve to one server (§6.2.2)."""
    key = _address_key(address)
    for other in store.list_servers(cur):
        if other.server_id != server_id and other.status != ServerStatus.DEREGISTERED and \
                _address_key(other.server_address) == key:
            raise Conflict("%s is the address of server %s" % (address, other.server_id),
                           "address_taken")
    for app in store.list_applications(cur):
        if app.server_id != server_id and app.application_id != application_id and \
                app.data.get("serverAddress") and \
                _address_key(app.data["serverAddress"]) == key:
            raise Conflict("%s is the address in %s's application %s"
                           % (address, app.server_id, app.application_id), "address_taken")


def _pending(cur, application_id: str) -> Application:
    app = store.get_application(cur, application_id)
    if app is None:
        raise NotFound("no application %s" % application_id, "unknown_application")
    if app.status != "pending":
        raise Conflict("application %s is already %s" % (application_id, app.status),
                       "application_decided")
    return app


def _apply_fields(record: ServerRecord, data: dict) -> ServerRecord:
    return attrs.evolve(record, **{_FIELDS[k][0]: v for k, v in data.items()})


def _issue(cur, ca: pki.CertificateAuthority, spki_der: bytes, server_id: str, address: str,
           days: int, operator: str, now_ms: int, reason: str,
           kind: str = pki.SIGN) -> pki.Certificate:
    host, _ = https_address(address)
    cert = ca.certify_key(spki_der, server_id, host, days, kind=kind)
    store.audit(cur, now_ms, operator, "issue-certificate", server_id, reason,
                serial="%x" % cert.serial, fingerprint=cert.fingerprint, host=host,
                not_after=cert.not_after.isoformat(), usage=kind)
    return cert


def _spki(pem: str | None) -> bytes | None:
    return pki.CertificateRequest.from_pem(pem).spki_der if pem else None


def _text(cert: pki.Certificate | None) -> str | None:
    return cert.pem.decode("ascii") if cert is not None else None


@transaction
def approve(cur, application_id: str, ca: pki.CertificateAuthority, operator: str,
            days: int, now_ms: int, note: str = "") -> Application:
    """Approve: a new server gets status 0 and a certificate; a modification is applied (a new
    certificate for a new CSR, or for the same key at a new host); a deregistration retires the
    serverId for good.  Every status-0 node is then owed a notification."""
    app = _pending(cur, application_id)
    server = store.get_server(cur, app.server_id)
    cert = enc = None
    if app.data.get("serverAddress"):
        _address_free(cur, app.data["serverAddress"], app.server_id, application_id)
    if app.kind == "apply":
        if server is not None:
            raise Conflict("serverId %s is taken" % app.server_id, "server_id_taken")
        _no_lookalike(cur, app.server_id, application_id)
        request = pki.CertificateRequest.from_pem(app.csr_pem)
        cert = _issue(cur, ca, request.spki_der, app.server_id, app.data["serverAddress"], days,
                      operator, now_ms, note)
        if app.enc_csr_pem:
            enc = _issue(cur, ca, _spki(app.enc_csr_pem), app.server_id,
                         app.data["serverAddress"], days, operator, now_ms, note, pki.ENC)
        blank = ServerRecord(app.server_id, "", "", "", "", "", "", "", "", "", 0, "", "")
        server = attrs.evolve(_apply_fields(blank, app.data), cert_pem=cert.pem.decode("ascii"),
                              cert_fingerprint=cert.fingerprint, enc_cert_pem=_text(enc))
    elif app.kind == "modify":
        if server is None or server.status == ServerStatus.DEREGISTERED:
            raise Conflict("server %s is no longer registered" % app.server_id, "unknown_server")
        old_host = https_address(server.server_address)[0]
        server = _apply_fields(server, app.data)
        moved = https_address(server.server_address)[0] != old_host
        # A new key for each CSR; the same key at a new host where only the address changed
        # (the certificates must name it).
        spki = _spki(app.csr_pem)
        if spki is None and moved:
            spki = pki.Certificate.from_pem(server.cert_pem).spki_der
        enc_spki = _spki(app.enc_csr_pem)
        if enc_spki is None and moved and server.enc_cert_pem:
            enc_spki = pki.Certificate.from_pem(server.enc_cert_pem).spki_der
        if spki is not None:
            cert = _issue(cur, ca, spki, app.server_id, server.server_address, days,
                          operator, now_ms, note)
            server = attrs.evolve(server, cert_pem=cert.pem.decode("ascii"),
                                  cert_fingerprint=cert.fingerprint)
        if enc_spki is not None:
            enc = _issue(cur, ca, enc_spki, app.server_id, server.server_address, days,
                         operator, now_ms, note, pki.ENC)
            server = attrs.evolve(server, enc_cert_pem=_text(enc))
    else:  # deregister
        if server is None or server.status == ServerStatus.DEREGISTERED:
            raise Conflict("server %s is no longer registered" % app.server_id, "unknown_server")
        server = attrs.evolve(server, status=2)
    store.put_server(cur, server, now_ms)
    store.decide(cur, application_id, "approved", operator, now_ms, note, _text(cert),
                 _text(enc))
    store.audit(cur, now_ms, operator, "approve-" + app.kind, app.server_id, note,
                application=application_id)
    store.enqueue_notifications(cur, app.server_id, now_ms)
    return store.get_application(cur, application_id)


@transaction
def reject(cur, application_id: str, operator: str, reason: str, now_ms: int) -> Application:
    if not reason.strip():
        raise BadRequest("a rejection needs a reason", "missing_reason")
    app = _pending(cur, application_id)
    store.decide(cur, application_id, "rejected", operator, now_ms, reason)
    store.audit(cur, now_ms, operator, "reject-" + app.kind, app.server_id, reason,
                application=application_id)
    return store.get_application(cur, application_id)


@transaction
def set_status(cur, server_id: str, status: int, operator: str, reason: str,
               now_ms: int) -> ServerRecord:
    """Suspend (1) or resume (0) a server."""
    server = store.get_server(cur, server_id)
    if server is None:
        raise NotFound("no server %s" % server_id, "unknown_server")
    if server.status == ServerStatus.DEREGISTERED:
        raise Conflict("server %s is deregistered for good" % server_id, "deregistered")
    if server.status == status:
        raise Conflict("server %s is already %s" % (server_id, _STATUS[status]), "no_change")
    server = store.put_server(cur, attrs.evolve(server, status=status), now_ms)
    store.audit(cur, now_ms, operator,
                "suspend" if status == ServerStatus.SUSPENDED else "resume", server_id, reason)
    store.enqueue_notifications(cur, server_id, now_ms)
    return server


_STATUS = {0: "active", 1: "suspended", 2: "deregistered"}


class Registrations:
    """The management interface's handler: what its routes do with applications and the
    registry, each a unit of work on the store."""

    def __init__(self, registry: store.RegistryStore) -> None:
        self.registry = registry

    def now_ms(self) -> int:
        return self.registry.now_ms()

    async def pending_count(self) -> int:
        return await self.registry.run(store.pending_count)

    async def submit(self, app: Application) -> None:
        await self.registry.run(submit, app)

    async def application(self, application_id: str) -> Application | None:
        return await self.registry.run(store.get_application, application_id)

    async def server(self, server_id: str) -> ServerRecord | None:
        return await self.registry.get(server_id)

    async def changed_since(self, last: int, server_ids: list[str] | None
                            ) -> tuple[list[dict], int]:
        return await self.registry.changed_since(last, server_ids)
