"""SM2 signs/s and verifies/s on one core, as imfed does them, beside `openssl speed sm2` and
whichever other Python SM2 libraries happen to be installed (for the record of the choice).

    python bench/sm2_speed.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))

from imfed.crypto import signing, sm2  # noqa: E402

MESSAGE = b"x" * 300  # about one string-to-sign


def rate(fn, seconds: float) -> float:
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            fn()
        n += 50
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def imfed_figures(seconds: float) -> dict:
    key = sm2.generate_private_key()
    pub = key.public_key()
    sig = key.sign(MESSAGE)
    ts, body = 1767225600000, b'{"messageInfo":{}}' * 10

    def sign_request():
        signing.sign_request(key, "POST", "/sns/chat", "node-a", "node-b", body, ts)

    header, nonce = signing.sign_request(key, "POST", "/sns/chat", "node-a", "node-b", body, ts)
    parsed = signing.parse_authorization(header)

    def verify_request():
        parsed2 = signing.parse_authorization(header)
        pub.verify(parsed2.sig, signing.string_to_sign("POST", "/sns/chat", "node-a", "node-b",
                                                       ts, parsed.nonce, body))

    return {
        "imfed sm2 sign": rate(lambda: key.sign(MESSAGE), seconds),
        "imfed sm2 verify": rate(lambda: pub.verify(sig, MESSAGE), seconds),
        "imfed signed-request header (sign)": rate(sign_request, seconds),
        "imfed signed-request check (parse+verify)": rate(verify_request, seconds),
    }


def others(seconds: float) -> dict:
    out = {}
    try:
        import gmssl_pyx as g

        pk, sk = g.sm2_key_generate()
        s = g.sm2_sign(sk, pk, MESSAGE)
        out["gmssl-pyx sign"] = rate(lambda: g.sm2_sign(sk, pk, MESSAGE), seconds)
        out["gmssl-pyx verify"] = rate(lambda: g.sm2_verify(pk, MESSAGE, s), seconds)
    except ImportError:
        pass
    try:
        import gmssl_fast as f

        k = f.SM2.generate()
        s = k.sign(MESSAGE)
        out["gmssl-fast sign"] = rate(lambda: k.sign(MESSAGE), seconds)
        out["gmssl-fast verify"] = rate(lambda: k.verify(MESSAGE, s), seconds)
    except ImportError:
        pass
    try:
        from gmssl import sm2 as pure, func

        priv = func.random_hex(64)
        # Public key from the private one is not exposed by gmssl; time sign only on a
        # throwaway pair from gmssl's own example shape.
        c = pure.CryptSM2(private_key=priv, public_key="04" + "0" * 128)
        kk = func.random_hex(c.para_len)
        out["gmssl (pure Python) sign"] = rate(lambda: c.sign(MESSAGE, kk), min(seconds, 1))
    except ImportError:
        pass
    return out


def openssl_speed(seconds: float) -> dict:
    try:
        text = subprocess.run(["openssl", "speed", "-seconds", str(int(seconds)), "sm2"],
                              capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    m = re.search(r"SM2 \(CurveSM2\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", text)
    if not m:
        return {}
    return {"openssl speed sm2 sign": float(m.group(1)),
            "openssl speed sm2 verify": float(m.group(2))}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--no-others", action="store_true")
    args = p.parse_args()
    figures = imfed_figures(args.seconds)
    figures.update(openssl_speed(args.seconds))
    if not args.no_others:
        figures.update(others(args.seconds))
    width = max(map(len, figures))
    for name, value in figures.items():
        print("%-*s %10.0f /s  (%.3f ms each)" % (width, name, value, 1000 / value))


if __name__ == "__main__":
    main()
