"""What users do to each other, local or across servers: friend requests and answers,
messages, recalls.  Cursor-level transactions: each change, the events it shows the users
involved and the outbound deliveries it owes are written together, so nothing accepted is lost
and nothing is sent that was not stored."""

from __future__ import annotations

import json
import secrets

import attrs

from ..storage import transaction
from ..wire.errors import BadRequest, Conflict, Forbidden, NotFound
from ..wire.messages import MessageInfo, server_of
from . import files, users

__all__ = ["emit", "enqueue", "conversation_key", "send_message", "receive_message",
           "recall", "delivery", "request_friend", "receive_friend_request", "answer_request",
           "receive_friend_answer", "delete_friend", "receive_friend_delete", "friends",
           "friend_requests", "is_friend", "message_state", "history", "conversations",
           "events_since", "StoredMessage", "friend_request_failed", "compact_json"]

CHAT = "/sns/chat"


def compact_json(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def emit(cur, user_id: str, kind: str, payload: dict, now_ms: int) -> None:
    cur.execute("INSERT INTO events (user_id, type, payload, created_at) VALUES (?, ?, ?, ?)",
                (user_id, kind, compact_json(payload), now_ms))


def enqueue(cur, destination: str, lane: str, method: str, path: str, body: dict,
            now_ms: int, message_id: str | None = None) -> None:
    """Owe ``destination`` a call.  Calls in one lane (a conversation; a pair of users for
    friend requests) go out in the order they were owed; lanes go out in parallel."""
    cur.execute("INSERT INTO outbox (destination, lane, method, path, body, message_id, "
                "created_at, next_attempt) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (destination, lane, method, path, compact_json(body), message_id, now_ms, now_ms))


def conversation_key(a: str, b: str) -> str:
    return "|".join(sorted((a, b)))


@attrs.frozen
class StoredMessage:
    seq: int
    info: MessageInfo
    created_at: int
    state: str
    recalled: bool
    error: str

    def to_client(self) -> dict:
        return {"seq": self.seq, "messageInfo": self.info.to_wire(),
                "createTime": self.created_at, "state": self.state,
                "recalled": self.recalled, "error": self.error}


_MSG_COLUMNS = ("seq, message_id, chat_type, sender_id, recv_id, message_type, content, "
                "created_at, state, recalled, error")


def _message(row) -> StoredMessage:
    seq, mid, chat_type, sender, recv, mtype, content, created, state, recalled, error = row
    info = MessageInfo(sender, recv, mtype, chat_type, mid, json.loads(content))
    return StoredMessage(seq, info, created, state, bool(recalled), error)


def _get_message(cur, message_id: str) -> StoredMessage | None:
    cur.execute("SELECT %s FROM messages WHERE message_id = ?" % _MSG_COLUMNS, (message_id,))
    row = cur.fetchone()
    return _message(row) if row else None


def _store(cur, info: MessageInfo, state: str, now_ms: int) -> bool:
    cur.execute("INSERT OR IGNORE INTO messages (message_id, chat_type, sender_id, recv_id, "
                "conversation, message_type, content, created_at, state) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (info.message_id, info.chat_type, info.sender_id, info.recv_id,
                 conversation_key(info.sender_id, info.recv_id), info.message_type,
                 compact_json(info.content), now_ms, state))
    return cur.rowcount == 1


@transaction
def send_message(cur, info: MessageInfo, server_id: str, now_ms: int) -> StoredMessage:
    """A local user's one-to-one message: stored, then delivered locally at once or queued
    for the recipient's server."""
    local = info.recv_server == server_id
    if local and users.get_user(cur, info.recv_id) is None:
        raise NotFound("no user %s" % info.recv_id, "unknown_user")
    _store(cur, info, "received" if local else "queued", now_ms)
    if "fileID" in info.content:
        cur.execute("INSERT OR IGNORE INTO file_access VALUES (?, ?)",
                    (info.content["fileID"], info.recv_id))
    message = _get_message(cur, info.message_id)
    emit(cur, info.sender_id, "message", message.to_client(), now_ms)
    if local:
        if info.recv_id != info.sender_id:
            emit(cur, info.recv_id, "message", message.to_client(), now_ms)
    else:
        enqueue(cur, info.recv_server, conversation_key(info.sender_id, info.recv_id), "POST",
                CHAT, {"messageInfo": info.to_wire()}, now_ms, info.message_id)
    return message


@transaction
def receive_message(cur, info: MessageInfo, now_ms: int, recall_limit_ms: int) -> bool:
    """A message from another server for a local user; False for a repeat (docs/protocol.md §5).
    A recall (``repeal``) is taken within ``recall_limit_ms`` of the message's arrival (the
    recall window plus a grace for the recall's own journey), refused after (409)."""
    if users.get_user(cur, info.recv_id) is None:
        raise NotFound("no user %s" % info.recv_id, "unknown_user")
    if info.message_type == "repeal":
        message = _get_message(cur, info.message_id)
        if message is not None and not message.recalled and \
                now_ms - message.created_at > recall_limit_ms:
            raise Conflict("the recall window has passed", "recall_window_passed")
        return _apply_recall(cur, info.message_id, info.sender_id, now_ms)
    if not _store(cur, info, "received", now_ms):
        return False
    if "fileID" in info.content:
        files.expect_remote(cur, info.content, info.sender_id, [info.recv_id], now_ms,
                            origin=info.sender_server)
    emit(cur, info.recv_id, "message", _get_message(cur, info.message_id).to_client(), now_ms)
    return True


def _apply_recall(cur, message_id: str, sender_id: str, now_ms: int) -> bool:
    message = _get_message(cur, message_id)
    if message is None:
        raise NotFound("no message %s" % message_id, "unknown_message")
    if message.info.sender_id != sender_id:
        raise Forbidden("only its sender may recall a message", "not_sender")
    if message.recalled:
        return False
    cur.execute("UPDATE messages SET recalled = 1 WHERE message_id = ?", (message_id,))
    payload = {"messageID": message_id, "senderID": sender_id}
    for who in {message.info.sender_id, message.info.recv_id}:
        if _local(cur, who):
            emit(cur, who, "recall", payload, now_ms)
    return True


def _local(cur, user_id: str) -> bool:
    return users.get_user(cur, user_id) is not None


@transaction
def recall(cur, message_id: str, user: users.User, server_id: str, now_ms: int,
           window_ms: int) -> None:
    """The sender takes a message back within the window; the recipient's server hears of it
    through a ``repeal`` message (§6.2.2)."""
    message = _get_message(cur, message_id)
    if message is None or user.user_id not in (message.info.sender_id, message.info.recv_id):
        raise NotFound("no message %s" % message_id, "unknown_message")
    if message.info.sender_id != user.user_id:
        raise Forbidden("only its sender may recall a message", "not_sender")
    if now_ms - message.created_at > window_ms:
        raise Conflict("the recall window has passed", "recall_window_passed")
    if not _apply_recall(cur, message_id, user.user_id, now_ms):
        return
    recv = message.info.recv_id
    if server_of(recv) != server_id:
        repeal = MessageInfo(user.user_id, recv, "repeal", 1, message_id, {})
        enqueue(cur, server_of(recv), conversation_key(user.user_id, recv), "POST", CHAT,
                {"messageInfo": repeal.to_wire()}, now_ms)


def delivery(cur, message_id: str | None, state: str, error: str, now_ms: int) -> None:
    """An outbound delivery ended: the message's state changes and its sender is told."""
    if message_id is None:
        return
    cur.execute("UPDATE messages SET state = ?, error = ? WHERE message_id = ? AND state = "
                "'queued'", (state, error, message_id))
    if cur.rowcount:
        message = _get_message(cur, message_id)
        emit(cur, message.info.sender_id, "delivery",
             {"messageID": message_id, "state": state, "error": error}, now_ms)


def message_state(cur, message_id: str, user_id: str) -> StoredMessage:
    message = _get_message(cur, message_id)
    if message is None or user_id not in (message.info.sender_id, message.info.recv_id):
        raise NotFound("no message %s" % message_id, "unknown_message")
    return message


def history(cur, user_id: str, peer_id: str, before: int | None, limit: int
            ) -> list[StoredMessage]:
    """Newest first, ``limit`` at most, older than seq ``before``."""
    cur.execute("SELECT %s FROM messages WHERE conversation = ? AND seq < ? ORDER BY seq DESC "
                "LIMIT ?" % _MSG_COLUMNS,
                (conversation_key(user_id, peer_id), before or 2 ** 62, limit))
    return [_message(r) for r in cur.fetchall()]


def conversations(cur, user_id: str) -> list[dict]:
    cur.execute("SELECT conversation, MAX(seq), COUNT(*) FROM messages WHERE sender_id = ? OR "
                "recv_id = ? GROUP BY conversation ORDER BY MAX(seq) DESC", (user_id, user_id))
    out = []
    for key, last_seq, count in cur.fetchall():
        a, _, b = key.partition("|")
        cur.execute("SELECT %s FROM messages WHERE seq = ?" % _MSG_COLUMNS, (last_seq,))
        out.append({"peerID": b if a == user_id else a, "messages": count,
                    "last": _message(cur.fetchone()).to_client()})
    return out


def events_since(cur, user_id: str, since: int, limit: int = 500) -> list[tuple]:
    cur.execute("SELECT seq, type, payload FROM events WHERE user_id = ? AND seq > ? "
                "ORDER BY seq LIMIT ?", (user_id, since, limit))
    return cur.fetchall()


# Friends (§6.4.1.4-6.4.1.9)

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
    cur.execute("INSERT OR REPLACE INTO friends (owner_id, friend_id, friend_info, created_at) "
                "VALUES (?, ?, ?, ?)", (owner_id, friend_id, compact_json(info), now_ms))


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
        if target.verify_type == 1:
            raise Forbidden("%s accepts no friend requests" % to_id, "refuses_friends")
        rid = _new_request(cur, user.user_id, to_id, remark, user.info(), now_ms)
        emit(cur, to_id, "friend_request", {"requestID": rid, "from": user.user_id,
                                            "remark": remark, "fromInfo": user.info()}, now_ms)
        return rid
    rid = _new_request(cur, user.user_id, to_id, remark, {}, now_ms)
    enqueue(cur, server_of(to_id), "friends:" + conversation_key(user.user_id, to_id), "POST",
            "/sns/add/users",
            {"userID": to_id, "remark": remark, "ownerID": user.user_id,
             "userInfo": user.info()}, now_ms)
    return rid


@transaction
def receive_friend_request(cur, from_id: str, to_id: str, remark: str, info: dict,
                           now_ms: int) -> None:
    target = users.get_user(cur, to_id)
    if target is None:
        raise NotFound("no user %s" % to_id, "unknown_user")
    if target.verify_type == 1:
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
        enqueue(cur, server_of(from_id), "friends:" + conversation_key(user.user_id, from_id),
                "POST", "/sns/rsp/users",
                {"userID": from_id, "isAgree": 1 if agree else 2, "ownerID": user.user_id,
                 "userInfo": user.info()}, now_ms)


def friend_request_failed(cur, requester: str, target: str, error: str,
                          now_ms: int) -> str | None:
    """A friend request that could not be delivered counts as refused; the requester hears
    why."""
    rid = _pending(cur, requester, target)
    if rid is None:
        return None
    cur.execute("UPDATE friend_requests SET status = 'refused', updated_at = ? WHERE "
                "request_id = ?", (now_ms, rid))
    emit(cur, requester, "friend_answer", {"userID": target, "agree": False, "error": error},
         now_ms)
    return requester


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
        enqueue(cur, server_of(friend_id), "friends:" + conversation_key(user.user_id, friend_id),
                "POST", "/sns/del/users",
                {"userID": friend_id, "ownerID": user.user_id}, now_ms)


def _friend_deleted(cur, local_user: str, by: str, now_ms: int) -> None:
    cur.execute("DELETE FROM friends WHERE owner_id = ? AND friend_id = ?", (local_user, by))
    if cur.rowcount:
        emit(cur, local_user, "friend_deleted", {"userID": by}, now_ms)


@transaction
def receive_friend_delete(cur, local_user: str, by: str, now_ms: int) -> None:
    if users.get_user(cur, local_user) is None:
        raise NotFound("no user %s" % local_user, "unknown_user")
    _friend_deleted(cur, local_user, by, now_ms)
