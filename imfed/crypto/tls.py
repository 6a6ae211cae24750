"""The federation transport: mutual TLS with SM2 certificates and SM4 records (docs/crypto.md).

Every connection between servers, both ways, goes through Tongsuo's libssl (``_tongsuo.py``)
under Twisted's own TLS machinery (memory BIOs).  In order of preference:

- TLS 1.3 with ``TLS_SM4_GCM_SM3`` / ``TLS_SM4_CCM_SM3`` (RFC 8998: curveSM2, ``sm2sig_sm3``);
- TLCP 1.1 (GB/T 38636) with two certificates, signing and encryption: ``ECDHE_SM4_GCM_SM3``,
  ``ECDHE_SM4_CBC_SM3``, ``ECC_SM4_GCM_SM3``, ``ECC_SM4_CBC_SM3``.  A listener takes it on the
  same port (the first record's version says which); a client falls back to it when a peer
  refuses TLS 1.3 before answering it;
- the AES/ChaCha20 suites of TLS 1.3, only under the ``gm-preferred`` policy.

The library checks the chain against the federation CA.  On top of that, failing closed, our own
code checks every peer's leaf (docs/protocol.md §3): signed by the CA key under the default SM2
distinguishing ID, current, not a CA, and on the client side naming the expected serverId (CN)
and the host we dialled (subjectAltName); under TLCP also that the encryption certificate is one,
for the same subject.  Nothing outside ``imfed/crypto/`` knows which library speaks TLS.
"""

from __future__ import annotations

import ipaddress
import time
import weakref

import attrs
from OpenSSL import SSL as _pyssl
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import (
    IHandshakeListener,
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from ..metrics import TLS_HANDSHAKES, TLS_FAILURES
from . import _tongsuo
from .pki import ENC, SIGN, Certificate, PKIError, load_pem_certificate, verify_issued

__all__ = [
    "POLICIES",
    "GM_ONLY",
    "GM_PREFERRED",
    "TLSIdentity",
    "ServerTLS",
    "PeerPolicy",
    "BootstrapPolicy",
    "client_endpoint",
    "transport_report",
    "negotiated",
    "peer_certificate",
    "peer_server_id",
    "leaf_certificate",
    "is_gm_suite",
    "ANY_SERVER",
]

log = Logger()

ANY_SERVER = object()
"""Expect any CA-issued certificate (DNS addressing, docs/protocol.md §1)."""

GM_ONLY, GM_PREFERRED = "gm-only", "gm-preferred"
POLICIES = (GM_ONLY, GM_PREFERRED)

_SM4_TLS13 = "TLS_SM4_GCM_SM3:TLS_SM4_CCM_SM3"
_AES_TLS13 = "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"
# Tongsuo's names of the TLCP suites, and the standard's (GB/T 38636) we report.
_TLCP_NAMES = {
    "ECDHE-SM2-SM4-GCM-SM3": "ECDHE_SM4_GCM_SM3",
    "ECDHE-SM2-SM4-CBC-SM3": "ECDHE_SM4_CBC_SM3",
    "ECC-SM2-SM4-GCM-SM3": "ECC_SM4_GCM_SM3",
    "ECC-SM2-SM4-CBC-SM3": "ECC_SM4_CBC_SM3",
}
_TLCP_WITH_CERT = ":".join(_TLCP_NAMES)
_TLCP_WITHOUT_CERT = "ECC-SM2-SM4-GCM-SM3:ECC-SM2-SM4-CBC-SM3"  # ECDHE needs a client enc cert
TLCP = "TLCPv1.1"


def is_gm_suite(suite: str | None) -> bool:
    """True for a suite whose records SM4 encrypts."""
    return bool(suite) and "SM4" in suite


@attrs.frozen
class Negotiated:
    """What a handshake agreed: ``TLSv1.3`` or ``TLCPv1.1``, and the suite's standard name."""

    protocol: str
    suite: str

    @property
    def gm(self) -> bool:
        return is_gm_suite(self.suite)

    def __str__(self) -> str:
        return "%s %s" % (self.protocol, self.suite)


def _negotiated(conn: _tongsuo.Connection) -> Negotiated:
    if conn.is_tlcp():
        name = conn.get_cipher_name() or "?"
        return Negotiated(TLCP, _TLCP_NAMES.get(name, name))
    return Negotiated(conn.get_protocol_version_name(), conn.get_cipher_name() or "?")


def negotiated(transport) -> Negotiated | None:
    """The protocol and suite of a connection's TLS (an HTTP channel's transport, or a
    protocol's), or None where it is not ours or not yet agreed."""
    for _ in range(3):  # a wrapper or two may sit between the channel and the TLS layer
        handle = getattr(transport, "getHandle", None)
        conn = handle() if handle is not None else None
        if isinstance(conn, _tongsuo.Connection):
            return conn.negotiated
        transport = getattr(transport, "transport", None)
        if transport is None:
            return None
    return None


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@attrs.frozen
class TLSIdentity:
    """Our keys, our certificates and the federation CA: the signing pair (TLS 1.3, TLCP's
    signatures) and, where the server has one, the encryption pair TLCP needs."""

    key_file: str
    cert_file: str
    ca_file: str
    certificate: Certificate = attrs.field(eq=False, repr=False)
    ca: Certificate = attrs.field(eq=False, repr=False)
    key_pem: bytes = attrs.field(eq=False, repr=False)
    enc_key_file: str | None = None
    enc_cert_file: str | None = None
    enc_certificate: Certificate | None = attrs.field(default=None, eq=False, repr=False)
    enc_key_pem: bytes | None = attrs.field(default=None, eq=False, repr=False)

    @classmethod
    def load(cls, key_file: str, cert_file: str, ca_file: str, enc_key_file: str | None = None,
             enc_cert_file: str | None = None) -> "TLSIdentity":
        """Read the files; the encryption pair only where both of its files exist (a server
        that has not obtained one yet speaks TLS 1.3 alone)."""
        enc = None
        if enc_key_file and enc_cert_file:
            try:
                enc = (_read(enc_key_file), load_pem_certificate(enc_cert_file))
            except FileNotFoundError:
                enc = None
        return cls(key_file=key_file, cert_file=cert_file, ca_file=ca_file,
                   certificate=load_pem_certificate(cert_file),
                   ca=load_pem_certificate(ca_file), key_pem=_read(key_file),
                   enc_key_file=enc_key_file, enc_cert_file=enc_cert_file,
                   enc_certificate=enc[1] if enc else None, enc_key_pem=enc[0] if enc else None)

    @property
    def server_id(self) -> str | None:
        return self.certificate.subject_cn

    @property
    def tlcp(self) -> bool:
        return self.enc_certificate is not None

    def check_pair(self) -> None:
        """PKIError unless the encryption certificate (if any) belongs with the signing one:
        the same subject, an encryption certificate, issued by the CA."""
        if self.enc_certificate is None:
            return
        verify_issued(self.enc_certificate, self.ca, server_id=self.server_id, kind=ENC)

    def _context(self, policy: str, tlcp: bool, with_cert: bool = True) -> _tongsuo.Context:
        ctx = _tongsuo.Context(ntls_only=tlcp)
        if tlcp:
            ctx.set_cipher_list(_TLCP_WITH_CERT if with_cert and self.tlcp
                                else _TLCP_WITHOUT_CERT)
            if with_cert and self.tlcp:
                ctx.use_tlcp_certificates(self.certificate.der, self.key_pem,
                                          self.enc_certificate.der, self.enc_key_pem)
        else:
            _tls13(ctx, policy)
            if with_cert:
                ctx.use_certificate(self.certificate.der, self.key_pem)
        ctx.trust(self.ca.der)
        return ctx


def _tls13(ctx: _tongsuo.Context, policy: str) -> None:
    ctx.set_versions(_tongsuo.TLS1_3_VERSION, _tongsuo.TLS1_3_VERSION)
    if policy == GM_ONLY:
        ctx.set_ciphersuites(_SM4_TLS13)
        ctx.set_groups("SM2")
    else:
        ctx.set_ciphersuites(_SM4_TLS13 + ":" + _AES_TLS13)
        ctx.set_groups("SM2:X25519:P-256")
    ctx.set_sigalgs("sm2sig_sm3")


def leaf_certificate(x509) -> Certificate:
    """Our Certificate of what a connection's ``getPeerCertificate`` gave (DER from ours, an
    X509 from pyOpenSSL's)."""
    if isinstance(x509, (bytes, bytearray)):
        return Certificate.from_der(bytes(x509))
    from cryptography.hazmat.primitives.serialization import Encoding

    return Certificate.from_der(x509.to_cryptography().public_bytes(Encoding.DER))


def _host_matches(cert: Certificate, host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host.lower().rstrip(".") in (n.lower().rstrip(".") for n in cert.san)
    for name in cert.san:
        try:
            if ipaddress.ip_address(name) == ip:
                return True
        except ValueError:
            continue
    return False


def _verifier(ca: Certificate, server_id=ANY_SERVER, host: str | None = None):
    """A verify callback that adds our own checks at the leaf (and, under TLCP, at the
    encryption certificate, which Tongsuo verifies as a leaf of its own), failing closed."""

    def verify(conn, der, errno, depth, ok) -> bool:
        if not ok:
            conn.refusal = "certificate does not chain to the federation CA (%s)" % (
                conn.verify_error or errno)
            return False
        if depth != 0:
            return True
        try:
            cert = Certificate.from_der(der)
            verify_issued(cert, ca, server_id=None if server_id is ANY_SERVER else server_id)
            if cert.kind not in (SIGN, ENC):
                raise PKIError("certificate is neither a signing nor an encryption certificate")
            if host is not None and not _host_matches(cert, host):
                raise PKIError("certificate does not name host %s" % host)
        except PKIError as e:
            conn.refusal = str(e)
            return False
        except Exception as e:
            log.failure("TLS peer check failed; refusing")
            conn.refusal = "certificate check failed: %s" % (e,)
            return False
        return True

    return verify


def _check_pair(conn: _tongsuo.Connection, ca: Certificate) -> None:
    """After a handshake: the peer's leaf is a signing certificate; under TLCP its second is
    an encryption certificate for the same subject (Tongsuo takes any second certificate)."""
    leaf = conn.get_peer_certificate()
    if leaf is None:
        return
    sign = Certificate.from_der(leaf)
    if sign.kind != SIGN:
        raise PKIError("the peer's certificate is not a signing certificate")
    if not conn.is_tlcp():
        return
    enc = [c for c in map(Certificate.from_der, conn.get_peer_cert_chain())
           if c.der != sign.der and not c.is_ca]
    if not enc:
        raise PKIError("TLCP peer sent no encryption certificate")
    verify_issued(enc[0], ca, server_id=sign.subject_cn, kind=ENC)
    if enc[0].spki_der == sign.spki_der:
        raise PKIError("TLCP peer's encryption and signing certificates share one key")


class _Transport:
    """What one side (a listener, or the outbound client) of a server saw of its handshakes:
    metrics, rate-limited log lines of refusals, and the peers reached without SM4."""

    def __init__(self, role: str, policy: str) -> None:
        self.role, self.policy = role, policy
        self.server_id = "-"
        self.non_gm: dict[str, tuple[float, str]] = {}
        self.last: dict[str, Negotiated] = {}
        self._logged = (0.0, 0)

    def done(self, conn: _tongsuo.Connection, ca: Certificate, peer: str) -> None:
        _check_pair(conn, ca)
        agreed = conn.negotiated = _negotiated(conn)
        if not agreed.gm:
            if self.policy == GM_ONLY:
                raise PKIError("%s is not an SM4 suite (policy gm-only)" % agreed.suite)
            self.non_gm[peer] = (time.time(), str(agreed))
            while len(self.non_gm) > 64:
                self.non_gm.pop(next(iter(self.non_gm)))
        if self.role == "client":
            self.last[peer] = agreed
            while len(self.last) > 1024:
                self.last.pop(next(iter(self.last)))
        TLS_HANDSHAKES.labels(self.server_id, agreed.protocol, agreed.suite, self.role).inc()

    def failed(self, conn: _tongsuo.Connection, error: Exception, peer: str) -> None:
        reason = getattr(conn, "refusal", None) or _reason(error)
        TLS_FAILURES.labels(self.server_id, self.role, _kind(reason)).inc()
        if _kind(reason) == "eof":
            return  # a port check, a scanner, a peer gone: counted, not logged
        now, (since, n) = time.time(), self._logged
        if now - since > 10:
            since, n = now, 0
        self._logged = (since, n + 1)
        if n < 10:  # at most ten lines per ten seconds: a flood is counted, not logged
            log.warn("TLS handshake {role} {peer} refused: {reason}",
                     role="with" if self.role == "client" else "from", peer=peer,
                     reason=reason)

    def without_sm4(self) -> dict[str, str]:
        """The peers reached without an SM4 suite in the last day, with what they agreed."""
        day_ago = time.time() - 86400
        return {p: what for p, (when, what) in self.non_gm.items() if when > day_ago}


def transport_report(*sides) -> dict:
    """/health's view of a server's transport (its listener and its client, each with a
    ``transport``): the policy, and a warning naming the peers reached without an SM4 suite in
    the last day."""
    out: dict = {"policy": sides[0].transport.policy}
    weak: dict = {}
    for side in sides:
        weak.update(side.transport.without_sm4())
    if weak:
        out["withoutSm4"] = weak
        out["warning"] = "%d peer(s) reached without an SM4 suite in the last day" % len(weak)
    return out


def _reason(error: Exception) -> str:
    if isinstance(error, _pyssl.SysCallError):
        return "connection closed during the handshake"
    try:
        return "; ".join(r for _, _, r in error.args[0] if r) or "handshake failed"
    except Exception:
        return str(error) or type(error).__name__


def _kind(reason: str) -> str:
    r = reason.lower()
    for word, kind in (("closed during", "eof"), ("eof", "eof"), ("shared cipher", "cipher"),
                       ("sm4 suite", "cipher"), ("version", "version"),
                       ("protocol", "version"), ("certificate", "certificate")):
        if word in r:
            return kind
    return "other"


def _peer_of(tls_protocol) -> str:
    try:
        return tls_protocol.transport.getPeer().host
    except Exception:
        return "?"


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """Listener side: TLS 1.3 and TLCP on one port, asking every client for a CA-issued
    certificate.

    A node's listener requires one.  The management listener also serves callers that have
    none yet (``cacert``, ``apply``, ``getservercert``): there a certificate is optional, but one
    that is presented must pass, and signed calls demand one (imfed/web.py).
    """

    def __init__(self, identity: TLSIdentity, require_client_cert: bool = True,
                 policy: str = GM_ONLY) -> None:
        self.policy = policy
        self.transport = _Transport("server", policy)
        self._require = require_client_cert
        self.use(identity)

    def use(self, identity: TLSIdentity) -> None:
        """Present ``identity`` (a renewed certificate) from the next connection on."""
        self.identity = identity
        self.transport.server_id = identity.server_id or "-"
        self._tls = identity._context(self.policy, tlcp=False)
        self._tlcp = identity._context(self.policy, tlcp=True) if identity.tlcp else None
        self._verify = _verifier(identity.ca)

    def serverConnectionForTLS(self, tlsProtocol) -> _tongsuo.Connection:
        ca, transport = self.identity.ca, self.transport
        return _tongsuo.Connection(
            self._tls, self._verify, self._require, tlcp_context=self._tlcp,
            done=lambda conn: transport.done(conn, ca, _peer_of(tlsProtocol)),
            failed=lambda conn, e: transport.failed(conn, e, _peer_of(tlsProtocol)))


@implementer(IOpenSSLClientConnectionCreator)
class _Attempt:
    """One way to dial: a context (TLS 1.3 or TLCP) and the checks of the server we expect."""

    def __init__(self, ctx, verify, host: str, done, failed) -> None:
        self._ctx, self._verify, self._host = ctx, verify, host
        self._done, self._failed = done, failed

    def clientConnectionForTLS(self, tlsProtocol) -> _tongsuo.Connection:
        conn = _tongsuo.Connection(self._ctx, self._verify, done=self._done,
                                   failed=self._failed)
        try:
            ipaddress.ip_address(self._host)
        except ValueError:
            conn.set_tlsext_host_name(self._host.encode("idna"))
        conn.set_connect_state()
        return conn


@implementer(IOpenSSLClientConnectionCreator)
class _Dialler:
    """The attempts to make towards one destination, TLS 1.3 first, TLCP after it unless the
    destination answered TLCP alone last time (remembered for an hour)."""

    TLCP_MEMORY = 3600.0

    def __init__(self, owner: "_ClientSide", host: str, port: int, server_id) -> None:
        self.owner, self.host, self.port, self.server_id = owner, host, port, server_id

    def attempts(self) -> list[tuple[str, _Attempt]]:
        o = self.owner
        verify = (_verifier(o.ca, self.server_id, self.host) if o.ca is not None else None)
        peer = "%s:%d" % (self.host, self.port)
        out: list = []
        for tlcp, ctx in ((False, o.tls_ctx), (True, o.tlcp_ctx)):
            if ctx is None:
                continue
            out.append(("tlcp" if tlcp else "tls", _Attempt(
                ctx, verify, self.host,
                lambda conn: o.transport.done(conn, o.ca, peer) if o.ca is not None else None,
                lambda conn, e: o.transport.failed(conn, e, peer))))
        if o.tlcp_only.get((self.host, self.port), 0) > time.time() - self.TLCP_MEMORY:
            out.reverse()
        return out

    def worked(self, kind: str) -> None:
        key = (self.host, self.port)
        if kind == "tlcp":
            self.owner.tlcp_only[key] = time.time()
        else:
            self.owner.tlcp_only.pop(key, None)

    # pyOpenSSL-style creators are asked for a connection directly (tests, wrapClientTLS).
    def clientConnectionForTLS(self, tlsProtocol):
        return self.attempts()[0][1].clientConnectionForTLS(tlsProtocol)


class _ClientSide:
    """Contexts and memory shared by every outbound connection of one identity."""

    def __init__(self, policy: str, transport: _Transport) -> None:
        self.policy, self.transport = policy, transport
        self.tlcp_only: dict[tuple[str, int], float] = {}
        self.ca: Certificate | None = None
        self.tls_ctx: _tongsuo.Context | None = None
        self.tlcp_ctx: _tongsuo.Context | None = None

    def creator(self, host: str, port: int, server_id) -> _Dialler:
        return _Dialler(self, host, port, server_id)


@implementer(IPolicyForHTTPS)
class PeerPolicy(_ClientSide):
    """The outbound side of a server with a certificate (the Agent's calls, the pipelined
    lanes).

    Each destination (host, port) must be announced with ``expect`` before it is dialled, naming
    the serverId its certificate must carry (or ``ANY_SERVER``); an unannounced destination is
    refused, never trusted by default.
    """

    def __init__(self, identity: TLSIdentity, policy: str = GM_ONLY) -> None:
        super().__init__(policy, _Transport("client", policy))
        self._expected: dict[tuple[str, int], object] = {}
        self.use(identity)

    def use(self, identity: TLSIdentity) -> None:
        """Present ``identity`` from the next connection on."""
        self.identity, self.ca = identity, identity.ca
        self.transport.server_id = identity.server_id or "-"
        self.tls_ctx = identity._context(self.policy, tlcp=False)
        self.tlcp_ctx = identity._context(self.policy, tlcp=True)

    def negotiated_with(self, host: str, port: int) -> Negotiated | None:
        """What the last connection to (host, port) agreed."""
        return self.transport.last.get("%s:%d" % (host, port))

    def expect(self, host: str, port: int, server_id) -> None:
        self._expected[(host.lower(), port)] = server_id

    def creatorForNetloc(self, hostname: bytes | str, port: int):
        host = hostname.decode("ascii") if isinstance(hostname, bytes) else hostname
        if (host.lower(), port) not in self._expected:
            raise PKIError("no expected server for %s:%d" % (host, port))
        return self.creator(host, port, self._expected[(host.lower(), port)])


@implementer(IPolicyForHTTPS)
class BootstrapPolicy(_ClientSide):
    """For a server joining a federation, before it holds a certificate of its own.

    With the CA known, the management server must chain to it, name ``server_id`` and the host
    dialled.  Without it (the very first ``cacert`` fetch) nothing is verified: the caller
    checks the returned CA certificate against a fingerprint it was given out of band.  The
    suites are those of the policy; TLCP with the ECC suites (ECDHE needs a client's
    encryption certificate).
    """

    def __init__(self, ca: Certificate | None = None, ca_file: str | None = None,
                 server_id=ANY_SERVER, policy: str = GM_ONLY) -> None:
        super().__init__(policy, _Transport("client", policy))
        self.ca, self._server_id = ca, server_id
        self.tls_ctx = _tongsuo.Context()
        _tls13(self.tls_ctx, policy)
        self.tlcp_ctx = _tongsuo.Context(ntls_only=True)
        self.tlcp_ctx.set_cipher_list(_TLCP_WITHOUT_CERT)
        for ctx in (self.tls_ctx, self.tlcp_ctx):
            if ca is not None:
                ctx.trust(ca.der)

    def creatorForNetloc(self, hostname: bytes | str, port: int):
        host = hostname.decode("ascii") if isinstance(hostname, bytes) else hostname
        return self.creator(host, port, self._server_id)


# --- connecting: the handshake first, then the protocol; TLCP when TLS 1.3 was refused -----

@implementer(IHandshakeListener)
class _Waiter(Protocol):
    """Stands in for the real protocol until the handshake is over."""

    def __init__(self) -> None:
        self.finished: Deferred = Deferred()

    def handshakeCompleted(self) -> None:
        d, self.finished = self.finished, None
        if d is not None:
            d.callback(None)

    def connectionLost(self, reason=None) -> None:
        d, self.finished = self.finished, None
        if d is not None:
            d.errback(reason)


class HandshakeRefused(Exception):
    """The TLS handshake failed (the reason says how); ``final`` when no other protocol is
    worth a try (our own checks refused the peer, or it did not answer in time)."""

    def __init__(self, message: str, final: bool) -> None:
        super().__init__(message)
        self.final = final


@implementer(IStreamClientEndpoint)
class _GMEndpoint:
    def __init__(self, reactor, host: str, port: int, creator, timeout: float) -> None:
        self.reactor, self.host, self.port = reactor, host, port
        self.creator, self.timeout = creator, timeout

    def connect(self, factory) -> Deferred:
        attempts = getattr(self.creator, "attempts", None)
        if attempts is None:  # a creator of another kind: one attempt, as given
            return Deferred.fromCoroutine(self._try(factory, self.creator))
        return Deferred.fromCoroutine(self._connect(factory, attempts()))

    async def _connect(self, factory, attempts):
        last: Exception | None = None
        for kind, attempt in attempts:
            try:
                protocol = await self._try(factory, attempt)
            except HandshakeRefused as e:
                last = e
                if e.final:  # our own check refused the peer, or it never answered
                    break
                continue
            self.creator.worked(kind)
            return protocol
        raise last

    async def _try(self, factory, creator):
        waiter = _Waiter()
        tcp = HostnameEndpoint(self.reactor, self.host, self.port, timeout=self.timeout)
        inner = Factory.forProtocol(lambda: waiter)
        inner.noisy = False  # no "Starting factory" line per connection
        wrapped = TLSMemoryBIOFactory(creator, True, inner)
        d = tcp.connect(wrapped)
        d.addTimeout(self.timeout, self.reactor)
        tls_protocol = await d
        setter = getattr(tls_protocol.transport, "setTcpNoDelay", None)
        if setter is not None:
            # A request's headers and body go out as separate TLS records; Nagle's algorithm
            # would hold the body until the server acknowledged the headers.
            setter(True)
        finished = waiter.finished
        late = []

        def too_late() -> None:
            late.append(True)
            tls_protocol.transport.abortConnection()

        call = self.reactor.callLater(self.timeout, too_late)
        try:
            await finished
        except Exception as e:
            refusal = getattr(tls_protocol.getHandle(), "refusal", None)
            reason = refusal or ("no answer in %.0f s" % self.timeout if late
                                 else _failure_text(e))
            raise HandshakeRefused("TLS handshake with %s:%d failed: %s" % (
                self.host, self.port, reason), bool(refusal or late)) from None
        finally:
            if call.active():
                call.cancel()
        protocol = factory.buildProtocol(tls_protocol.transport.getPeer())
        if protocol is None:
            tls_protocol.transport.abortConnection()
            raise HandshakeRefused("no protocol for %s:%d" % (self.host, self.port), final=True)
        tls_protocol.wrappedProtocol = protocol
        protocol.makeConnection(tls_protocol)
        return protocol


def _failure_text(e: Exception) -> str:
    value = getattr(e, "value", e)
    if isinstance(value, _pyssl.Error):
        return _reason(value)
    return str(value) or type(value).__name__


def client_endpoint(reactor, host: str, port: int, creator, timeout: float = 30.0):
    """An endpoint that connects to (host, port), completes the handshake the ``creator``
    says (TLS 1.3, then TLCP where TLS 1.3 was refused) and only then hands the connection to
    the protocol; the handshake has ``timeout`` seconds."""
    return _GMEndpoint(reactor, host, port, creator, timeout)


_peer_cache: "weakref.WeakKeyDictionary[object, Certificate]" = weakref.WeakKeyDictionary()


def peer_certificate(request) -> Certificate | None:
    """The verified client certificate of the connection a request came on, if any."""
    transport = getattr(request.channel, "transport", None)
    if transport is None:
        return None
    cert = _peer_cache.get(transport)
    if cert is None:
        getter = getattr(transport, "getPeerCertificate", None)
        x509 = getter() if getter is not None else None
        if x509 is None:
            return None
        cert = _peer_cache[transport] = leaf_certificate(x509)
    return cert


def peer_server_id(request) -> str | None:
    cert = peer_certificate(request)
    return cert.subject_cn if cert is not None else None
