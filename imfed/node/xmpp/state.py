"""What the XMPP gateway keeps in the node's store (schema 008): how far its users' events
have been handed to the XMPP server, the rooms named from XMPP, and the stanza IDs of its
users' messages."""

from __future__ import annotations

import json

from ...storage import transaction

__all__ = ["cursor", "events_after", "advance", "group_of_room", "room_of_group",
           "name_room", "remember_id", "message_of_stanza", "stanza_of_message"]


def cursor(cur) -> int:
    cur.execute("SELECT sent_through FROM xmpp_state WHERE id = 1")
    row = cur.fetchone()
    return row[0] if row else 0


def events_after(cur, seq: int, limit: int) -> list[tuple[int, str, str, dict]]:
    """(seq, userID, type, data) of every user's events after ``seq``."""
    cur.execute("SELECT seq, user_id, type, payload FROM events WHERE seq > ? ORDER BY seq "
                "LIMIT ?", (seq, limit))
    return [(s, u, t, json.loads(p)) for s, u, t, p in cur.fetchall()]


def backlog(cur) -> int:
    cur.execute("SELECT COUNT(*) FROM events WHERE seq > ?", (cursor(cur),))
    return cur.fetchone()[0]


@transaction
def advance(cur, seq: int, forget_before_ms: int) -> None:
    """The events through ``seq`` are with the XMPP server; stanza IDs older than
    ``forget_before_ms`` are no longer needed (nothing is recalled that late)."""
    cur.execute("INSERT INTO xmpp_state VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET "
                "sent_through = MAX(sent_through, excluded.sent_through)", (seq,))
    cur.execute("DELETE FROM xmpp_ids WHERE created_at < ?", (forget_before_ms,))


def group_of_room(cur, room: str) -> str | None:
    cur.execute("SELECT group_id FROM xmpp_rooms WHERE room = ?", (room.lower(),))
    row = cur.fetchone()
    return row[0] if row else None


def room_of_group(cur, group_id: str) -> str | None:
    cur.execute("SELECT room FROM xmpp_rooms WHERE group_id = ?", (group_id,))
    row = cur.fetchone()
    return row[0] if row else None


@transaction
def name_room(cur, room: str, group_id: str) -> None:
    cur.execute("INSERT INTO xmpp_rooms VALUES (?, ?)", (room.lower(), group_id))


@transaction
def remember_id(cur, user_id: str, stanza_id: str, message_id: str, now_ms: int) -> None:
    cur.execute("INSERT OR REPLACE INTO xmpp_ids VALUES (?, ?, ?, ?)",
                (user_id, stanza_id, message_id, now_ms))


def message_of_stanza(cur, user_id: str, stanza_id: str) -> str | None:
    cur.execute("SELECT message_id FROM xmpp_ids WHERE user_id = ? AND stanza_id = ?",
                (user_id, stanza_id))
    row = cur.fetchone()
    return row[0] if row else None


def stanza_of_message(cur, user_id: str, message_id: str) -> str | None:
    cur.execute("SELECT stanza_id FROM xmpp_ids WHERE user_id = ? AND message_id = ?",
                (user_id, message_id))
    row = cur.fetchone()
    return row[0] if row else None
