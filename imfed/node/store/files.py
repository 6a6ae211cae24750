"""Files (§6.2.4-6.2.6, §6.2.9, §6.4.1.11, docs/protocol.md §5): uploads kept on disk with their
size, MD5 and SM3; who may fetch what; the cache of other servers' files."""

from __future__ import annotations

import attrs

from ...storage import like_pattern, transaction
from .blobs import remove_quietly

__all__ = ["StoredFile", "add_file", "get_file", "set_cached", "user_entitled",
           "server_entitled", "expect_remote", "grant", "withdraw", "NotTheirs", "PUBLIC"]

class NotTheirs(ValueError):
    """A server announced a file that is not its own (the handlers refuse such a message
    before it reaches the store: imfed/node/handlers/)."""


@attrs.frozen
class StoredFile:
    file_id: str
    owner_id: str
    name: str
    size: int
    md5: str
    sm3: str
    path: str | None
    created_at: int



_COLUMNS = "file_id, owner_id, name, size, md5, sm3, path, created_at"


@transaction
def add_file(cur, f: StoredFile) -> None:
    cur.execute("INSERT INTO files (%s) VALUES (?, ?, ?, ?, ?, ?, ?, ?)" % _COLUMNS,
                attrs.astuple(f))
    grant(cur, f.file_id, f.owner_id)


PUBLIC = "*"
"""The holder that makes a file anyone's to fetch: a user's portrait (any user here, any
server of the federation)."""


def grant(cur, file_id: str, holder: str) -> None:
    """``holder`` (a user, a group mastered here: its members, or PUBLIC) may fetch the
    file."""
    cur.execute("INSERT INTO file_access VALUES (?, ?) ON CONFLICT DO NOTHING",
                (file_id, holder))


def withdraw(cur, file_id: str, holder: str) -> None:
    """A recalled message took ``file_id`` back from ``holder``: unless another message that
    still stands sent it the same file, the holder may no longer fetch it; a copy of another
    server's file that no one here may fetch any more is removed (it is fetched again should a
    later message send it)."""
    cur.execute("SELECT 1 FROM messages WHERE recv_id = ? AND recalled = 0 AND content LIKE ? "
                "ESCAPE '\\'", (holder, like_pattern('"fileID":"%s"' % file_id)))
    if cur.fetchone() is not None:
        return
    cur.execute("DELETE FROM file_access WHERE file_id = ? AND user_id = ?", (file_id, holder))
    stored = get_file(cur, file_id)
    if stored is None or not stored.path:
        return
    cur.execute("SELECT 1 FROM users WHERE user_id = ?", (stored.owner_id,))
    ours = cur.fetchone() is not None  # the upload itself, not a copy: its owner keeps it
    cur.execute("SELECT 1 FROM file_access WHERE file_id = ?", (file_id,))
    if not ours and cur.fetchone() is None:
        cur.execute("UPDATE files SET path = NULL, sm3 = '' WHERE file_id = ?", (file_id,))
        remove_quietly(stored.path)


def withdraw_from_group(cur, file_id: str, group_id: str, user_ids: list[str],
                        sender_id: str) -> None:
    """A recalled group message took ``file_id`` back: unless another message of the group
    that still stands sent it, neither the group (its members, at the master) nor ``user_ids``
    (the members here, at another server) but its sender may fetch it any more, each as
    ``withdraw``."""
    cur.execute("SELECT 1 FROM group_messages WHERE group_id = ? AND recalled = 0 AND content "
                "LIKE ? ESCAPE '\\'", (group_id, like_pattern('"fileID":"%s"' % file_id)))
    if cur.fetchone() is not None:
        return
    for holder in (group_id, *user_ids):
        if holder != sender_id:
            withdraw(cur, file_id, holder)


def get_file(cur, file_id: str) -> StoredFile | None:
    cur.execute("SELECT %s FROM files WHERE file_id = ?" % _COLUMNS, (file_id,))
    row = cur.fetchone()
    return StoredFile(*row) if row else None


def expect_remote(cur, content: dict, owner_id: str, recipients: list[str],
                  now_ms: int, origin: str) -> None:
    """A file the server ``origin`` announced in a message: known from now on (size and MD5
    to check it against), granted to ``recipients``, fetched from ``origin`` when one of them
    first downloads it.  Only a file of ``origin``'s may be announced by it: no other server
    can grant our users a file, least of all one of ours."""
    if content["fileID"].rsplit("@", 1)[1] != origin:
        # In a group only the master's copy is announced (§6.4.2.10); in a 1:1 message only
        # the sender's server's file.  Anything else, ours above all, would grant our users a
        # file not theirs.
        raise NotTheirs("fileID %s must name %s, the server that announces it"
                        % (content["fileID"], origin))
    cur.execute("INSERT INTO files (file_id, owner_id, name, size, md5, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (content["fileID"], owner_id, content.get("name", ""), content["size"],
                 content["md5"], now_ms))
    cur.executemany("INSERT INTO file_access VALUES (?, ?) ON CONFLICT DO NOTHING",
                    [(content["fileID"], uid) for uid in recipients])


@transaction
def set_cached(cur, file_id: str, path: str, sm3: str) -> None:
    cur.execute("UPDATE files SET path = ?, sm3 = ? WHERE file_id = ?", (path, sm3, file_id))


def _group_members(cur, file_id: str) -> list[str]:
    """Members of the groups mastered here that the file was sent to (a grant to a group ID,
    §6.4.2.10)."""
    cur.execute("SELECT m.user_id FROM file_access a JOIN groups g ON g.group_id = a.user_id "
                "JOIN group_members m ON m.group_id = g.group_id WHERE a.file_id = ? AND "
                "g.master = 1 AND g.dissolved = 0", (file_id,))
    return [r[0] for r in cur.fetchall()]


def user_entitled(cur, file_id: str, user_id: str) -> bool:
    cur.execute("SELECT 1 FROM file_access WHERE file_id = ? AND user_id IN (?, ?)",
                (file_id, user_id, PUBLIC))
    return cur.fetchone() is not None or user_id in _group_members(cur, file_id)


def server_entitled(cur, file_id: str, server_id: str) -> bool:
    """Has ``server_id`` a user the file was sent to (directly, or as a group member)?"""
    cur.execute("SELECT user_id FROM file_access WHERE file_id = ?", (file_id,))
    holders = [uid for (uid,) in cur.fetchall()] + _group_members(cur, file_id)
    return PUBLIC in holders or any(uid.rsplit("@", 1)[-1] == server_id for uid in holders)
