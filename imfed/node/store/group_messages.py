"""Group messages (§6.4.2.9-12, docs/protocol.md §5): the master orders each message, keeps it and
fans it out to every other server with members; other servers keep what the master sends, in
its order, and fill what they miss from its history (grpchat, groupsync.py).

Functions of a unit of work (imfed/node/store/unit.py), like groups.py and messages.py; who may
post is decided by imfed/node/handlers/groups.py.
"""

from __future__ import annotations

import json

import attrs

from ...storage import transaction
from ...wire.message_info import MessageInfo, server_of
from ...wire.queued import Chat, NotifyGrpChat
from ...wire.records import ChatType
from . import files, users
from .groups import Group, lane, servers_with_members
from .events import compact_json, emit
from .outbox import enqueue

__all__ = ["GroupMessage", "get", "mark_recalled", "post_message", "send_to_master", "keep",
           "history", "has_message", "count", "oldest", "recent", "views_to_check", "fill",
           "mark_synced", "before", "newest_gseq", "search"]


def _store(cur, group_id: str, info: MessageInfo, now_ms: int,
           ord: float | None = None) -> int | None:
    """gseq of the new row (its position ``ord``, or last), or None for a repeat.  A
    ``repeal`` (a recalled message, as a master's history shows one) is kept as recalled."""
    recalled = info.message_type == "repeal"
    cur.execute("INSERT INTO group_messages (group_id, message_id, sender_id, message_type, "
                "content, created_at, ord, recalled) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING RETURNING gseq",
                (group_id, info.message_id, info.sender_id,
                 "text" if recalled else info.message_type,
                 "{}" if recalled else compact_json(info.content), now_ms, ord, int(recalled)))
    row = cur.fetchone()
    return row[0] if row else None


@attrs.frozen
class GroupMessage:
    gseq: int  # its place here (each server numbers its own)
    info: MessageInfo
    created_at: int
    recalled: bool = False

    def to_wire(self) -> dict:
        """As the client API and grpchat (§6.4.2.12) show it: a recalled message as a
        ``repeal`` of itself, without content."""
        info = self.info
        if self.recalled:
            info = attrs.evolve(info, message_type="repeal", content={})
        return {"gseq": self.gseq, "messageInfo": info.to_wire(),
                "createTime": self.created_at, "recalled": self.recalled}


def _message(row) -> GroupMessage:
    gseq, gid, mid, sender, mtype, content, created, recalled = row
    return GroupMessage(gseq, MessageInfo(sender, gid, mtype, ChatType.GROUP, mid,
                                          json.loads(content)), created, bool(recalled))


_M = "gseq, group_id, message_id, sender_id, message_type, content, created_at, recalled"


def get(cur, group_id: str, message_id: str) -> GroupMessage | None:
    cur.execute("SELECT %s FROM group_messages WHERE group_id = ? AND message_id = ?" % _M,
                (group_id, message_id))
    row = cur.fetchone()
    return _message(row) if row else None


def mark_recalled(cur, message: GroupMessage, by: str, user_ids: list[str],
                  now_ms: int) -> bool:
    """A group message recalled here (False: it was already): its content erased, its file
    (if any) taken back from the group and from the local users among ``user_ids``, a
    ``group_recall`` event to them."""
    if message.recalled:
        return False
    cur.execute("UPDATE group_messages SET recalled = 1, content = '{}' WHERE group_id = ? AND "
                "message_id = ?", (message.info.recv_id, message.info.message_id))
    if "fileID" in message.info.content:
        files.withdraw_from_group(cur, message.info.content["fileID"], message.info.recv_id,
                                  user_ids, message.info.sender_id)
    payload = {"groupID": message.info.recv_id, "messageID": message.info.message_id,
               "senderID": message.info.sender_id, "by": by}
    for uid in user_ids:
        if users.get_user(cur, uid) is not None:
            emit(cur, uid, "group_recall", payload, now_ms)
    return True


def has_message(cur, message_id: str) -> bool:
    cur.execute("SELECT 1 FROM group_messages WHERE message_id = ?", (message_id,))
    return cur.fetchone() is not None


def post_message(cur, g: Group, info: MessageInfo, server_id: str, now_ms: int) -> bool:
    """A member's message at the master (§6.4.2.9): ordered, stored, shown to local members,
    fanned out to every other server with members, listing them (§6.4.2.11).  False for a
    repeat."""
    gseq = _store(cur, g.group_id, info, now_ms)
    if gseq is None:
        return False
    if "fileID" in info.content:
        # The master's copy (§6.4.2.10), granted to the group: every member's server may
        # fetch it while it has members.
        files.grant(cur, info.content["fileID"], g.group_id)
    cur.execute("SELECT %s FROM group_messages WHERE gseq = ?" % _M, (gseq,))
    shown = _message(cur.fetchone()).to_wire()
    for server, ids in servers_with_members(cur, g.group_id).items():
        if server == server_id:
            for uid in ids:
                emit(cur, uid, "group_message", shown, now_ms)
        else:
            enqueue(cur, server, lane(g.group_id), NotifyGrpChat(g.group_id, ids, info=info),
                    now_ms)
    return True


def send_to_master(cur, info: MessageInfo, now_ms: int) -> None:
    """A local member's message for a group mastered elsewhere: it goes to the master, and
    comes back (to us too) in the master's order."""
    if "fileID" in info.content:
        # The master copies the file from here (§6.4.2.10): grant it to the group.
        files.grant(cur, info.content["fileID"], info.recv_id)
    enqueue(cur, server_of(info.recv_id), lane(info.recv_id), Chat(info), now_ms)


def keep(cur, group_id: str, user_ids: list[str], info: MessageInfo, now_ms: int,
          ord: float | None = None) -> bool:
    """The master's message kept here (at ``ord``, or last), shown to the local users of
    ``user_ids``; False for a repeat."""
    gseq = _store(cur, group_id, info, now_ms, ord)
    if gseq is None:
        return False
    if info.message_type == "repeal":
        return True  # a recalled message in the master's history: its place, nothing to show
    if "fileID" in info.content:
        # The master's copy, fetched from it when one of our members first downloads it.
        files.expect_remote(cur, info.content, info.sender_id, user_ids, now_ms,
                            origin=server_of(group_id))
    cur.execute("SELECT %s FROM group_messages WHERE gseq = ?" % _M, (gseq,))
    shown = _message(cur.fetchone()).to_wire()
    for uid in user_ids:
        if users.get_user(cur, uid) is not None:
            emit(cur, uid, "group_message", shown, now_ms)
    return True


def history(cur, group_id: str, after_message_id: str, limit: int
            ) -> tuple[list[GroupMessage], str] | None:
    """At most ``limit`` messages newer than ``after_message_id`` (the oldest kept when
    empty), oldest first, and the newest message ID (§6.4.2.12); None when the group has no
    message ``after_message_id``."""
    after = 0.0
    if after_message_id:
        after = _position(cur, group_id, after_message_id)
        if after is None:
            return None
    cur.execute("SELECT %s FROM group_messages WHERE group_id = ? AND ord > ? ORDER BY ord "
                "LIMIT ?" % _M, (group_id, after, limit))
    page = [_message(r) for r in cur.fetchall()]
    cur.execute("SELECT message_id FROM group_messages WHERE group_id = ? ORDER BY ord DESC "
                "LIMIT 1", (group_id,))
    row = cur.fetchone()
    return page, row[0] if row else ""


def recent(cur, group_id: str, limit: int) -> list[GroupMessage]:
    """The newest ``limit`` messages of the group kept here, oldest first (as ``history``
    gives them)."""
    cur.execute("SELECT %s FROM group_messages WHERE group_id = ? ORDER BY ord DESC LIMIT ?"
                % _M, (group_id, limit))
    return [_message(r) for r in reversed(cur.fetchall())]


def before(cur, group_id: str, before_message_id: str, limit: int
           ) -> list[GroupMessage] | None:
    """At most ``limit`` messages older than ``before_message_id`` (the newest when empty),
    oldest first; None when the group has no message ``before_message_id``."""
    if not before_message_id:
        return recent(cur, group_id, limit)
    upto = _position(cur, group_id, before_message_id)
    if upto is None:
        return None
    cur.execute("SELECT %s FROM group_messages WHERE group_id = ? AND ord < ? ORDER BY ord DESC "
                "LIMIT ?" % _M, (group_id, upto, limit))
    return [_message(r) for r in reversed(cur.fetchall())]


def newest_gseq(cur, group_id: str) -> int:
    cur.execute("SELECT COALESCE(MAX(gseq), 0) FROM group_messages WHERE group_id = ?",
                (group_id,))
    return cur.fetchone()[0]


def search(cur, user_id: str, like: str, limit: int) -> list[GroupMessage]:
    """Text messages of the groups ``user_id`` is a member of, whose JSON content matches
    ``like`` (a LIKE pattern; the caller checks the text itself), newest first."""
    cur.execute("SELECT %s FROM group_messages WHERE group_id IN (SELECT group_id FROM "
                "group_members WHERE user_id = ?) AND message_type = 'text' AND recalled = 0 AND "
                "LOWER(content) LIKE LOWER(?) ESCAPE '\\' ORDER BY gseq DESC LIMIT ?"
                % _M, (user_id, like, limit))
    return [_message(r) for r in cur.fetchall()]


def _position(cur, group_id: str, message_id: str) -> float | None:
    cur.execute("SELECT ord FROM group_messages WHERE message_id = ? AND group_id = ?",
                (message_id, group_id))
    row = cur.fetchone()
    return row[0] if row else None


def count(cur, group_id: str) -> int:
    cur.execute("SELECT COUNT(*) FROM group_messages WHERE group_id = ?", (group_id,))
    return cur.fetchone()[0]


def oldest(cur, group_id: str) -> str:
    """The ID of the first message held of a group, or ""."""
    cur.execute("SELECT message_id FROM group_messages WHERE group_id = ? ORDER BY ord LIMIT 1",
                (group_id,))
    row = cur.fetchone()
    return row[0] if row else ""


def views_to_check(cur, group_id: str | None = None) -> list[tuple[str, str, list[str]]]:
    """(groupID, synced through, local member IDs) of every live group mastered elsewhere
    that has members here (or of ``group_id`` alone, if it is one): what this server checks
    against the masters."""
    cur.execute("SELECT g.group_id, COALESCE(s.synced_through, '') FROM groups g "
                "LEFT JOIN group_sync s ON s.group_id = g.group_id "
                "WHERE g.master = 0 AND g.dissolved = 0 "
                "AND (CAST(? AS TEXT) IS NULL OR g.group_id = ?) "
                "ORDER BY g.group_id", (group_id, group_id))
    out = []
    for group_id, through in cur.fetchall():
        cur.execute("SELECT m.user_id FROM group_members m JOIN users u ON u.user_id = "
                    "m.user_id WHERE m.group_id = ? ORDER BY m.user_id", (group_id,))
        local = [r[0] for r in cur.fetchall()]
        if local:
            out.append((group_id, through, local))
    return out


@transaction
def fill(cur, group_id: str, after_message_id: str, page: list[MessageInfo],
         user_ids: list[str], now_ms: int) -> int:
    """Keep what this server misses of a grpchat page (the master's messages after
    ``after_message_id``, in its order), each in its place: after the message the master
    has before it, before anything that came here later.  The number kept."""
    prev = _position(cur, group_id, after_message_id) if after_message_id else 0.0
    if prev is None:
        # We no longer hold the message the page follows: begin just before the first one
        # of the page we do hold, or after everything.
        known = [p for p in (_position(cur, group_id, m.message_id) for m in page)
                 if p is not None]
        if known:
            cur.execute("SELECT MAX(ord) FROM group_messages WHERE group_id = ? AND ord < ?",
                        (group_id, known[0]))
        else:
            cur.execute("SELECT MAX(ord) FROM group_messages WHERE group_id = ?", (group_id,))
        prev = cur.fetchone()[0] or 0.0
    kept, i = 0, 0
    while i < len(page):
        here = _position(cur, group_id, page[i].message_id)
        if here is not None:
            prev = max(prev, here)
            i += 1
            continue
        j = i
        while j < len(page) and _position(cur, group_id, page[j].message_id) is None:
            j += 1
        # A run of missing messages, spread evenly up to whatever this server has next.
        cur.execute("SELECT MIN(ord) FROM group_messages WHERE group_id = ? AND ord > ?",
                    (group_id, prev))
        after = cur.fetchone()[0]
        step = ((after if after is not None else prev + 1.0) - prev) / (j - i + 1)
        for info in page[i:j]:
            prev += step
            kept += keep(cur, group_id, user_ids, info, now_ms, prev)
        i = j
    return kept


@transaction
def mark_synced(cur, group_id: str, message_id: str, now_ms: int) -> None:
    cur.execute("INSERT INTO group_sync VALUES (?, ?, ?) ON CONFLICT (group_id) DO UPDATE "
                "SET synced_through = excluded.synced_through, synced_at = excluded.synced_at",
                (group_id, message_id, now_ms))
