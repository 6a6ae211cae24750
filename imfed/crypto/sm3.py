"""SM3 (GB/T 32905) through cryptography's OpenSSL."""

from cryptography.hazmat.primitives import hashes

__all__ = ["sm3", "sm3_hex", "SM3"]


def sm3(data: bytes) -> bytes:
    """The 32-byte SM3 digest of ``data``."""
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


def sm3_hex(data: bytes) -> str:
    """Lower-case hex SM3 of ``data`` (what the profile puts on the wire)."""
    return sm3(data).hex()


class SM3:
    """Incremental SM3 for data that arrives in pieces (request bodies, files)."""

    def __init__(self) -> None:
        self._h = hashes.Hash(hashes.SM3())

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def hexdigest(self) -> str:
        return self._h.copy().finalize().hex()
