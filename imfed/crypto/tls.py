"""TLS contexts for the federation transport: mutual TLS with SM2 certificates.

Everything goes through pyOpenSSL on cryptography's bundled OpenSSL (4.x speaks ``sm2sig_sm3`` in
TLS 1.3); Python's ``ssl`` module is never used, its OpenSSL 3.0 refuses SM2 certificates.

OpenSSL checks the chain against the federation CA.  On top of that, failing closed, our own code
checks every peer's leaf (docs/protocol.md §3): signed by the CA key under the default SM2
distinguishing ID, current, not a CA, and on the client side naming the expected serverId (CN) and
the host we dialled (subjectAltName).  Twisted's service-identity hostname check is not used: it
fails open when service-identity raises on an odd name.
"""

from __future__ import annotations

import ipaddress
import weakref

import attrs
from OpenSSL import SSL
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.logger import Logger
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from .pki import Certificate, PKIError, load_pem_certificate, verify_issued

__all__ = [
    "TLSIdentity",
    "ServerTLS",
    "PeerPolicy",
    "BootstrapPolicy",
    "peer_certificate",
    "peer_server_id",
    "leaf_certificate",
    "ANY_SERVER",
]

log = Logger()

ANY_SERVER = object()
"""Expect any CA-issued certificate (DNS addressing, docs/protocol.md §1)."""

_VERIFY = SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT


@attrs.frozen
class TLSIdentity:
    """Our key, our certificate and the federation CA, as files OpenSSL reads."""

    key_file: str
    cert_file: str
    ca_file: str
    certificate: Certificate = attrs.field(eq=False, repr=False)
    ca: Certificate = attrs.field(eq=False, repr=False)

    @classmethod
    def load(cls, key_file: str, cert_file: str, ca_file: str) -> "TLSIdentity":
        return cls(key_file=key_file, cert_file=cert_file, ca_file=ca_file,
                   certificate=load_pem_certificate(cert_file),
                   ca=load_pem_certificate(ca_file))

    @property
    def server_id(self) -> str | None:
        return self.certificate.subject_cn

    def context(self) -> SSL.Context:
        ctx = SSL.Context(SSL.TLS_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
        ctx.use_certificate_file(self.cert_file)
        ctx.use_privatekey_file(self.key_file)
        ctx.check_privatekey()
        ctx.load_verify_locations(self.ca_file)
        # A callback is always set per connection; this default refuses.
        ctx.set_verify(_VERIFY, lambda *a: False)
        return ctx


def leaf_certificate(x509) -> Certificate:
    """Our Certificate of a pyOpenSSL X509."""
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
    """An OpenSSL verify callback that adds our own checks at the leaf, failing closed."""

    def verify(conn, x509, errno, depth, ok) -> bool:
        if not ok:
            return False
        if depth != 0:
            return True
        try:
            cert = leaf_certificate(x509)
            verify_issued(cert, ca, server_id=None if server_id is ANY_SERVER else server_id)
            if host is not None and not _host_matches(cert, host):
                raise PKIError("certificate does not name host %s" % host)
        except PKIError as e:
            log.warn("TLS peer refused: {reason}", reason=str(e))
            return False
        except Exception:
            log.failure("TLS peer check failed; refusing")
            return False
        return True

    return verify


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """Listener side: asks every client for a CA-issued certificate.

    A node's listener requires one.  The management listener also serves callers that have
    none yet (``cacert``, ``apply``, ``getservercert``): there a certificate is optional, but one
    that is presented must pass, and signed calls demand one (imfed/web.py).
    """

    def __init__(self, identity: TLSIdentity, require_client_cert: bool = True) -> None:
        self.use(identity)
        self._mode = _VERIFY if require_client_cert else SSL.VERIFY_PEER

    def use(self, identity: TLSIdentity) -> None:
        """Present ``identity`` (a renewed certificate) from the next connection on."""
        self.identity = identity
        self._ctx = identity.context()
        self._verify = _verifier(identity.ca)

    def serverConnectionForTLS(self, tlsProtocol) -> SSL.Connection:
        conn = SSL.Connection(self._ctx, None)
        conn.set_verify(self._mode, self._verify)
        return conn


@implementer(IOpenSSLClientConnectionCreator)
class _ClientCreator:
    def __init__(self, ctx: SSL.Context, ca: Certificate, host: str, server_id) -> None:
        self._ctx, self._host = ctx, host
        self._verify = _verifier(ca, server_id, host)

    def clientConnectionForTLS(self, tlsProtocol) -> SSL.Connection:
        conn = SSL.Connection(self._ctx, None)
        conn.set_verify(_VERIFY, self._verify)
        try:
            ipaddress.ip_address(self._host)
        except ValueError:
            conn.set_tlsext_host_name(self._host.encode("idna"))
        conn.set_connect_state()
        return conn


@implementer(IPolicyForHTTPS)
class PeerPolicy:
    """The HTTPS policy of our outbound Agent.

    Each destination (host, port) must be announced with ``expect`` before it is dialled, naming
    the serverId its certificate must carry (or ``ANY_SERVER``); an unannounced destination is
    refused, never trusted by default.
    """

    def __init__(self, identity: TLSIdentity) -> None:
        self.use(identity)
        self._expected: dict[tuple[str, int], object] = {}

    def use(self, identity: TLSIdentity) -> None:
        """Present ``identity`` from the next connection on."""
        self.identity = identity
        self._ctx = identity.context()

    def expect(self, host: str, port: int, server_id) -> None:
        self._expected[(host.lower(), port)] = server_id

    def creatorForNetloc(self, hostname: bytes, port: int):
        host = hostname.decode("ascii") if isinstance(hostname, bytes) else hostname
        if (host.lower(), port) not in self._expected:
            raise PKIError("no expected server for %s:%d" % (host, port))
        return _ClientCreator(self._ctx, self.identity.ca, host,
                              self._expected[(host.lower(), port)])


@implementer(IPolicyForHTTPS)
class BootstrapPolicy:
    """For a server joining a federation, before it holds a certificate of its own.

    With the CA known, the management server must chain to it, name ``server_id`` and the host
    dialled.  Without it (the very first ``cacert`` fetch) nothing is verified: the caller
    checks the returned CA certificate against a fingerprint it was given out of band.
    """

    def __init__(self, ca: Certificate | None = None, ca_file: str | None = None,
                 server_id=ANY_SERVER) -> None:
        self._ca, self._server_id = ca, server_id
        self._ctx = SSL.Context(SSL.TLS_METHOD)
        self._ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        if ca is not None:
            self._ctx.load_verify_locations(ca_file)

    def creatorForNetloc(self, hostname: bytes, port: int):
        host = hostname.decode("ascii") if isinstance(hostname, bytes) else hostname
        if self._ca is None:
            return _UnverifiedCreator(self._ctx)
        return _ClientCreator(self._ctx, self._ca, host, self._server_id)


@implementer(IOpenSSLClientConnectionCreator)
class _UnverifiedCreator:
    def __init__(self, ctx: SSL.Context) -> None:
        self._ctx = ctx

    def clientConnectionForTLS(self, tlsProtocol) -> SSL.Connection:
        conn = SSL.Connection(self._ctx, None)
        conn.set_verify(SSL.VERIFY_NONE, None)
        conn.set_connect_state()
        return conn


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
