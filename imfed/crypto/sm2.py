"""SM2 (GB/T 32918): keys, signatures, encryption.

The only module that knows which library does the arithmetic.  We use tongsuopy (Tongsuo, an
OpenSSL 3 fork with native SM2): it signs with SM3 and the default distinguishing ID
``1234567812345678`` (GM/T 0009), emits DER signatures and GM/T 0009 ASN.1 C1C3C2 ciphertexts, and
reads and writes the PKCS#8 / SubjectPublicKeyInfo PEM that OpenSSL uses.  docs/crypto.md has the
measured figures behind the choice.
"""

from __future__ import annotations

from tongsuopy.backends.tongsuo.backend import backend as _backend
from tongsuopy.crypto import hashes as _hashes
from tongsuopy.crypto import serialization as _ser
from tongsuopy.crypto.asymciphers import ec as _ec
from tongsuopy.crypto.exceptions import InvalidSignature as _InvalidSignature

from ..metrics import SM2_OPERATIONS

__all__ = [
    "DEFAULT_ID",
    "SM2Error",
    "PrivateKey",
    "PublicKey",
    "generate_private_key",
    "load_private_key_pem",
    "load_public_key_pem",
    "load_public_key_der",
]

DEFAULT_ID = b"1234567812345678"
_ALG = _ec.ECDSA(_hashes.SM3())
_lib, _ffi = _backend._lib, _backend._ffi


class SM2Error(ValueError):
    """A key that is not an SM2 key, undecodable input, or a failed decryption."""


def _pkey_op(evp_pkey, init, op, data: bytes) -> bytes:
    ctx = _lib.EVP_PKEY_CTX_new(evp_pkey, _ffi.NULL)
    if ctx == _ffi.NULL:
        raise SM2Error("cannot create an SM2 context")
    ctx = _ffi.gc(ctx, _lib.EVP_PKEY_CTX_free)
    try:
        if init(ctx) != 1:
            raise SM2Error("SM2 operation not available for this key")
        size = _ffi.new("size_t *")
        if op(ctx, _ffi.NULL, size, data, len(data)) != 1:
            raise SM2Error("SM2 operation failed")
        buf = _ffi.new("unsigned char[]", size[0])
        if op(ctx, buf, size, data, len(data)) != 1:
            raise SM2Error("SM2 operation failed")
        return bytes(_ffi.buffer(buf)[: size[0]])
    finally:
        _backend._consume_errors()


def _check_sm2(key) -> None:
    if not isinstance(key.curve, _ec.SM2):
        raise SM2Error("not an SM2 key (curve %s)" % key.curve.name)


_SIGNED = SM2_OPERATIONS.labels("sign")
_VERIFIED = SM2_OPERATIONS.labels("verify")


class PublicKey:
    """An SM2 public key."""

    __slots__ = ("_key",)

    def __init__(self, key) -> None:
        _check_sm2(key)
        self._key = key

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True when ``signature`` (DER) is a valid SM2/SM3 signature of ``data``."""
        _VERIFIED.inc()
        try:
            self._key.verify(signature, data, _ALG)
        except _InvalidSignature:
            return False
        except Exception:
            # Malformed DER and the like: a bad signature, never a crash.
            _backend._consume_errors()
            return False
        return True

    def encrypt(self, plaintext: bytes) -> bytes:
        """GM/T 0009 ASN.1 C1C3C2 ciphertext."""
        if not plaintext:
            raise SM2Error("SM2 cannot encrypt an empty message")
        return _pkey_op(self._key._evp_pkey, _lib.EVP_PKEY_encrypt_init, _lib.EVP_PKEY_encrypt,
                        plaintext)

    def spki_der(self) -> bytes:
        return self._key.public_bytes(_ser.Encoding.DER, _ser.PublicFormat.SubjectPublicKeyInfo)

    def to_pem(self) -> bytes:
        return self._key.public_bytes(_ser.Encoding.PEM, _ser.PublicFormat.SubjectPublicKeyInfo)

    def point(self) -> bytes:
        """The uncompressed point 04||x||y."""
        return self._key.public_bytes(_ser.Encoding.X962, _ser.PublicFormat.UncompressedPoint)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.point() == self.point()

    def __hash__(self) -> int:
        return hash(self.point())


class PrivateKey:
    """An SM2 private key."""

    __slots__ = ("_key",)

    def __init__(self, key) -> None:
        _check_sm2(key)
        self._key = key

    def sign(self, data: bytes) -> bytes:
        """DER SM2 signature over ``data`` (SM3, default distinguishing ID)."""
        _SIGNED.inc()
        return bytes(self._key.sign(data, _ALG))

    def decrypt(self, ciphertext: bytes) -> bytes:
        return _pkey_op(self._key._evp_pkey, _lib.EVP_PKEY_decrypt_init, _lib.EVP_PKEY_decrypt,
                        ciphertext)

    def public_key(self) -> PublicKey:
        return PublicKey(self._key.public_key())

    def to_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM (the file is protected by its mode, 0600)."""
        return self._key.private_bytes(
            _ser.Encoding.PEM, _ser.PrivateFormat.PKCS8, _ser.NoEncryption()
        )


def generate_private_key() -> PrivateKey:
    return PrivateKey(_ec.generate_private_key(_ec.SM2()))


def _load(loader, data: bytes, *args):
    try:
        return loader(data, *args)
    except Exception as e:
        _backend._consume_errors()
        reason = e.args[0] if e.args else type(e).__name__
        raise SM2Error("cannot load key: %s" % reason) from None


def load_private_key_pem(data: bytes) -> PrivateKey:
    return PrivateKey(_load(_ser.load_pem_private_key, data, None))


def load_public_key_pem(data: bytes) -> PublicKey:
    return PublicKey(_load(_ser.load_pem_public_key, data))


def load_public_key_der(data: bytes) -> PublicKey:
    """From DER SubjectPublicKeyInfo (as found in certificates and CSRs)."""
    return PublicKey(_load(_ser.load_der_public_key, data))
