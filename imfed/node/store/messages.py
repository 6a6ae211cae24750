"""One-to-one messages (§6.2.2-6.2.9) as stored: each message, its delivery state, a user's
conversations and history.  Functions of a unit of work (imfed/node/store/unit.py): a write
stores the change, the events it shows the users involved and the deliveries it owes other
servers together.  Whether a message may be sent, taken or recalled is decided by
imfed/node/handlers/messages.py, in the same unit."""

from __future__ import annotations

import json

import attrs

from ...wire.message_info import MessageInfo
from ...wire.queued import Chat
from . import files, reads, users
from .events import compact_json, emit
from .outbox import enqueue

__all__ = ["conversation_key", "StoredMessage", "get_message", "acquainted", "received_from",
           "received_from_strangers", "record_sent", "record_received", "mark_recalled",
           "delivered", "history", "conversations", "Conversation", "newest_seq", "search"]


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


def get_message(cur, message_id: str) -> StoredMessage | None:
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


def acquainted(cur, user_id: str, other: str) -> bool:
    """Whether ``other`` is a friend of ``user_id``'s, or someone ``user_id`` wrote to."""
    cur.execute("SELECT 1 FROM friends WHERE owner_id = ? AND friend_id = ? UNION ALL "
                "SELECT 1 FROM messages WHERE sender_id = ? AND recv_id = ? LIMIT 1",
                (user_id, other, user_id, other))
    return cur.fetchone() is not None


def received_from(cur, user_id: str, sender: str, since_ms: int) -> tuple[int, int | None]:
    """(how many, the oldest's time) of the messages ``user_id`` had from ``sender`` since."""
    cur.execute("SELECT COUNT(*), MIN(created_at) FROM messages WHERE recv_id = ? AND "
                "sender_id = ? AND created_at > ?", (user_id, sender, since_ms))
    count, oldest = cur.fetchone()
    return count, oldest


def received_from_strangers(cur, user_id: str, since_ms: int) -> tuple[int, int | None]:
    """(how many, the oldest's time) of the messages ``user_id`` had since from users who
    are not friends."""
    cur.execute("SELECT COUNT(*), MIN(m.created_at) FROM messages m WHERE m.recv_id = ? AND "
                "m.created_at > ? AND m.sender_id != ? AND NOT EXISTS (SELECT 1 FROM friends "
                "f WHERE f.owner_id = ? AND f.friend_id = m.sender_id)",
                (user_id, since_ms, user_id, user_id))
    count, oldest = cur.fetchone()
    return count, oldest


def record_sent(cur, info: MessageInfo, local: bool, now_ms: int) -> StoredMessage:
    """A local user's one-to-one message: stored, granted its file, shown to the sender and
    (``local``) to the recipient, or owed to the recipient's server."""
    _store(cur, info, "received" if local else "queued", now_ms)
    if "fileID" in info.content:
        files.grant(cur, info.content["fileID"], info.recv_id)
    message = get_message(cur, info.message_id)
    emit(cur, info.sender_id, "message", message.to_client(), now_ms)
    if local:
        if info.recv_id != info.sender_id:
            emit(cur, info.recv_id, "message", message.to_client(), now_ms)
    else:
        enqueue(cur, info.recv_server, conversation_key(info.sender_id, info.recv_id),
                Chat(info), now_ms, info.message_id)
    return message


def record_received(cur, info: MessageInfo, now_ms: int) -> bool:
    """A message from another server for a local user: stored (False for a repeat), its file
    expected from the sending server, shown to the recipient."""
    if not _store(cur, info, "received", now_ms):
        return False
    if "fileID" in info.content:
        files.expect_remote(cur, info.content, info.sender_id, [info.recv_id], now_ms,
                            origin=info.sender_server)
    emit(cur, info.recv_id, "message", get_message(cur, info.message_id).to_client(), now_ms)
    return True


def mark_recalled(cur, message: StoredMessage, now_ms: int) -> bool:
    """A message recalled (False: it was already): its content erased here (message, history
    and conversation list show an empty one), the recipient's grant of its file withdrawn,
    the local users of the conversation told."""
    if message.recalled:
        return False
    cur.execute("UPDATE messages SET recalled = 1, content = '{}' WHERE message_id = ?",
                (message.info.message_id,))
    if "fileID" in message.info.content:
        files.withdraw(cur, message.info.content["fileID"], message.info.recv_id)
    payload = {"messageID": message.info.message_id, "senderID": message.info.sender_id}
    for who in {message.info.sender_id, message.info.recv_id}:
        if users.get_user(cur, who) is not None:
            emit(cur, who, "recall", payload, now_ms)
    return True


def delivered(cur, item, state: str, error: str, now_ms: int) -> None:
    """Outbox hook for ``chat``: a one-to-one message's delivery ended (sent, or failed for
    good); its state changes and its sender is told."""
    if item.message_id is None:
        return  # a recall, or a group message on its way to the master
    cur.execute("UPDATE messages SET state = ?, error = ? WHERE message_id = ? AND state = "
                "'queued'", (state, error, item.message_id))
    if cur.rowcount:
        message = get_message(cur, item.message_id)
        emit(cur, message.info.sender_id, "delivery",
             {"messageID": item.message_id, "state": state, "error": error}, now_ms)


def history(cur, user_id: str, peer_id: str, before: int | None, limit: int
            ) -> list[StoredMessage]:
    """Newest first, ``limit`` at most, older than seq ``before``."""
    cur.execute("SELECT %s FROM messages WHERE conversation = ? AND seq < ? ORDER BY seq DESC "
                "LIMIT ?" % _MSG_COLUMNS,
                (conversation_key(user_id, peer_id), before or 2 ** 62, limit))
    return [_message(r) for r in cur.fetchall()]


@attrs.frozen
class Conversation:
    peer_id: str
    count: int
    last: StoredMessage
    read_seq: int = 0  # the user's read marker (reads.py)
    unread: int = 0  # messages from the peer after it, not recalled

    def to_client(self) -> dict:
        return {"peerID": self.peer_id, "messages": self.count, "last": self.last.to_client(),
                "readSeq": self.read_seq, "unread": self.unread}


def conversations(cur, user_id: str) -> list[Conversation]:
    cur.execute("SELECT conversation, MAX(seq), COUNT(*) FROM messages WHERE sender_id = ? OR "
                "recv_id = ? GROUP BY conversation ORDER BY MAX(seq) DESC", (user_id, user_id))
    found = cur.fetchall()
    read = reads.markers(cur, user_id)
    out = []
    for key, last_seq, count in found:
        a, _, b = key.partition("|")
        peer = b if a == user_id else a
        cur.execute("SELECT %s FROM messages WHERE seq = ?" % _MSG_COLUMNS, (last_seq,))
        last = _message(cur.fetchone())
        read_seq = read.get(peer, 0)
        cur.execute("SELECT COUNT(*) FROM messages WHERE conversation = ? AND seq > ? AND "
                    "sender_id = ? AND recalled = 0", (key, read_seq, peer))
        out.append(Conversation(peer, count, last, read_seq, cur.fetchone()[0]))
    return out


def newest_seq(cur, user_id: str, peer_id: str) -> int:
    """The seq of the newest message between the two (0 for none)."""
    cur.execute("SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation = ?",
                (conversation_key(user_id, peer_id),))
    return cur.fetchone()[0]


def search(cur, user_id: str, like: str, limit: int) -> list[StoredMessage]:
    """The user's text messages (sent or received, not recalled) whose JSON content matches
    ``like`` (a LIKE pattern; the caller checks the text itself), newest first."""
    cur.execute("SELECT %s FROM messages WHERE (sender_id = ? OR recv_id = ?) AND "
                "message_type = 'text' AND recalled = 0 AND LOWER(content) LIKE LOWER(?) "
                "ESCAPE '\\' ORDER BY seq DESC LIMIT ?" % _MSG_COLUMNS,
                (user_id, user_id, like, limit))
    return [_message(r) for r in cur.fetchall()]
