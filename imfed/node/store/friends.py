"""Friends (§6.4.1.4-6.4.1.9) as stored: the friend lists, requests and their answers, and the
events and deliveries each change owes.  Functions of a unit of work (imfed/node/store/unit.py);
who may ask, answer or delete is decided by imfed/node/handlers/friends.py."""

from __future__ import annotations

import json
import secrets

import attrs

from ...wire.message_info import server_of
from ...wire.queued import AddUsers, DelUsers, RspUsers
from .events import compact_json, emit
from .messages import conversation_key
from .outbox import enqueue

__all__ = ["Friend", "FriendRequest", "lane", "friends", "is_friend", "friend_requests", "pending",
           "add_request", "show_request", "pending_to", "decide", "befriend", "answered",
           "unfriend", "friend_deleted", "request_failed", "queue_request", "queue_answer",
           "queue_delete"]


def lane(a: str, b: str) -> str:
    return "friends:" + conversation_key(a, b)


@attrs.frozen
class Friend:
    user_id: str
    remark: str
    info: dict  # the userInfo as last heard
    since: int

    def to_client(self) -> dict:
        return {"userID": self.user_id, "remark": self.remark, "userInfo": self.info,
                "since": self.since}


def friends(cur, owner_id: str) -> list[Friend]:
    cur.execute("SELECT friend_id, remark, friend_info, created_at FROM friends WHERE "
                "owner_id = ? ORDER BY friend_id", (owner_id,))
    return [Friend(f, r, json.loads(i), c) for f, r, i, c in cur.fetchall()]


def is_friend(cur, owner_id: str, friend_id: str) -> bool:
    cur.execute("SELECT 1 FROM friends WHERE owner_id = ? AND friend_id = ?",
                (owner_id, friend_id))
    return cur.fetchone() is not None


@attrs.frozen
class FriendRequest:
    request_id: str
    from_id: str
    to_id: str
    remark: str
    from_info: dict
    status: str
    created_at: int

    def to_client(self, viewer: str) -> dict:
        return {"requestID": self.request_id, "from": self.from_id, "to": self.to_id,
                "remark": self.remark, "fromInfo": self.from_info, "status": self.status,
                "createTime": self.created_at,
                "direction": "incoming" if self.to_id == viewer else "outgoing"}


def friend_requests(cur, user_id: str) -> list[FriendRequest]:
    """``user_id``'s pending requests, made and received, oldest first."""
    cur.execute("SELECT request_id, from_id, to_id, remark, from_info, status, created_at "
                "FROM friend_requests WHERE (to_id = ? OR from_id = ?) AND status = 'pending' "
                "ORDER BY created_at", (user_id, user_id))
    return [FriendRequest(rid, f, t, r, json.loads(i), s, c)
            for rid, f, t, r, i, s, c in cur.fetchall()]


def befriend(cur, owner_id: str, friend_id: str, info: dict, now_ms: int) -> None:
    cur.execute("INSERT INTO friends (owner_id, friend_id, friend_info, created_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (owner_id, friend_id) DO UPDATE SET remark = '', "
                "friend_info = excluded.friend_info, created_at = excluded.created_at",
                (owner_id, friend_id, compact_json(info), now_ms))


def pending(cur, from_id: str, to_id: str) -> str | None:
    cur.execute("SELECT request_id FROM friend_requests WHERE from_id = ? AND to_id = ? AND "
                "status = 'pending'", (from_id, to_id))
    row = cur.fetchone()
    return row[0] if row else None


def add_request(cur, from_id: str, to_id: str, remark: str, info: dict, now_ms: int) -> str:
    existing = pending(cur, from_id, to_id)
    if existing:
        return existing
    rid = secrets.token_hex(12)
    cur.execute("INSERT INTO friend_requests VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                (rid, from_id, to_id, remark, compact_json(info), now_ms, now_ms))
    return rid


def show_request(cur, request_id: str, from_id: str, to_id: str, remark: str, info: dict,
                 now_ms: int) -> None:
    """The local user ``to_id`` sees a request."""
    emit(cur, to_id, "friend_request", {"requestID": request_id, "from": from_id,
                                        "remark": remark, "fromInfo": info}, now_ms)


def queue_request(cur, from_id: str, from_info: dict, to_id: str, remark: str,
                  now_ms: int) -> None:
    enqueue(cur, server_of(to_id), lane(from_id, to_id),
            AddUsers(to_id, remark, from_id, from_info), now_ms)


def pending_to(cur, request_id: str, to_id: str) -> tuple[str, dict] | None:
    """(requester, its userInfo) of ``to_id``'s pending request ``request_id``, or None."""
    cur.execute("SELECT from_id, from_info FROM friend_requests WHERE request_id = ? AND "
                "to_id = ? AND status = 'pending'", (request_id, to_id))
    row = cur.fetchone()
    return (row[0], json.loads(row[1])) if row else None


def decide(cur, request_id: str, agree: bool, now_ms: int) -> None:
    cur.execute("UPDATE friend_requests SET status = ?, updated_at = ? WHERE request_id = ?",
                ("accepted" if agree else "refused", now_ms, request_id))


def queue_answer(cur, responder: str, responder_info: dict, requester: str, agree: bool,
                 now_ms: int) -> None:
    enqueue(cur, server_of(requester), lane(responder, requester),
            RspUsers(requester, agree, responder, responder_info), now_ms)


def request_failed(cur, item, state: str, error: str, now_ms: int) -> None:
    """Outbox hook for ``add_users``: a friend request the other server refused (or that
    could not be delivered in time) counts as refused; the requester hears why."""
    if state != "failed":
        return
    requester, target = item.payload.get("ownerID"), item.payload.get("userID")
    rid = pending(cur, requester, target)
    if rid is None:
        return
    cur.execute("UPDATE friend_requests SET status = 'refused', updated_at = ? WHERE "
                "request_id = ?", (now_ms, rid))
    emit(cur, requester, "friend_answer", {"userID": target, "agree": False, "error": error},
         now_ms)


def _friend_answered(cur, requester: str, responder: str, agree: bool, info: dict,
                     now_ms: int) -> None:
    rid = pending(cur, requester, responder)
    if rid is not None:
        cur.execute("UPDATE friend_requests SET status = ?, updated_at = ? WHERE "
                    "request_id = ?", ("accepted" if agree else "refused", now_ms, rid))
    if agree:
        befriend(cur, requester, responder, info, now_ms)
    emit(cur, requester, "friend_answer", {"userID": responder, "agree": agree,
                                           "userInfo": info}, now_ms)


def answered(cur, requester: str, responder: str, agree: bool, info: dict,
             now_ms: int) -> None:
    """The local user ``requester`` hears ``responder``'s answer: friends if it agreed."""
    rid = pending(cur, requester, responder)
    if rid is not None:
        decide(cur, rid, agree, now_ms)
    if agree:
        befriend(cur, requester, responder, info, now_ms)
    emit(cur, requester, "friend_answer", {"userID": responder, "agree": agree,
                                           "userInfo": info}, now_ms)


def unfriend(cur, owner_id: str, friend_id: str) -> bool:
    """``friend_id`` off ``owner_id``'s list; False when it was not on it."""
    cur.execute("DELETE FROM friends WHERE owner_id = ? AND friend_id = ?",
                (owner_id, friend_id))
    return cur.rowcount == 1


def queue_delete(cur, owner_id: str, friend_id: str, now_ms: int) -> None:
    enqueue(cur, server_of(friend_id), lane(owner_id, friend_id),
            DelUsers(friend_id, owner_id), now_ms)


def friend_deleted(cur, local_user: str, by: str, now_ms: int) -> None:
    """``by`` deleted the local user ``local_user``: each is off the other's list."""
    if unfriend(cur, local_user, by):
        emit(cur, local_user, "friend_deleted", {"userID": by}, now_ms)
