"""One-to-one messages (§6.2.2-6.2.9): sent, received, recalled, their delivery state, a
user's conversations and history.  Functions of a unit of work (imfed/node/unit.py): each
change, the events it shows the users involved and the deliveries it owes other servers are
written in one transaction, so nothing accepted is lost and nothing is sent that was not
stored."""

from __future__ import annotations

import json

import attrs

from ..storage import transaction
from ..wire.errors import Conflict, Forbidden, NotFound, TooMany
from ..wire.messages import MessageInfo, server_of
from ..wire.queued import Chat
from ..wire.records import ChatType
from . import files, txns, users
from .events import compact_json, emit
from .outbox import enqueue

__all__ = ["conversation_key", "send_message", "receive_message", "recall", "delivered",
           "message_state", "history", "conversations", "StoredMessage"]


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
    cur.execute("INSERT INTO messages (message_id, chat_type, sender_id, recv_id, "
                "conversation, message_type, content, created_at, state) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (info.message_id, info.chat_type, info.sender_id, info.recv_id,
                 conversation_key(info.sender_id, info.recv_id), info.message_type,
                 compact_json(info.content), now_ms, state))
    return cur.rowcount == 1


@attrs.frozen
class StrangerLimits:
    """How many one-to-one messages a user takes in a day from one user who is not a friend
    (and whom the user has not written to), and from all such users together."""

    per_sender: int = 200
    per_recipient: int = 1000


DAY_MS = 86_400_000


def _stranger_check(cur, info: MessageInfo, now_ms: int, limits: StrangerLimits) -> None:
    """403 when the recipient takes nothing from strangers, 429 (Retry-After: the sender may
    try again later, and its server does) past either limit; nothing for an acquaintance."""
    recv, sender = info.recv_id, info.sender_id
    if sender == recv:
        return
    cur.execute("SELECT 1 FROM friends WHERE owner_id = ? AND friend_id = ? UNION ALL "
                "SELECT 1 FROM messages WHERE sender_id = ? AND recv_id = ? LIMIT 1",
                (recv, sender, recv, sender))
    if cur.fetchone() is not None:
        return  # a friend, or someone the recipient wrote to first: not a stranger
    user = users.get_user(cur, recv)
    if user is not None and not user.accept_strangers:
        raise Forbidden("%s takes messages from friends only" % recv, "strangers_refused")
    since = now_ms - DAY_MS
    cur.execute("SELECT COUNT(*), MIN(created_at) FROM messages WHERE recv_id = ? AND "
                "sender_id = ? AND created_at > ?", (recv, sender, since))
    count, oldest = cur.fetchone()
    if count >= limits.per_sender:
        raise TooMany("%s has had %d messages from %s today without being friends"
                      % (recv, count, sender), (oldest + DAY_MS - now_ms) / 1000,
                      "stranger_limit")
    cur.execute("SELECT COUNT(*), MIN(m.created_at) FROM messages m WHERE m.recv_id = ? AND "
                "m.created_at > ? AND m.sender_id != ? AND NOT EXISTS (SELECT 1 FROM friends "
                "f WHERE f.owner_id = ? AND f.friend_id = m.sender_id)",
                (recv, since, recv, recv))
    count, oldest = cur.fetchone()
    if count >= limits.per_recipient:
        raise TooMany("%s has had %d messages from users who are not friends today"
                      % (recv, count), (oldest + DAY_MS - now_ms) / 1000, "stranger_limit")


@transaction
def send_message(cur, info: MessageInfo, server_id: str, now_ms: int,
                 limits: StrangerLimits = StrangerLimits(),
                 txn: str | None = None) -> StoredMessage:
    """A local user's one-to-one message: stored, then delivered locally at once or queued
    for the recipient's server.  Once per ``txn`` (txns.py): again, the first message."""
    first = txns.seen(cur, info.sender_id, txn)
    if first is not None:
        return _get_message(cur, first)
    txns.remember(cur, info.sender_id, txn, info.message_id, now_ms)
    local = info.recv_server == server_id
    if local and users.get_user(cur, info.recv_id) is None:
        raise NotFound("no user %s" % info.recv_id, "unknown_user")
    if local:
        _stranger_check(cur, info, now_ms, limits)
    _store(cur, info, "received" if local else "queued", now_ms)
    if "fileID" in info.content:
        files.grant(cur, info.content["fileID"], info.recv_id)
    message = _get_message(cur, info.message_id)
    emit(cur, info.sender_id, "message", message.to_client(), now_ms)
    if local:
        if info.recv_id != info.sender_id:
            emit(cur, info.recv_id, "message", message.to_client(), now_ms)
    else:
        enqueue(cur, info.recv_server, conversation_key(info.sender_id, info.recv_id),
                Chat(info), now_ms, info.message_id)
    return message


@transaction
def receive_message(cur, info: MessageInfo, now_ms: int, recall_limit_ms: int,
                    limits: StrangerLimits = StrangerLimits()) -> bool:
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
    if _get_message(cur, info.message_id) is not None:
        return False  # a repeat: taken before, limits or not
    _stranger_check(cur, info, now_ms, limits)
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
    # Recalled means gone: the content is erased here (message, history, conversation list
    # show an empty one) and the recipient loses the file it named.
    cur.execute("UPDATE messages SET recalled = 1, content = '{}' WHERE message_id = ?",
                (message_id,))
    if "fileID" in message.info.content:
        files.withdraw(cur, message.info.content["fileID"], message.info.recv_id)
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
        repeal = MessageInfo(user.user_id, recv, "repeal", ChatType.ONE_TO_ONE, message_id, {})
        enqueue(cur, server_of(recv), conversation_key(user.user_id, recv), Chat(repeal),
                now_ms)


def delivered(cur, item, state: str, error: str, now_ms: int) -> None:
    """Outbox hook for ``chat``: a one-to-one message's delivery ended (sent, or failed for
    good); its state changes and its sender is told."""
    if item.message_id is None:
        return  # a recall, or a group message on its way to the master
    cur.execute("UPDATE messages SET state = ?, error = ? WHERE message_id = ? AND state = "
                "'queued'", (state, error, item.message_id))
    if cur.rowcount:
        message = _get_message(cur, item.message_id)
        emit(cur, message.info.sender_id, "delivery",
             {"messageID": item.message_id, "state": state, "error": error}, now_ms)


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
