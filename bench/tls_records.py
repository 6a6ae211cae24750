"""The cost of the TLS layer between servers, in memory (no sockets), one core:

- a full mutual handshake per second;
- one record sent and received (a ~1 KB request, a 16 KB chunk of a file): µs per record, MB/s

for each transport imfed may speak: TLS 1.3 with TLS_SM4_GCM_SM3 and TLCP with ECDHE_SM4_GCM_SM3 /
ECC_SM4_CBC_SM3 on Tongsuo's libssl (imfed/crypto/_tongsuo.py, what imfed uses), and TLS 1.3
with AES-256-GCM (its default) on OpenSSL 4 through pyOpenSSL (what imfed used before the GM
transport).

    python bench/tls_records.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from OpenSSL import SSL  # noqa: E402

from imfed.crypto import _tongsuo, pki, sm2  # noqa: E402


def _pair(ca_key, ca, cn):
    key = sm2.generate_private_key()
    cert = pki.certify_key(ca_key, ca, key.public_key().spki_der(), cn, "127.0.0.1")
    enc_key = sm2.generate_private_key()
    enc = pki.certify_key(ca_key, ca, enc_key.public_key().spki_der(), cn, "127.0.0.1",
                          kind=pki.ENC)
    return key, cert, enc_key, enc


def _tongsuo_ctx(ca, me, kind: str):
    key, cert, enc_key, enc = me
    if kind == "tls13":
        ctx = _tongsuo.Context()
        ctx.set_versions(_tongsuo.TLS1_3_VERSION, _tongsuo.TLS1_3_VERSION)
        ctx.set_ciphersuites("TLS_SM4_GCM_SM3")
        ctx.set_groups("SM2")
        ctx.set_sigalgs("sm2sig_sm3")
        ctx.use_certificate(cert.der, key.to_pem())
    else:
        ctx = _tongsuo.Context(ntls_only=True)
        ctx.set_cipher_list(kind)
        ctx.use_tlcp_certificates(cert.der, key.to_pem(), enc.der, enc_key.to_pem())
    ctx.trust(ca.der)
    return ctx


def _ok(conn, der, errno, depth, ok):
    return bool(ok)


def _pyopenssl_ctx(folder, ca, me):
    key, cert, _, _ = me
    for name, data in (("ca.pem", ca.pem), ("c.pem", cert.pem), ("c.key", key.to_pem())):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
    ctx.use_certificate_file(os.path.join(folder, "c.pem"))
    ctx.use_privatekey_file(os.path.join(folder, "c.key"))
    ctx.load_verify_locations(os.path.join(folder, "ca.pem"))
    ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *a: a[-1])
    return ctx


def _shuttle(a, b):
    try:
        b.bio_write(a.bio_read(1 << 17))
    except SSL.WantReadError:
        pass


def _handshake(client, server):
    done = [False, False]
    for _ in range(20):
        for i, (x, y) in enumerate(((client, server), (server, client))):
            if not done[i]:
                try:
                    x.do_handshake()
                    done[i] = True
                except SSL.WantReadError:
                    pass
            _shuttle(x, y)
        if all(done):
            return
    raise RuntimeError("handshake did not finish")


def _connections(make):
    client, server = make()
    client.set_connect_state()
    server.set_accept_state()
    _handshake(client, server)
    return client, server


def _rate(fn, seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def measure(name: str, make, seconds: float) -> None:
    handshakes = _rate(lambda: _connections(make), seconds)
    client, server = _connections(make)
    figures = []
    for size in (1024, 16384):
        payload = os.urandom(size)

        def one():
            client.send(payload)
            server.bio_write(client.bio_read(1 << 17))
            got = server.recv(1 << 15)
            assert len(got) == size

        per_s = _rate(one, seconds)
        figures.append("%5d B: %6.1f µs/record %6.0f MB/s" % (size, 1e6 / per_s,
                                                             per_s * size / 1e6))
    print("%-34s %6.0f handshakes/s | %s" % (name, handshakes, " | ".join(figures)))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=2.0)
    args = p.parse_args()
    ca_key = sm2.generate_private_key()
    ca = pki.create_ca(ca_key, "bench CA")
    a, b = _pair(ca_key, ca, "node-a"), _pair(ca_key, ca, "node-b")
    print("Tongsuo: %s; pyOpenSSL on %s" % (_tongsuo.version(),
                                             SSL.SSLeay_version(SSL.SSLEAY_VERSION).decode()))
    for name, kind in (("TLS 1.3 TLS_SM4_GCM_SM3 (Tongsuo)", "tls13"),
                       ("TLCP ECDHE_SM4_GCM_SM3 (Tongsuo)", "ECDHE-SM2-SM4-GCM-SM3"),
                       ("TLCP ECC_SM4_CBC_SM3 (Tongsuo)", "ECC-SM2-SM4-CBC-SM3")):
        cc, sc = _tongsuo_ctx(ca, a, kind), _tongsuo_ctx(ca, b, kind)
        measure(name, lambda cc=cc, sc=sc: (_tongsuo.Connection(cc, _ok),
                                            _tongsuo.Connection(sc, _ok)), args.seconds)
    with tempfile.TemporaryDirectory() as folder:
        os.makedirs(folder + "/a")
        os.makedirs(folder + "/b")
        cc, sc = _pyopenssl_ctx(folder + "/a", ca, a), _pyopenssl_ctx(folder + "/b", ca, b)
        measure("TLS 1.3 AES_256_GCM (OpenSSL 4)",
                lambda: (SSL.Connection(cc, None), SSL.Connection(sc, None)), args.seconds)


if __name__ == "__main__":
    main()
