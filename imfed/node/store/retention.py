"""What a node keeps, and for how long (docs/operations.md "Retention and purge").

Housekeeping purges, with ``[node]`` retention set (0: kept for ever, the default):
one-to-one messages older than ``message_retention_days`` (a message still queued for its
recipient's server is kept until it is delivered or fails), the group history this node holds
older than the same, uploads older than ``file_retention_days`` (row, grants, bytes), and the
copies of other servers' files older than ``file_cache_days`` (fetched again from their origin
when asked for).  ``imfed purge`` removes one user's or one conversation's data at once.

The cursor functions answer the paths of the bytes to remove; the caller removes them only
once the transaction is committed, so a rolled-back purge never leaves a row without its
file."""

from __future__ import annotations

import attrs

from ...storage import like_pattern, transaction
from . import blobs, files, group_log
from .messages import conversation_key

__all__ = ["Purged", "purge_old_messages", "purge_old_group_messages", "purge_old_files",
           "purge_user", "purge_conversation", "purge_group_history", "BATCH"]

BATCH = 2000


@attrs.define
class Purged:
    """What one purge removed, by kind, and the files to unlink once it is committed."""

    messages: int = 0
    group_messages: int = 0
    files: int = 0
    cached_files: int = 0
    events: int = 0
    paths: list = attrs.field(factory=list)

    def add(self, other: "Purged") -> None:
        for name in ("messages", "group_messages", "files", "cached_files", "events"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.paths.extend(other.paths)

    def counts(self) -> dict:
        return {"messages": self.messages, "groupMessages": self.group_messages,
                "files": self.files, "cachedFiles": self.cached_files, "events": self.events}

    @property
    def anything(self) -> bool:
        return any(self.counts().values())

    def unlink(self) -> None:
        for path in self.paths:
            blobs.remove_quietly(path)


def _first_young(cur, table: str, key: str, before_ms: int) -> int:
    """The first row (in ``key`` order, which is time order) created at or after
    ``before_ms``: the rows before it are the old ones, found without reading the rest."""
    cur.execute("SELECT %s FROM %s WHERE created_at >= ? ORDER BY %s LIMIT 1"
                % (key, table, key), (before_ms,))
    row = cur.fetchone()
    if row is None:
        cur.execute("SELECT COALESCE(MAX(%s), 0) + 1 FROM %s" % (key, table))
        row = cur.fetchone()
    return row[0]


@transaction
def purge_old_messages(cur, before_ms: int, batch: int = BATCH) -> Purged:
    """Up to ``batch`` of the oldest one-to-one messages stored before ``before_ms`` (none
    still queued)."""
    limit = _first_young(cur, "messages", "seq", before_ms)
    cur.execute("DELETE FROM messages WHERE seq IN (SELECT seq FROM messages WHERE seq < ? "
                "AND created_at < ? AND state <> 'queued' ORDER BY seq LIMIT ?)",
                (limit, before_ms, batch))
    return Purged(messages=cur.rowcount)


@transaction
def purge_old_group_messages(cur, before_ms: int, batch: int = BATCH) -> Purged:
    limit = _first_young(cur, "group_messages", "gseq", before_ms)
    cur.execute("DELETE FROM group_messages WHERE gseq IN (SELECT gseq FROM group_messages "
                "WHERE gseq < ? AND created_at < ? ORDER BY gseq LIMIT ?)",
                (limit, before_ms, batch))
    purged = Purged(group_messages=cur.rowcount)
    cur.execute("DELETE FROM group_log WHERE id IN (SELECT id FROM group_log WHERE "
                "created_at < ? ORDER BY id LIMIT ?)", (before_ms, batch))
    return purged


def _forget_files(cur, file_ids: list[str]) -> list[str]:
    """The rows and grants of files gone; the paths of their bytes."""
    paths = []
    for file_id in file_ids:
        stored = files.get_file(cur, file_id)
        if stored is not None and stored.path:
            paths.append(stored.path)
        cur.execute("DELETE FROM file_access WHERE file_id = ?", (file_id,))
        cur.execute("DELETE FROM files WHERE file_id = ?", (file_id,))
    return paths


@transaction
def purge_old_files(cur, server_id: str, uploads_before_ms: int | None,
                    copies_before_ms: int | None, batch: int = BATCH) -> Purged:
    """Up to ``batch`` files of this server's (uploads, and the copies a group's master keeps)
    stored before ``uploads_before_ms``, and copies of other servers' files announced before
    ``copies_before_ms`` (None: that kind is kept).  An upload goes whole; a copy only loses
    its bytes (its row and grants stay: it is fetched again from its origin if asked for)."""
    out = Purged()
    own = "%@" + server_id.replace("_", "\\_")  # serverIds are A-Z a-z 0-9 _ -
    if uploads_before_ms is not None:
        cur.execute("SELECT file_id FROM files WHERE created_at < ? AND file_id LIKE ? "
                    "ESCAPE '\\' ORDER BY created_at LIMIT ?", (uploads_before_ms, own, batch))
        ids = [r[0] for r in cur.fetchall()]
        out.paths += _forget_files(cur, ids)
        out.files = len(ids)
    if copies_before_ms is not None:
        cur.execute("SELECT file_id, path FROM files WHERE created_at < ? AND path IS NOT NULL "
                    "AND file_id NOT LIKE ? ESCAPE '\\' ORDER BY created_at LIMIT ?",
                    (copies_before_ms, own, batch))
        rows = cur.fetchall()
        for file_id, path in rows:
            cur.execute("UPDATE files SET path = NULL, sm3 = '' WHERE file_id = ?", (file_id,))
            out.paths.append(path)
        out.cached_files = len(rows)
    return out


def _file_ids(contents) -> set[str]:
    """The fileIDs named by messages' contents (JSON text)."""
    import json

    found = set()
    for (content,) in contents:
        try:
            value = json.loads(content)
        except ValueError:
            continue
        if isinstance(value, dict) and isinstance(value.get("fileID"), str):
            found.add(value["fileID"])
    return found


@transaction
def purge_user(cur, user_id: str) -> Purged:
    """What a user left on this node (a user leaving the organisation): the one-to-one
    messages they sent or received, the group messages they sent, the files they uploaded,
    the grants of files to them, their events, their friend requests and send keys, their read
    markers, pins and mutes.  The
    account itself stays until ``imfed user del``; what was already delivered to other
    servers is theirs."""
    out = Purged()
    cur.execute("DELETE FROM messages WHERE sender_id = ? OR recv_id = ?", (user_id, user_id))
    out.messages = cur.rowcount
    cur.execute("DELETE FROM group_messages WHERE sender_id = ?", (user_id,))
    out.group_messages = cur.rowcount
    cur.execute("SELECT file_id FROM files WHERE owner_id = ?", (user_id,))
    ids = [r[0] for r in cur.fetchall()]
    out.paths += _forget_files(cur, ids)
    out.files = len(ids)
    cur.execute("DELETE FROM file_access WHERE user_id = ?", (user_id,))
    cur.execute("DELETE FROM events WHERE user_id = ?", (user_id,))
    out.events = cur.rowcount
    cur.execute("DELETE FROM friend_requests WHERE from_id = ? OR to_id = ?",
                (user_id, user_id))
    cur.execute("DELETE FROM client_txns WHERE user_id = ?", (user_id,))
    cur.execute("DELETE FROM read_markers WHERE user_id = ?", (user_id,))
    cur.execute("DELETE FROM pins_mutes WHERE user_id = ?", (user_id,))
    return out


@transaction
def purge_conversation(cur, a: str, b: str) -> Purged:
    """A one-to-one conversation's messages on this node, and the grants the files sent in it
    gave (a copy of another server's file no one here may fetch any more goes too)."""
    key = conversation_key(a, b)
    cur.execute("SELECT recv_id, content FROM messages WHERE conversation = ? AND content "
                "LIKE ? ESCAPE '\\'", (key, like_pattern('"fileID"')))
    sent = [(recv, file_id) for recv, content in cur.fetchall()
            for file_id in _file_ids([(content,)])]
    cur.execute("DELETE FROM messages WHERE conversation = ?", (key,))
    out = Purged(messages=cur.rowcount)
    for recv, file_id in sent:
        stored = files.get_file(cur, file_id)
        files.withdraw(cur, file_id, recv)
        after = files.get_file(cur, file_id)
        if stored is not None and stored.path and (after is None or not after.path):
            out.cached_files += 1
    return out


@transaction
def purge_group_history(cur, group_id: str) -> Purged:
    """A group's messages kept on this node (the master's history, or a member server's
    copy)."""
    cur.execute("DELETE FROM group_messages WHERE group_id = ?", (group_id,))
    purged = Purged(group_messages=cur.rowcount)
    group_log.purge_group(cur, group_id)
    return purged
