"""The SM2 PKI of a federation: the management CA, CSRs, certificates, chain checks.

Certificates are assembled with asn1crypto and signed with our own SM2 code (SM2-with-SM3,
default distinguishing ID), so nothing here depends on an X.509 builder that knows SM2.  The
certificate profile is docs/protocol.md §3: CN = serverId; subjectAltName one DNS name or IP
and nothing else; extended key usage serverAuth + clientAuth; random serial of 127 bits.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import os
import secrets

import attrs
from asn1crypto import csr as _csr, keys, pem, x509

from . import sm2
from .sm3 import sm3, sm3_hex

__all__ = [
    "PKIError",
    "Certificate",
    "CertificateRequest",
    "create_ca",
    "make_csr",
    "issue_certificate",
    "certify_key",
    "verify_issued",
    "load_pem_certificate",
    "fingerprint",
    "write_file",
    "CertificateAuthority",
    "SIGN",
    "ENC",
]

SM2_WITH_SM3 = "1.2.156.10197.1.501"
SM2_CURVE = "1.2.156.10197.1.301"
EC_PUBLIC_KEY = "1.2.840.10045.2.1"

_UTC = datetime.timezone.utc


SIGN, ENC = "sign", "enc"
"""The two kinds of server certificate: signing (TLS 1.3, TLCP's signature, request
signatures) and encryption (TLCP's key exchange)."""

_KEY_USAGE = {
    SIGN: {"digital_signature", "non_repudiation"},
    ENC: {"key_encipherment", "data_encipherment", "key_agreement"},
}


class PKIError(ValueError):
    """A certificate or CSR that cannot be parsed, is not SM2, or does not verify."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(_UTC).replace(microsecond=0)


def _time(dt: datetime.datetime) -> x509.Time:
    # RFC 5280: UTCTime through 2049, GeneralizedTime from 2050.
    if dt.year < 2050:
        return x509.Time(name="utc_time", value=dt)
    return x509.Time(name="general_time", value=dt)


def _sm2_spki(spki_der: bytes) -> keys.PublicKeyInfo:
    """Parse a SubjectPublicKeyInfo and insist that it is an SM2 key."""
    try:
        info = keys.PublicKeyInfo.load(spki_der)
        alg = info["algorithm"]
        oid = alg["algorithm"].dotted
        params = alg["parameters"]
        curve = params.chosen.dotted if params.name == "named" else None
    except Exception:
        raise PKIError("undecodable public key") from None
    if oid != EC_PUBLIC_KEY or curve != SM2_CURVE:
        raise PKIError("public key is not an SM2 key")
    return info


def _key_id(spki_der: bytes) -> bytes:
    return sm3(_sm2_spki(spki_der)["public_key"].contents)[:20]


def _signed_alg() -> dict:
    return {"algorithm": SM2_WITH_SM3}


def _alg_oid(value) -> str:
    try:
        return value["algorithm"].dotted
    except Exception:
        raise PKIError("undecodable signature algorithm") from None


def fingerprint(der: bytes) -> str:
    """The profile's certificate fingerprint: hex SM3 of the DER certificate."""
    return sm3_hex(der)


@attrs.frozen(slots=False)
class Certificate:
    """A parsed X.509 certificate with an SM2 key.  Immutable; what is derived from it (its key,
    its fingerprint, whether an issuer signed it) is computed once."""

    der: bytes
    _asn1: x509.Certificate = attrs.field(repr=False, eq=False)

    @classmethod
    def from_der(cls, der: bytes) -> "Certificate":
        try:
            obj = x509.Certificate.load(der, strict=True)
            obj["tbs_certificate"]["subject"].native  # force a parse of the parts we use
            obj.not_valid_before, obj.not_valid_after
        except Exception:
            raise PKIError("undecodable certificate") from None
        cert = cls(der=bytes(der), asn1=obj)
        cert.public_key  # an SM2 key, or PKIError
        return cert

    @classmethod
    def from_pem(cls, data: bytes | str) -> "Certificate":
        if isinstance(data, str):
            data = data.encode("ascii", "replace")
        try:
            kind, _, der = pem.unarmor(data.strip())
        except Exception:
            raise PKIError("not a PEM certificate") from None
        if kind != "CERTIFICATE":
            raise PKIError("PEM block is %s, not CERTIFICATE" % kind)
        return cls.from_der(der)

    @property
    def pem(self) -> bytes:
        return pem.armor("CERTIFICATE", self.der)

    @functools.cached_property
    def fingerprint(self) -> str:
        return fingerprint(self.der)

    @functools.cached_property
    def subject_cn(self) -> str | None:
        return self._asn1.subject.native.get("common_name")

    @functools.cached_property
    def issuer_cn(self) -> str | None:
        return self._asn1.issuer.native.get("common_name")

    @functools.cached_property
    def serial(self) -> int:
        return self._asn1.serial_number

    @functools.cached_property
    def not_before(self) -> datetime.datetime:
        return self._asn1.not_valid_before

    @functools.cached_property
    def not_after(self) -> datetime.datetime:
        return self._asn1.not_valid_after

    @functools.cached_property
    def is_ca(self) -> bool:
        bc = self._asn1.basic_constraints_value
        return bool(bc and bc["ca"].native)

    @functools.cached_property
    def spki_der(self) -> bytes:
        return self._asn1["tbs_certificate"]["subject_public_key_info"].dump()

    @functools.cached_property
    def public_key(self) -> sm2.PublicKey:
        der = self.spki_der
        _sm2_spki(der)
        try:
            return sm2.load_public_key_der(der)
        except sm2.SM2Error as e:
            raise PKIError(str(e)) from None

    @property
    def san(self) -> list[str]:
        """DNS names and IP addresses of subjectAltName, as text."""
        value = self._asn1.subject_alt_name_value
        if value is None:
            return []
        return [str(name.native) for name in value]

    @functools.cached_property
    def key_usage(self) -> frozenset[str]:
        value = self._asn1.key_usage_value
        return frozenset(value.native) if value is not None else frozenset()

    @property
    def kind(self) -> str | None:
        """SIGN, ENC, or None for a certificate that is neither (a CA, an odd one)."""
        for kind, usage in _KEY_USAGE.items():
            if self.key_usage == usage:
                return kind
        if "digital_signature" in self.key_usage and not self.is_ca:
            return SIGN  # issued before encryption certificates existed
        return None

    @property
    def ext_key_usage(self) -> list[str]:
        value = self._asn1.extended_key_usage_value
        return list(value.native) if value is not None else []

    def signed_by(self, issuer: "Certificate") -> bool:
        """True when ``issuer`` named and signed this certificate (SM2-with-SM3, default ID).

        Our own check, independent of what the TLS library did (docs/protocol.md §3).  A signature
        never changes, so the answer is remembered per issuer.
        """
        known = self._signed_by.get(issuer.der)
        if known is None:
            known = self._signed_by[issuer.der] = self._check_signature(issuer)
        return known

    @functools.cached_property
    def _signed_by(self) -> dict:
        return {}

    def _check_signature(self, issuer: "Certificate") -> bool:
        tbs = self._asn1["tbs_certificate"]
        if _alg_oid(self._asn1["signature_algorithm"]) != SM2_WITH_SM3:
            return False
        if _alg_oid(tbs["signature"]) != SM2_WITH_SM3:
            return False
        if tbs["issuer"].dump() != issuer._asn1["tbs_certificate"]["subject"].dump():
            return False
        return issuer.public_key.verify(self._asn1["signature_value"].native, tbs.dump())

    def valid_at(self, when: datetime.datetime | None = None) -> bool:
        when = when or _now()
        return self.not_before <= when <= self.not_after


def load_pem_certificate(path: str) -> Certificate:
    with open(path, "rb") as f:
        return Certificate.from_pem(f.read())


def verify_issued(cert: Certificate, ca: Certificate, when: datetime.datetime | None = None,
                  server_id: str | None = None, expired_ok: bool = False,
                  kind: str | None = None) -> None:
    """Fail closed unless ``cert`` is a valid, current leaf of ``ca`` (and names ``server_id``,
    and is of ``kind``, SIGN or ENC); ``expired_ok`` lets a leaf past its validity through (a
    pinned copy about to be replaced).

    Raises PKIError with the reason.
    """
    if cert.is_ca:
        raise PKIError("a CA certificate is not a server certificate")
    if kind is not None and cert.kind != kind:
        raise PKIError("certificate is not a%s certificate (key usage %s)" % (
            {SIGN: " signing", ENC: "n encryption"}[kind], ", ".join(sorted(cert.key_usage))))
    if not cert.signed_by(ca):
        raise PKIError("certificate is not signed by the federation CA")
    if not cert.valid_at(when) and not expired_ok:
        raise PKIError("certificate is outside its validity period")
    if not ca.valid_at(when):
        raise PKIError("the CA certificate is outside its validity period")
    if server_id is not None and cert.subject_cn != server_id:
        raise PKIError("certificate names %r, expected %r" % (cert.subject_cn, server_id))


def _extension(name: str, value, critical: bool = False) -> dict:
    return {"extn_id": name, "critical": critical, "extn_value": value}


def _general_name(host: str) -> x509.GeneralName:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return x509.GeneralName(name="dns_name", value=host)
    return x509.GeneralName(name="ip_address", value=str(ip))


def _sign_tbs(tbs: x509.TbsCertificate, key: sm2.PrivateKey) -> Certificate:
    cert = x509.Certificate({
        "tbs_certificate": tbs,
        "signature_algorithm": _signed_alg(),
        "signature_value": key.sign(tbs.dump()),
    })
    return Certificate.from_der(cert.dump())


def _serial() -> int:
    return secrets.randbits(127) | (1 << 126)  # 127 bits, positive, never short


def create_ca(key: sm2.PrivateKey, common_name: str, days: int = 3650,
              now: datetime.datetime | None = None) -> Certificate:
    """A self-signed SM2-with-SM3 root."""
    now = now or _now()
    name = x509.Name.build({"organization_name": "imfed federation", "common_name": common_name})
    spki = key.public_key().spki_der()
    ski = _key_id(spki)
    tbs = x509.TbsCertificate({
        "version": "v3",
        "serial_number": _serial(),
        "signature": _signed_alg(),
        "issuer": name,
        "validity": {"not_before": _time(now - datetime.timedelta(minutes=5)),
                     "not_after": _time(now + datetime.timedelta(days=days))},
        "subject": name,
        "subject_public_key_info": keys.PublicKeyInfo.load(spki),
        "extensions": [
            _extension("basic_constraints", {"ca": True}, critical=True),
            _extension("key_usage", {"key_cert_sign", "crl_sign", "digital_signature"},
                       critical=True),
            _extension("key_identifier", ski),
        ],
    })
    return _sign_tbs(tbs, key)


@attrs.frozen
class CertificateRequest:
    """A PKCS#10 request whose self-signature verified and whose key is SM2."""

    der: bytes
    common_name: str | None
    spki_der: bytes

    @property
    def pem(self) -> bytes:
        return pem.armor("CERTIFICATE REQUEST", self.der)

    @property
    def public_key(self) -> sm2.PublicKey:
        return sm2.load_public_key_der(self.spki_der)

    @classmethod
    def from_pem(cls, data: bytes | str) -> "CertificateRequest":
        if isinstance(data, str):
            data = data.encode("ascii", "replace")
        try:
            kind, _, der = pem.unarmor(data.strip())
        except Exception:
            raise PKIError("not a PEM certificate request") from None
        if kind not in ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"):
            raise PKIError("PEM block is %s, not CERTIFICATE REQUEST" % kind)
        return cls.from_der(der)

    @classmethod
    def from_der(cls, der: bytes) -> "CertificateRequest":
        try:
            req = _csr.CertificationRequest.load(der, strict=True)
            info = req["certification_request_info"]
            subject = info["subject"].native
            spki = info["subject_pk_info"].dump()
            sig = req["signature"].native
            info_der = info.dump()
        except Exception:
            raise PKIError("undecodable certificate request") from None
        if _alg_oid(req["signature_algorithm"]) != SM2_WITH_SM3:
            raise PKIError("certificate request is not signed SM2-with-SM3")
        _sm2_spki(spki)
        try:
            key = sm2.load_public_key_der(spki)
        except sm2.SM2Error as e:
            raise PKIError(str(e)) from None
        if not key.verify(sig, info_der):
            raise PKIError("certificate request self-signature does not verify")
        cn = subject.get("common_name") if isinstance(subject, dict) else None
        return cls(der=bytes(der), common_name=cn, spki_der=spki)


def make_csr(key: sm2.PrivateKey, server_id: str) -> CertificateRequest:
    """A PKCS#10 request with CN = serverId, self-signed with ``key``."""
    info = _csr.CertificationRequestInfo({
        "version": "v1",
        "subject": x509.Name.build({"common_name": server_id}),
        "subject_pk_info": keys.PublicKeyInfo.load(key.public_key().spki_der()),
        "attributes": [],
    })
    req = _csr.CertificationRequest({
        "certification_request_info": info,
        "signature_algorithm": _signed_alg(),
        "signature": key.sign(info.dump()),
    })
    return CertificateRequest.from_der(req.dump())


def issue_certificate(ca_key: sm2.PrivateKey, ca: Certificate, request: CertificateRequest,
                      server_id: str, host: str, days: int = 365,
                      now: datetime.datetime | None = None, kind: str = SIGN) -> Certificate:
    """A server certificate for ``server_id`` at ``host`` (DNS name or IP address).

    The CN must match: a request for another id is refused here, whoever calls.
    """
    if request.common_name != server_id:
        raise PKIError("certificate request names %r, not %r" % (request.common_name, server_id))
    return certify_key(ca_key, ca, request.spki_der, server_id, host, days, now, kind)


def certify_key(ca_key: sm2.PrivateKey, ca: Certificate, spki_der: bytes, server_id: str,
                host: str, days: int = 365, now: datetime.datetime | None = None,
                kind: str = SIGN) -> Certificate:
    """A server certificate for a key the CA already trusts (a CSR's, or a current
    certificate's when only the host changes); ``kind`` SIGN or ENC sets its key usage.

    No BasicConstraints in an end-entity certificate: an empty one (``30 00``, what cA FALSE
    encodes to) is refused by GmSSL's verifier, and RFC 5280 lets a leaf leave it out."""
    now = now or _now()
    not_after = min(now + datetime.timedelta(days=days), ca.not_after)
    tbs = x509.TbsCertificate({
        "version": "v3",
        "serial_number": _serial(),
        "signature": _signed_alg(),
        "issuer": ca._asn1["tbs_certificate"]["subject"],
        "validity": {"not_before": _time(now - datetime.timedelta(minutes=5)),
                     "not_after": _time(not_after)},
        "subject": x509.Name.build({"common_name": server_id}),
        "subject_public_key_info": keys.PublicKeyInfo.load(spki_der),
        "extensions": [
            _extension("key_usage", _KEY_USAGE[kind], critical=True),
            _extension("extended_key_usage", ["server_auth", "client_auth"]),
            _extension("subject_alt_name", [_general_name(host)]),
            _extension("key_identifier", _key_id(spki_der)),
            _extension("authority_key_identifier", {"key_identifier": _key_id(ca.spki_der)}),
        ],
    })
    return _sign_tbs(tbs, ca_key)


def write_file(path: str, data: bytes, private: bool = False) -> None:
    """Write atomically; private files (keys) are created mode 0600."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@attrs.define
class CertificateAuthority:
    """The management CA: ``ca.key`` (0600) and ``ca.pem`` in one folder."""

    key: sm2.PrivateKey
    cert: Certificate

    @classmethod
    def create(cls, folder: str, common_name: str, days: int = 3650) -> "CertificateAuthority":
        os.makedirs(folder, exist_ok=True)
        if os.path.exists(os.path.join(folder, "ca.key")):
            raise PKIError("a CA already exists in %s" % folder)
        key = sm2.generate_private_key()
        cert = create_ca(key, common_name, days)
        write_file(os.path.join(folder, "ca.key"), key.to_pem(), private=True)
        write_file(os.path.join(folder, "ca.pem"), cert.pem)
        return cls(key=key, cert=cert)

    @classmethod
    def load(cls, folder: str) -> "CertificateAuthority":
        with open(os.path.join(folder, "ca.key"), "rb") as f:
            key = sm2.load_private_key_pem(f.read())
        cert = load_pem_certificate(os.path.join(folder, "ca.pem"))
        if cert.public_key != key.public_key() or not cert.is_ca:
            raise PKIError("ca.key and ca.pem in %s do not belong together" % folder)
        return cls(key=key, cert=cert)

    @classmethod
    def open(cls, folder: str, common_name: str, days: int = 3650) -> "CertificateAuthority":
        if os.path.exists(os.path.join(folder, "ca.key")):
            return cls.load(folder)
        return cls.create(folder, common_name, days)

    def issue(self, request: CertificateRequest, server_id: str, host: str,
              days: int = 365, kind: str = SIGN) -> Certificate:
        return issue_certificate(self.key, self.cert, request, server_id, host, days,
                                 kind=kind)

    def certify_key(self, spki_der: bytes, server_id: str, host: str,
                    days: int = 365, kind: str = SIGN) -> Certificate:
        return certify_key(self.key, self.cert, spki_der, server_id, host, days, kind=kind)
