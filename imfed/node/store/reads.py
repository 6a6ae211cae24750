"""Read markers (issue #26): where each user has read to in each conversation, kept in the
store (``read_markers``) so that every device and tab of the user sees the same; unread
counts are derived from them (imfed/node/store/messages.py, groups.py)."""

from __future__ import annotations

from .events import emit

__all__ = ["markers", "marker", "advance", "read_to"]


def markers(cur, user_id: str) -> dict[str, int]:
    """{conversation (a peer's user ID or a group ID): the seq read to} of a user."""
    cur.execute("SELECT conversation, seq FROM read_markers WHERE user_id = ?", (user_id,))
    return dict(cur.fetchall())


def marker(cur, user_id: str, conversation: str) -> int:
    cur.execute("SELECT seq FROM read_markers WHERE user_id = ? AND conversation = ?",
                (user_id, conversation))
    row = cur.fetchone()
    return row[0] if row else 0


def advance(cur, user_id: str, conversation: str, seq: int, now_ms: int) -> bool:
    """The user has read ``conversation`` to ``seq``; a marker only moves forward.  Whether
    it moved."""
    cur.execute("INSERT INTO read_markers VALUES (?, ?, ?, ?) ON CONFLICT (user_id, "
                "conversation) DO UPDATE SET seq = excluded.seq, updated_at = "
                "excluded.updated_at WHERE excluded.seq > read_markers.seq",
                (user_id, conversation, seq, now_ms))
    return cur.rowcount == 1


def read_to(cur, user_id: str, conversation: str, seq: int, shown: dict, now_ms: int) -> int:
    """``advance``, and when the marker moved a ``read`` event (``shown``) to every stream
    of the user, so another tab or device clears it too.  The marker as it now stands."""
    if advance(cur, user_id, conversation, seq, now_ms):
        emit(cur, user_id, "read", shown, now_ms)
    return marker(cur, user_id, conversation)
