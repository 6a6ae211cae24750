"""The request and response signatures of docs/protocol.md §3 as pure wire code."""

from __future__ import annotations

import base64

import pytest

from imfed.crypto import signing, sm2

from conftest import openssl

BODY = b'{"messageInfo":{"messageID":"m1@node-a"}}'
NONCE = "0123456789abcdef0123456789abcdef"


def test_string_to_sign_is_pinned():
    text = signing.string_to_sign("post", "/sns/chat?x=1&y=%E4%BD%A0", "node-a", "node-b",
                                  1767225600000, NONCE, BODY)
    assert text == (
        b"IMFED-SM2-V1\n"
        b"POST\n"
        b"/sns/chat?x=1&y=%E4%BD%A0\n"
        b"node-a\n"
        b"node-b\n"
        b"1767225600000\n"
        b"0123456789abcdef0123456789abcdef\n"
        b"510d3e6740b68613179a813fa628cbf176743454654fcc263eab45fbcb38df27")
    empty = signing.string_to_sign("GET", "/sns/users?userID=1%40b", "a", "b", 1, NONCE, b"")
    assert empty.endswith(b"\n1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b")


def test_response_string_is_pinned():
    text = signing.response_string_to_sign(200, NONCE, "node-b", 1767225600001,
                                           b'{"code":0,"error":""}')
    assert text == (b"IMFED-SM2-RESP-V1\n200\n0123456789abcdef0123456789abcdef\nnode-b\n"
                    b"1767225600001\n"
                    b"4a12cda4dda48920e142fe9fd8bc8397dbe25398780ddaf2a0e83aaf49f238b6")


def test_header_round_trip_and_openssl_checks_the_signature(tmp_path):
    key = sm2.generate_private_key()
    header, nonce = signing.sign_request(key, "POST", "/sns/chat", "node-a", "node-b", BODY,
                                         1767225600000)
    assert header.startswith('IMFED-SM2 origin="node-a",destination="node-b",ts="1767225600000"')
    parsed = signing.parse_authorization(header)
    assert (parsed.origin, parsed.destination, parsed.ts, parsed.nonce) == (
        "node-a", "node-b", 1767225600000, nonce)
    (tmp_path / "pub.pem").write_bytes(key.public_key().to_pem())
    (tmp_path / "tbs").write_bytes(signing.string_to_sign(
        "POST", "/sns/chat", "node-a", "node-b", 1767225600000, nonce, BODY))
    (tmp_path / "sig").write_bytes(parsed.sig)
    result = openssl("pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pkeyopt",
                     "distid:1234567812345678", "-pubin", "-inkey", str(tmp_path / "pub.pem"),
                     "-in", str(tmp_path / "tbs"), "-sigfile", str(tmp_path / "sig"),
                     check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("value", [
    None, "", "Bearer x",
    'IMFED-SM2 origin="a",destination="b",ts="1",nonce="%s"' % NONCE,  # no sig
    'IMFED-SM2 origin="a",destination="b",ts="1",nonce="%s",sig="AA==",sig="AA=="' % NONCE,
    'IMFED-SM2 origin="a",destination="b",ts="1",nonce="xyz",sig="AA=="',
    'IMFED-SM2 origin="a",destination="b",ts="-1",nonce="%s",sig="AA=="' % NONCE,
    'IMFED-SM2 origin="a b",destination="b",ts="1",nonce="%s",sig="AA=="' % NONCE,
    'IMFED-SM2 origin="a",destination="b",ts="1",nonce="%s",sig="!!"' % NONCE,
    'IMFED-SM2 origin="a",destination="b",ts="1",nonce="%s",sig="AA==",extra="1"' % NONCE,
])
def test_bad_authorization_headers(value):
    with pytest.raises(signing.SignatureError):
        signing.parse_authorization(value)


def test_response_signature():
    key = sm2.generate_private_key()
    body = b'{"code":0,"error":""}'
    header = signing.sign_response(key, 200, NONCE, "node-b", 5, body)
    signing.verify_response(header, 200, NONCE, "node-b", key.public_key(), body)
    for status, nonce, who, data in [(201, NONCE, "node-b", body), (200, "f" * 32, "node-b", body),
                                     (200, NONCE, "node-c", body), (200, NONCE, "node-b", b"{}")]:
        with pytest.raises(signing.SignatureError):
            signing.verify_response(header, status, nonce, who, key.public_key(), data)
    with pytest.raises(signing.SignatureError):
        signing.verify_response(None, 200, NONCE, "node-b", key.public_key(), body)
    forged = header.replace('sig="', 'sig="' + base64.b64encode(b"x").decode()[:4])
    with pytest.raises(signing.SignatureError):
        signing.verify_response(forged, 200, NONCE, "node-b", key.public_key(), body)


def test_nonce_cache_window():
    cache = signing.NonceCache(window_ms=1000)
    assert cache.check_and_add("a", NONCE, 0, ts_ms=0)
    assert not cache.check_and_add("a", NONCE, 500, ts_ms=0)
    assert cache.check_and_add("b", NONCE, 500, ts_ms=0)  # per origin
    # A replay still inside the window (|now - ts| <= 1000) is refused ...
    assert not cache.check_and_add("a", NONCE, 1000, ts_ms=0)
    # ... and once the request could no longer pass the ts check, the nonce is forgotten.
    assert cache.check_and_add("a", NONCE, 1001, ts_ms=1001)
    assert len(cache) == 1
    # A caller whose clock is ahead: its nonce is kept until its own ts leaves the window.
    assert cache.check_and_add("c", "f" * 16, 1100, ts_ms=2000)
    assert not cache.check_and_add("c", "f" * 16, 2900, ts_ms=2000)
    assert cache.check_and_add("c", "f" * 16, 3001, ts_ms=3001)
