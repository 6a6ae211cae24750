"""What the XMPP gateway keeps in the node's store (schema 008) besides its feed's cursor
(feeds.py): the rooms named from XMPP, and the stanza IDs of its users' messages (forgotten by
the node's housekeeping)."""

from __future__ import annotations

from ...storage import transaction

__all__ = ["forget_ids", "group_of_room", "room_of_group", "name_room", "remember_id",
           "message_of_stanza", "stanza_of_message", "sent_by", "RECEIPT", "MARKER"]


FORGET_IDS_SECONDS = 7 * 86400
"""How long a client's stanza ID is kept (nothing is recalled that late)."""


@transaction
def forget_ids(cur, before_ms: int) -> int:
    cur.execute("DELETE FROM xmpp_ids WHERE created_at < ?", (before_ms,))
    return cur.rowcount


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


RECEIPT, MARKER = 1, 2
"""What a client asked to be told of a message it sent (``wants``, or-ed)."""


@transaction
def remember_id(cur, user_id: str, stanza_id: str, message_id: str, now_ms: int,
                jid: str = "", wants: int = 0) -> None:
    """The stanza ``stanza_id`` that ``jid`` (a full JID) sent made ``message_id``."""
    cur.execute("INSERT INTO xmpp_ids (user_id, stanza_id, message_id, created_at, jid, "
                "wants) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, stanza_id) DO UPDATE "
                "SET message_id = excluded.message_id, created_at = excluded.created_at, "
                "jid = excluded.jid, wants = excluded.wants",
                (user_id, stanza_id, message_id, now_ms, jid, wants))


def message_of_stanza(cur, user_id: str, stanza_id: str) -> str | None:
    cur.execute("SELECT message_id FROM xmpp_ids WHERE user_id = ? AND stanza_id = ?",
                (user_id, stanza_id))
    row = cur.fetchone()
    return row[0] if row else None


def stanza_of_message(cur, user_id: str, message_id: str) -> str | None:
    found = sent_by(cur, user_id, message_id)
    return found[0] if found else None


def sent_by(cur, user_id: str, message_id: str) -> tuple[str, str, int] | None:
    """(the stanza ID, the full JID that sent it or "", what it wants told) of one of
    ``user_id``'s messages sent from XMPP."""
    cur.execute("SELECT stanza_id, jid, wants FROM xmpp_ids WHERE user_id = ? AND "
                "message_id = ? ORDER BY wants DESC", (user_id, message_id))
    row = cur.fetchone()
    return (row[0], row[1], row[2]) if row else None
