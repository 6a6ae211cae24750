"""A file fetched from the server that holds it, checked against the size and MD5 its
message announced."""

from __future__ import annotations

import os

from ..store.blobs import PARTIAL, remove_quietly

__all__ = ["FileMismatch", "fetch_checked", "fetch_public"]


class FileMismatch(ValueError):
    """A fetched file whose size or MD5 is not the one announced."""


async def fetch_checked(remote, peer, file_id: str, path: str, size: int, md5: str,
                        limit: int) -> str:
    """Stream ``file_id`` from its origin server into ``path`` (through ``path.part``, never
    whole in memory) and answer its SM3.  PeerFailed when the download fails, FileMismatch
    when the size or MD5 is not the announced one; nothing is left behind either way."""
    partial = path + PARTIAL
    try:
        got_size, got_md5, sm3 = await remote.download_file(peer, file_id, partial, limit)
        if (got_size, got_md5) != (size, md5):
            raise FileMismatch("%s arrived with size %d and md5 %s, not %d and %s"
                               % (file_id, got_size, got_md5, size, md5))
    except BaseException:
        remove_quietly(partial)
        raise
    os.replace(partial, path)
    return sm3


async def fetch_public(remote, peer, file_id: str, path: str,
                       limit: int) -> tuple[int, str, str]:
    """A public file of its origin server's (a portrait: no message announced its size and
    MD5), at most ``limit`` bytes, into ``path``: (size, md5, sm3).  PeerFailed otherwise;
    nothing is left behind."""
    partial = path + PARTIAL
    try:
        got = await remote.download_file(peer, file_id, partial, limit)
    except BaseException:
        remove_quietly(partial)
        raise
    os.replace(partial, path)
    return got
