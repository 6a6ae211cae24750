"""Pinned and muted conversations (issue #26): per user, in the store (``pins_mutes``), so that
every device and tab of the user shows the same; a change is a ``pins`` event to all of them.
The conversation is named as read markers name it (reads.py): a peer's user ID or a group ID."""

from __future__ import annotations

from .events import emit

__all__ = ["all_of", "of", "shown", "set_flags"]


def all_of(cur, user_id: str) -> dict[str, tuple[bool, bool]]:
    """{conversation: (pinned, muted)} of the user's conversations that have either."""
    cur.execute("SELECT conversation, pinned, muted FROM pins_mutes WHERE user_id = ?",
                (user_id,))
    return {c: (bool(p), bool(m)) for c, p, m in cur.fetchall()}


def shown(flags: dict[str, tuple[bool, bool]], conversation: str) -> dict:
    """``pinned`` and ``muted`` of a conversation as a listing gives them, from ``all_of``."""
    pinned, muted = flags.get(conversation, (False, False))
    return {"pinned": pinned, "muted": muted}


def of(cur, user_id: str, conversation: str) -> tuple[bool, bool]:
    cur.execute("SELECT pinned, muted FROM pins_mutes WHERE user_id = ? AND conversation = ?",
                (user_id, conversation))
    row = cur.fetchone()
    return (bool(row[0]), bool(row[1])) if row else (False, False)


def set_flags(cur, user_id: str, conversation: str, pinned: bool | None, muted: bool | None,
              shown: dict, now_ms: int) -> tuple[bool, bool]:
    """Pin or unpin, mute or unmute (None: as it was); when that changes anything, a ``pins``
    event (``shown`` with ``pinned`` and ``muted``) to every stream of the user.  The two
    as they now stand."""
    was = of(cur, user_id, conversation)
    now = (was[0] if pinned is None else pinned, was[1] if muted is None else muted)
    if now == was:
        return now
    if now == (False, False):
        cur.execute("DELETE FROM pins_mutes WHERE user_id = ? AND conversation = ?",
                    (user_id, conversation))
    else:
        cur.execute("INSERT INTO pins_mutes VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, "
                    "conversation) DO UPDATE SET pinned = excluded.pinned, muted = "
                    "excluded.muted, updated_at = excluded.updated_at",
                    (user_id, conversation, int(now[0]), int(now[1]), now_ms))
    emit(cur, user_id, "pins", dict(shown, pinned=now[0], muted=now[1]), now_ms)
    return now
