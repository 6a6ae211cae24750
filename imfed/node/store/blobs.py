"""The files' bytes on disk (the rows are imfed/node/store/files.py): copied with their
hashes, written whole or not at all, removed quietly."""

from __future__ import annotations

import hashlib
import os
import time

from ...crypto.sm3 import SM3

__all__ = ["hash_copy", "remove_leftovers", "remove_quietly", "CHUNK", "PARTIAL"]

CHUNK = 1 << 16

PARTIAL = ".part"
"""A file being written has this suffix until it is complete, checked and synced; then it
is renamed.  Leftovers (a daemon killed mid-write) are removed at start."""


def hash_copy(source, dest_path: str, limit: int) -> tuple[int, str, str]:
    """Copy a file object to ``dest_path`` in chunks (never whole in memory), through
    ``dest_path.part``: (size, md5, sm3).  ValueError beyond ``limit`` bytes, OSError when the
    disk refuses (nothing is left behind either way).  Runs in a thread."""
    md5, sm3, size = hashlib.md5(), SM3(), 0
    source.seek(0)
    partial = dest_path + PARTIAL
    try:
        with open(partial, "wb") as out:
            while True:
                chunk = source.read(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise ValueError("file over %d bytes" % limit)
                md5.update(chunk)
                sm3.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, dest_path)
    except BaseException:
        remove_quietly(partial)
        raise
    return size, md5.hexdigest(), sm3.hexdigest()


def remove_leftovers(folder: str, older_than: float | None = None) -> int:
    """Remove partial files a killed daemon left in ``folder``; how many.  With several
    processes on the folder, only those untouched for ``older_than`` seconds (another
    process may be writing the newer ones)."""
    removed = 0
    limit = None if older_than is None else time.time() - older_than
    for entry in os.scandir(folder):
        if entry.name.endswith(PARTIAL) and entry.is_file(follow_symlinks=False) and \
                (limit is None or entry.stat().st_mtime < limit):
            remove_quietly(entry.path)
            removed += 1
    return removed


def remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
