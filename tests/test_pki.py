"""The SM2 PKI: CA, CSRs, issued certificates, chain checks, and the imfed pki command."""

from __future__ import annotations

import datetime
import subprocess
import sys

import pytest

from imfed.crypto import pki, sm2

from conftest import make_ca, openssl

DISTID = "distid:1234567812345678"


def _verify_with_openssl(ca_file, cert_file):
    return openssl("verify", "-vfyopt", DISTID, "-CAfile", ca_file, cert_file, check=False)


def test_issued_certificate_passes_openssl_verify(ca, tmp_path):
    issued = ca.issue("node-a", host="im.example.com")
    result = _verify_with_openssl(ca.ca_file, issued.cert_file)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(b"OK")
    cert = issued.cert
    assert cert.subject_cn == "node-a"
    assert cert.san == ["im.example.com"]
    assert sorted(cert.ext_key_usage) == ["client_auth", "server_auth"]
    assert not cert.is_ca and ca.authority.cert.is_ca
    assert cert.serial.bit_length() >= 64
    assert cert.fingerprint == pki.fingerprint(cert.der) and len(cert.fingerprint) == 64
    text = openssl("x509", "-in", issued.cert_file, "-noout", "-text").stdout.decode()
    assert "SM2-with-SM3" in text and "IP Address" not in text
    pki.verify_issued(cert, ca.authority.cert, server_id="node-a")


def test_ip_address_san(ca):
    assert ca.issue("node-b", host="127.0.0.1").cert.san == ["127.0.0.1"]


def test_verify_issued_refuses(ca, other_ca):
    foreign = other_ca.issue("node-a")
    with pytest.raises(pki.PKIError, match="not signed"):
        pki.verify_issued(foreign.cert, ca.authority.cert)
    assert _verify_with_openssl(ca.ca_file, foreign.cert_file).returncode != 0
    mine = ca.issue("node-a")
    with pytest.raises(pki.PKIError, match="expected"):
        pki.verify_issued(mine.cert, ca.authority.cert, server_id="node-b")
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=400)
    with pytest.raises(pki.PKIError, match="validity"):
        pki.verify_issued(mine.cert, ca.authority.cert, when=later)
    with pytest.raises(pki.PKIError, match="CA certificate"):
        pki.verify_issued(ca.authority.cert, ca.authority.cert)


def test_certificate_signed_under_another_distinguishing_id_is_refused(ca, tmp_path):
    """OpenSSL's own handling of the SM2 ID has had bugs; our check uses the default ID."""
    key = sm2.generate_private_key()
    (tmp_path / "csr.pem").write_bytes(pki.make_csr(key, "node-x").pem)
    out = tmp_path / "odd.pem"
    openssl("x509", "-req", "-in", str(tmp_path / "csr.pem"), "-CA", ca.ca_file,
            "-CAkey", ca.folder + "/ca.key", "-CAcreateserial", "-days", "30", "-sm3",
            "-sigopt", "distid:0000000000000001", "-vfyopt", DISTID,
            "-out", str(out))
    odd = pki.Certificate.from_pem(out.read_bytes())
    assert odd.subject_cn == "node-x"
    assert not odd.signed_by(ca.authority.cert)
    with pytest.raises(pki.PKIError):
        pki.verify_issued(odd, ca.authority.cert)
    # The same request signed under the default ID passes.
    good = ca.authority.issue(pki.CertificateRequest.from_pem((tmp_path / "csr.pem").read_bytes()),
                              "node-x", "127.0.0.1")
    pki.verify_issued(good, ca.authority.cert)


def test_csr_checks(ca, tmp_path):
    key = sm2.generate_private_key()
    request = pki.make_csr(key, "node-a")
    parsed = pki.CertificateRequest.from_pem(request.pem)
    assert parsed.common_name == "node-a" and parsed.public_key == key.public_key()
    (tmp_path / "r.pem").write_bytes(request.pem)
    ok = openssl("req", "-in", str(tmp_path / "r.pem"), "-verify", "-noout", "-vfyopt", DISTID,
                 check=False)
    assert ok.returncode == 0, ok.stderr
    # A request for another id is never issued as this one.
    with pytest.raises(pki.PKIError, match="names"):
        ca.authority.issue(parsed, "node-b", "127.0.0.1")
    # Tampering breaks the self-signature.
    der = bytearray(request.der)
    index = der.find(b"node-a")
    der[index] = ord("m")
    with pytest.raises(pki.PKIError, match="self-signature"):
        pki.CertificateRequest.from_der(bytes(der))
    with pytest.raises(pki.PKIError):
        pki.CertificateRequest.from_pem("not a csr")
    with pytest.raises(pki.PKIError):
        pki.CertificateRequest.from_pem(ca.authority.cert.pem)


def test_csr_from_openssl_and_non_sm2_csr(tmp_path):
    openssl("genpkey", "-algorithm", "SM2", "-out", str(tmp_path / "sm2.key"))
    openssl("req", "-new", "-key", str(tmp_path / "sm2.key"), "-subj", "/CN=node-o", "-sm3",
            "-sigopt", DISTID, "-out", str(tmp_path / "sm2.csr"))
    parsed = pki.CertificateRequest.from_pem((tmp_path / "sm2.csr").read_bytes())
    assert parsed.common_name == "node-o"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
            str(tmp_path / "p256.key"))
    openssl("req", "-new", "-key", str(tmp_path / "p256.key"), "-subj", "/CN=node-p", "-out",
            str(tmp_path / "p256.csr"))
    with pytest.raises(pki.PKIError, match="SM2"):
        pki.CertificateRequest.from_pem((tmp_path / "p256.csr").read_bytes())


def test_ca_folder_round_trip(tmp_path):
    folder = str(tmp_path / "ca")
    created = pki.CertificateAuthority.create(folder, "round trip CA")
    loaded = pki.CertificateAuthority.load(folder)
    assert loaded.cert.der == created.cert.der
    assert oct((tmp_path / "ca" / "ca.key").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(pki.PKIError):
        pki.CertificateAuthority.create(folder, "again")
    other = make_ca(str(tmp_path / "other"))
    (tmp_path / "ca" / "ca.pem").write_bytes(other.authority.cert.pem)
    with pytest.raises(pki.PKIError, match="belong"):
        pki.CertificateAuthority.load(folder)


def _imfed(*args):
    return subprocess.run([sys.executable, "-m", "imfed.cli", *args], capture_output=True,
                          text=True)


def test_pki_command_line(tmp_path):
    d = str(tmp_path)
    r = _imfed("pki", "init-ca", "--dir", d + "/ca", "--cn", "cli CA")
    assert r.returncode == 0, r.stderr
    assert _imfed("pki", "keygen", "--out", d + "/node.key").returncode == 0
    assert _imfed("pki", "keygen", "--out", d + "/node.key").returncode != 0  # never overwrites
    assert _imfed("pki", "csr", "--server-id", "node-c", "--key", d + "/node.key", "--out",
                  d + "/node.csr").returncode == 0
    r = _imfed("pki", "issue", "--ca-dir", d + "/ca", "--csr", d + "/node.csr", "--host",
               "127.0.0.1", "--out", d + "/node.pem")
    assert r.returncode == 0, r.stderr
    assert _verify_with_openssl(d + "/ca/ca.pem", d + "/node.pem").returncode == 0
    shown = _imfed("pki", "show", d + "/node.pem")
    assert "subject CN   node-c" in shown.stdout and "127.0.0.1" in shown.stdout
    assert "CN node-c" in _imfed("pki", "show", d + "/node.csr").stdout
    bad = _imfed("pki", "issue", "--ca-dir", d + "/ca", "--csr", d + "/node.csr", "--host",
                 "127.0.0.1", "--server-id", "node-d")
    assert bad.returncode == 1 and "names" in bad.stderr


def _extensions(cert: pki.Certificate) -> dict:
    from asn1crypto import x509

    tbs = x509.Certificate.load(cert.der)["tbs_certificate"]
    return {e["extn_id"].native: e for e in tbs["extensions"]}


def test_signing_and_encryption_certificates_for_gm_verifiers(ca, tmp_path):
    """Both kinds pass `openssl verify` under the default distinguishing ID, carry the usages
    TLCP wants, and have no BasicConstraints at all (GmSSL refuses the empty one, 30 00, that
    cA FALSE encodes to).  Tongsuo's verifier is exercised by the handshakes of
    tests/test_gm_transport.py, which verify these certificates with it."""
    authority = ca.authority
    enc_key = sm2.generate_private_key()
    issued = ca.issue("node-a", host="127.0.0.1")
    enc = authority.issue(pki.make_csr(enc_key, "node-a"), "node-a", "127.0.0.1", kind=pki.ENC)
    (tmp_path / "enc.pem").write_bytes(enc.pem)
    for cert, path, kind, usage in (
            (issued.cert, issued.cert_file, pki.SIGN, {"digital_signature", "non_repudiation"}),
            (enc, str(tmp_path / "enc.pem"), pki.ENC,
             {"key_encipherment", "data_encipherment", "key_agreement"})):
        result = _verify_with_openssl(ca.ca_file, path)
        assert result.returncode == 0, result.stderr
        assert cert.kind == kind and cert.key_usage == usage
        extensions = _extensions(cert)
        assert "basic_constraints" not in extensions
        assert extensions["key_usage"]["critical"].native is True
        assert sorted(cert.ext_key_usage) == ["client_auth", "server_auth"]
        pki.verify_issued(cert, authority.cert, server_id="node-a", kind=kind)
        text = openssl("x509", "-in", path, "-noout", "-text").stdout.decode()
        assert "Basic Constraints" not in text
    with pytest.raises(pki.PKIError, match="not an encryption certificate"):
        pki.verify_issued(issued.cert, authority.cert, kind=pki.ENC)
    with pytest.raises(pki.PKIError, match="not a signing certificate"):
        pki.verify_issued(enc, authority.cert, kind=pki.SIGN)
    # The CA keeps its BasicConstraints (cA TRUE, critical).
    assert _extensions(authority.cert)["basic_constraints"]["critical"].native is True


def test_pki_command_line_issues_and_shows_an_encryption_certificate(tmp_path):
    d = str(tmp_path)
    assert _imfed("pki", "init-ca", "--dir", d + "/ca").returncode == 0
    assert _imfed("pki", "keygen", "--out", d + "/enc.key").returncode == 0
    assert _imfed("pki", "csr", "--server-id", "node-c", "--key", d + "/enc.key", "--out",
                  d + "/enc.csr").returncode == 0
    r = _imfed("pki", "issue", "--ca-dir", d + "/ca", "--csr", d + "/enc.csr", "--host",
               "127.0.0.1", "--usage", "enc", "--out", d + "/enc.pem")
    assert r.returncode == 0, r.stderr
    assert _verify_with_openssl(d + "/ca/ca.pem", d + "/enc.pem").returncode == 0
    shown = _imfed("pki", "show", d + "/enc.pem").stdout
    assert "encryption certificate (TLCP)" in shown
    assert "data_encipherment, key_agreement, key_encipherment" in shown
