"""SM4 (GB/T 32907) in CBC (PKCS#7 padding) and GCM, through cryptography's OpenSSL."""

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "SM4Error",
    "cbc_encrypt",
    "cbc_decrypt",
    "gcm_encrypt",
    "gcm_decrypt",
    "ecb_encrypt_block",
]

BLOCK = 16
TAG = 16


class SM4Error(ValueError):
    """A key, IV or nonce of the wrong size, bad padding, or a failed GCM tag."""


def _key(key: bytes) -> algorithms.SM4:
    if len(key) != 16:
        raise SM4Error("SM4 key must be 16 bytes")
    return algorithms.SM4(key)


def ecb_encrypt_block(key: bytes, block: bytes) -> bytes:
    """One raw block; only for the published test vector."""
    if len(block) != BLOCK:
        raise SM4Error("SM4 block must be 16 bytes")
    enc = Cipher(_key(key), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    if len(iv) != BLOCK:
        raise SM4Error("SM4-CBC IV must be 16 bytes")
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext) + padder.finalize()
    enc = Cipher(_key(key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    if len(iv) != BLOCK:
        raise SM4Error("SM4-CBC IV must be 16 bytes")
    if not ciphertext or len(ciphertext) % BLOCK:
        raise SM4Error("SM4-CBC ciphertext must be a non-empty multiple of 16 bytes")
    dec = Cipher(_key(key), modes.CBC(iv)).decryptor()
    data = dec.update(ciphertext) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(data) + unpadder.finalize()
    except ValueError:
        raise SM4Error("bad SM4-CBC padding") from None


def gcm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """Ciphertext followed by the 16-byte tag."""
    if len(nonce) != 12:
        raise SM4Error("SM4-GCM nonce must be 12 bytes")
    enc = Cipher(_key(key), modes.GCM(nonce)).encryptor()
    enc.authenticate_additional_data(aad)
    ct = enc.update(plaintext) + enc.finalize()
    return ct + enc.tag


def gcm_decrypt(key: bytes, nonce: bytes, data: bytes, aad: bytes = b"") -> bytes:
    if len(nonce) != 12:
        raise SM4Error("SM4-GCM nonce must be 12 bytes")
    if len(data) < TAG:
        raise SM4Error("SM4-GCM input shorter than its tag")
    ct, tag = data[:-TAG], data[-TAG:]
    dec = Cipher(_key(key), modes.GCM(nonce, tag)).decryptor()
    dec.authenticate_additional_data(aad)
    try:
        return dec.update(ct) + dec.finalize()
    except InvalidTag:
        raise SM4Error("SM4-GCM authentication failed") from None
