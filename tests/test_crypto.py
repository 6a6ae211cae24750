"""SM3, SM4 and SM2: published vectors, and interop with the openssl command both ways."""

from __future__ import annotations

import pytest

from imfed.crypto import sm2, sm3, sm4

from conftest import openssl

DISTID = "distid:1234567812345678"


def test_sm3_vectors():
    # GB/T 32905-2016 appendix A, examples 1 and 2.
    assert sm3.sm3_hex(b"abc") == (
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")
    assert sm3.sm3_hex(b"abcd" * 16) == (
        "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732")
    h = sm3.SM3()
    for piece in (b"a", b"b", b"c"):
        h.update(piece)
    assert h.hexdigest() == sm3.sm3_hex(b"abc")


def test_sm4_vector():
    # GB/T 32907-2016 appendix A, example 1.
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    assert sm4.ecb_encrypt_block(key, key).hex() == "681edf34d206965e86b3e94f536e4246"


def test_sm4_cbc_and_gcm_round_trip_and_tamper():
    key, iv, nonce = bytes(range(16)), bytes(16), bytes(12)
    for size in (0, 1, 15, 16, 17, 1000):
        data = bytes(range(256)) * 4
        data = data[:size]
        assert sm4.cbc_decrypt(key, iv, sm4.cbc_encrypt(key, iv, data)) == data
        sealed = sm4.gcm_encrypt(key, nonce, data, b"aad")
        assert sm4.gcm_decrypt(key, nonce, sealed, b"aad") == data
        with pytest.raises(sm4.SM4Error):
            sm4.gcm_decrypt(key, nonce, sealed, b"other aad")
    sealed = bytearray(sm4.gcm_encrypt(key, nonce, b"hello"))
    sealed[0] ^= 1
    with pytest.raises(sm4.SM4Error):
        sm4.gcm_decrypt(key, nonce, bytes(sealed))
    with pytest.raises(sm4.SM4Error):
        sm4.cbc_encrypt(b"short", iv, b"x")


def test_sm4_matches_openssl(tmp_path):
    key, iv = bytes(range(16)), bytes(range(16, 32))
    data = b"interconnection " * 5
    (tmp_path / "p").write_bytes(data)
    out = openssl("enc", "-sm4-cbc", "-K", key.hex(), "-iv", iv.hex(), "-in",
                  str(tmp_path / "p")).stdout
    assert out == sm4.cbc_encrypt(key, iv, data)


def test_sm2_sign_verify():
    key = sm2.generate_private_key()
    sig = key.sign(b"message")
    pub = key.public_key()
    assert pub.verify(sig, b"message")
    assert not pub.verify(sig, b"messagf")
    assert not pub.verify(b"\x30\x02\x01\x01", b"message")
    assert not sm2.generate_private_key().public_key().verify(sig, b"message")


def test_sm2_encrypt_decrypt():
    key = sm2.generate_private_key()
    ct = key.public_key().encrypt(b"a session key 16")
    assert key.decrypt(ct) == b"a session key 16"
    with pytest.raises(sm2.SM2Error):
        sm2.generate_private_key().decrypt(ct)


def test_sm2_refuses_other_curves(tmp_path):
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
            str(tmp_path / "p256.pem"))
    with pytest.raises(sm2.SM2Error):
        sm2.load_private_key_pem((tmp_path / "p256.pem").read_bytes())


def _files(tmp_path, key):
    (tmp_path / "key.pem").write_bytes(key.to_pem())
    (tmp_path / "pub.pem").write_bytes(key.public_key().to_pem())
    return str(tmp_path / "key.pem"), str(tmp_path / "pub.pem")


def test_imfed_signature_verifies_in_openssl(tmp_path):
    key = sm2.generate_private_key()
    _, pub = _files(tmp_path, key)
    (tmp_path / "msg").write_bytes(b"signed by imfed")
    (tmp_path / "sig").write_bytes(key.sign(b"signed by imfed"))
    ok = openssl("pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pkeyopt", DISTID,
                 "-pubin", "-inkey", pub, "-in", str(tmp_path / "msg"),
                 "-sigfile", str(tmp_path / "sig"), check=False)
    assert ok.returncode == 0, ok.stderr
    wrong_id = openssl("pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pkeyopt",
                       "distid:1234567812345679", "-pubin", "-inkey", pub, "-in",
                       str(tmp_path / "msg"), "-sigfile", str(tmp_path / "sig"), check=False)
    assert wrong_id.returncode != 0


def test_openssl_signature_and_key_verify_in_imfed(tmp_path):
    openssl("genpkey", "-algorithm", "SM2", "-out", str(tmp_path / "k.pem"))
    openssl("pkey", "-in", str(tmp_path / "k.pem"), "-pubout", "-out", str(tmp_path / "p.pem"))
    (tmp_path / "msg").write_bytes(b"signed by openssl")
    sig = openssl("pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-pkeyopt", DISTID,
                  "-inkey", str(tmp_path / "k.pem"), "-in", str(tmp_path / "msg")).stdout
    pub = sm2.load_public_key_pem((tmp_path / "p.pem").read_bytes())
    assert pub.verify(sig, b"signed by openssl")
    assert not pub.verify(sig, b"signed by someone")
    # The private key OpenSSL wrote loads here and matches its public half.
    key = sm2.load_private_key_pem((tmp_path / "k.pem").read_bytes())
    assert key.public_key() == pub
    assert pub.verify(key.sign(b"x"), b"x")


def test_imfed_keys_load_in_openssl(tmp_path):
    key = sm2.generate_private_key()
    priv, pub = _files(tmp_path, key)
    text = openssl("pkey", "-in", priv, "-text", "-noout").stdout.decode()
    assert "SM2" in text
    out = openssl("pkey", "-in", priv, "-pubout").stdout
    assert sm2.load_public_key_pem(out) == key.public_key()
    openssl("pkey", "-pubin", "-in", pub, "-noout")


def test_sm2_encryption_interop(tmp_path):
    key = sm2.generate_private_key()
    priv, pub = _files(tmp_path, key)
    # imfed encrypts, OpenSSL decrypts.
    (tmp_path / "ct").write_bytes(key.public_key().encrypt(b"from imfed"))
    assert openssl("pkeyutl", "-decrypt", "-inkey", priv, "-in",
                   str(tmp_path / "ct")).stdout == b"from imfed"
    # OpenSSL encrypts, imfed decrypts.
    ct = openssl("pkeyutl", "-encrypt", "-pubin", "-inkey", pub, input=b"from openssl").stdout
    assert key.decrypt(ct) == b"from openssl"
    # The ciphertext is GM/T 0009 ASN.1: SEQUENCE { x, y, C3 (32 bytes), C2 }.
    parsed = openssl("asn1parse", "-inform", "DER", input=ct).stdout.decode()
    assert parsed.count("INTEGER") == 2 and parsed.count("OCTET STRING") == 2
