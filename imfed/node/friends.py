"""Friends (§6.4.1.4-6.4.1.9): requests and answers, local or across servers, the friend
lists, deletions.  Functions of a unit of work (imfed/node/unit.py), like messages.py."""

from __future__ import annotations

import json
import secrets

from ..storage import transaction
from ..wire.errors import BadRequest, Conflict, Forbidden, NotFound
from ..wire.messages import server_of
from ..wire.queued import AddUsers, DelUsers, RspUsers
from ..wire.records import VerifyType
from . import users
from .events import compact_json, emit
from .messages import conversation_key
from .outbox import enqueue

__all__ = ["friends", "is_friend", "friend_requests", "request_friend",
           "receive_friend_request", "answer_request", "receive_friend_answer",
           "delete_friend", "receive_friend_delete", "request_failed"]


def _lane(a: str, b: str) -> str:
    return "friends:" + conversation_key(a, b)


def friends(cur, owner_id: str) -> list[dict]:
    cur.execute("SELECT friend_id, remark, friend_info, created_at FROM friends WHERE "
                "owner_id = ? ORDER BY friend_id", (owner_id,))
    return [{"userID": f, "remark": r, "userInfo": json.loads(i), "since": c}
            for f, r, i, c in cur.fetchall()]


def is_friend(cur, owner_id: str, friend_id: str) -> bool:
    cur.execute("SELECT 1 FROM friends WHERE owner_id = ? AND friend_id = ?",
                (owner_id, friend_id))
    return cur.fetchone() is not None


def friend_requests(cur, user_id: str) -> list[dict]:
    cur.execute("SELECT request_id, from_id, to_id, remark, from_info, status, created_at "
                "FROM friend_requests WHERE (to_id = ? OR from_id = ?) AND status = 'pending' "
                "ORDER BY created_at", (user_id, user_id))
    return [{"requestID": rid, "from": f, "to": t, "remark": r, "fromInfo": json.loads(i),
             "status": s, "createTime": c,
             "direction": "incoming" if t == user_id else "outgoing"}
            for rid, f, t, r, i, s, c in cur.fetchall()]


def _befriend(cur, owner_id: str, friend_id: str, info: dict, now_ms: int) -> None:
    cur.execute("INSERT INTO friends (owner_id, friend_id, friend_info, created_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (owner_id, friend_id) DO UPDATE SET remark = '', "
                "friend_info = excluded.friend_info, created_at = excluded.created_at",
                (owner_id, friend_id, compact_json(info), now_ms))


def _pending(cur, from_id: str, to_id: str) -> str | None:
    cur.execute("SELECT request_id FROM friend_requests WHERE from_id = ? AND to_id = ? AND "
                "status = 'pending'", (from_id, to_id))
    row = cur.fetchone()
    return row[0] if row else None


def _new_request(cur, from_id: str, to_id: str, remark: str, info: dict, now_ms: int) -> str:
    existing = _pending(cur, from_id, to_id)
    if existing:
        return existing
    rid = secrets.token_hex(12)
    cur.execute("INSERT INTO friend_requests VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                (rid, from_id, to_id, remark, compact_json(info), now_ms, now_ms))
    return rid


@transaction
def request_friend(cur, user: users.User, to_id: str, remark: str, server_id: str,
                   now_ms: int) -> str:
    if to_id == user.user_id:
        raise BadRequest("one cannot befriend oneself", "bad_userID")
    if is_friend(cur, user.user_id, to_id):
        raise Conflict("%s is already a friend" % to_id, "already_friends")
    if server_of(to_id) == server_id:
        target = users.get_user(cur, to_id)
        if target is None:
            raise NotFound("no user %s" % to_id, "unknown_user")
        if target.verify_type == VerifyType.REFUSE_ALL:
            raise Forbidden("%s accepts no friend requests" % to_id, "refuses_friends")
        rid = _new_request(cur, user.user_id, to_id, remark, user.info(), now_ms)
        emit(cur, to_id, "friend_request", {"requestID": rid, "from": user.user_id,
                                            "remark": remark, "fromInfo": user.info()}, now_ms)
        return rid
    rid = _new_request(cur, user.user_id, to_id, remark, {}, now_ms)
    enqueue(cur, server_of(to_id), _lane(user.user_id, to_id),
            AddUsers(to_id, remark, user.user_id, user.info()), now_ms)
    return rid


@transaction
def receive_friend_request(cur, from_id: str, to_id: str, remark: str, info: dict,
                           now_ms: int) -> None:
    target = users.get_user(cur, to_id)
    if target is None:
        raise NotFound("no user %s" % to_id, "unknown_user")
    if target.verify_type == VerifyType.REFUSE_ALL:
        raise Forbidden("%s accepts no friend requests" % to_id, "refuses_friends")
    if is_friend(cur, to_id, from_id) or _pending(cur, from_id, to_id):
        return
    rid = _new_request(cur, from_id, to_id, remark, info, now_ms)
    emit(cur, to_id, "friend_request", {"requestID": rid, "from": from_id, "remark": remark,
                                        "fromInfo": info}, now_ms)


@transaction
def answer_request(cur, request_id: str, user: users.User, agree: bool, server_id: str,
                   now_ms: int) -> None:
    cur.execute("SELECT from_id, from_info FROM friend_requests WHERE request_id = ? AND "
                "to_id = ? AND status = 'pending'", (request_id, user.user_id))
    row = cur.fetchone()
    if row is None:
        raise NotFound("no pending request %s" % request_id, "unknown_request")
    from_id, from_info = row
    cur.execute("UPDATE friend_requests SET status = ?, updated_at = ? WHERE request_id = ?",
                ("accepted" if agree else "refused", now_ms, request_id))
    if agree:
        _befriend(cur, user.user_id, from_id, json.loads(from_info), now_ms)
    if server_of(from_id) == server_id:
        _friend_answered(cur, from_id, user.user_id, agree, user.info(), now_ms)
    else:
        enqueue(cur, server_of(from_id), _lane(user.user_id, from_id),
                RspUsers(from_id, agree, user.user_id, user.info()), now_ms)


def request_failed(cur, item, state: str, error: str, now_ms: int) -> None:
    """Outbox hook for ``add_users``: a friend request the other server refused (or that
    could not be delivered in time) counts as refused; the requester hears why."""
    if state != "failed":
        return
    requester, target = item.payload.get("ownerID"), item.payload.get("userID")
    rid = _pending(cur, requester, target)
    if rid is None:
        return
    cur.execute("UPDATE friend_requests SET status = 'refused', updated_at = ? WHERE "
                "request_id = ?", (now_ms, rid))
    emit(cur, requester, "friend_answer", {"userID": target, "agree": False, "error": error},
         now_ms)


def _friend_answered(cur, requester: str, responder: str, agree: bool, info: dict,
                     now_ms: int) -> None:
    rid = _pending(cur, requester, responder)
    if rid is not None:
        cur.execute("UPDATE friend_requests SET status = ?, updated_at = ? WHERE "
                    "request_id = ?", ("accepted" if agree else "refused", now_ms, rid))
    if agree:
        _befriend(cur, requester, responder, info, now_ms)
    emit(cur, requester, "friend_answer", {"userID": responder, "agree": agree,
                                           "userInfo": info}, now_ms)


@transaction
def receive_friend_answer(cur, requester: str, responder: str, agree: bool, info: dict,
                          now_ms: int) -> None:
    if users.get_user(cur, requester) is None:
        raise NotFound("no user %s" % requester, "unknown_user")
    if _pending(cur, requester, responder) is None and not is_friend(cur, requester, responder):
        raise Conflict("%s asked %s nothing" % (requester, responder), "no_request")
    _friend_answered(cur, requester, responder, agree, info, now_ms)


@transaction
def delete_friend(cur, user: users.User, friend_id: str, server_id: str, now_ms: int) -> None:
    cur.execute("DELETE FROM friends WHERE owner_id = ? AND friend_id = ?",
                (user.user_id, friend_id))
    if cur.rowcount != 1:
        raise NotFound("%s is not a friend" % friend_id, "not_friends")
    if server_of(friend_id) == server_id:
        _friend_deleted(cur, friend_id, user.user_id, now_ms)
    else:
        enqueue(cur, server_of(friend_id), _lane(user.user_id, friend_id),
                DelUsers(friend_id, user.user_id), now_ms)


def _friend_deleted(cur, local_user: str, by: str, now_ms: int) -> None:
    cur.execute("DELETE FROM friends WHERE owner_id = ? AND friend_id = ?", (local_user, by))
    if cur.rowcount:
        emit(cur, local_user, "friend_deleted", {"userID": by}, now_ms)


@transaction
def receive_friend_delete(cur, local_user: str, by: str, now_ms: int) -> None:
    if users.get_user(cur, local_user) is None:
        raise NotFound("no user %s" % local_user, "unknown_user")
    _friend_deleted(cur, local_user, by, now_ms)
