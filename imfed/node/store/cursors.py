"""Where each feed of events stands (the ``event_cursors`` table; imfed/node/services/feeds.py
moves them): the last event a system outside has taken, and the end of the batch it is being
handed."""

from __future__ import annotations

from ...storage import transaction

__all__ = ["Row", "cursor", "sending", "after", "set_sending", "backlog", "advance"]

Row = tuple
"""(seq, userID, type, payload as JSON text)."""


def cursor(cur, name: str) -> int:
    cur.execute("SELECT seq FROM event_cursors WHERE name = ?", (name,))
    row = cur.fetchone()
    return row[0] if row else 0


def after(cur, seq: int, limit: int, upto: int | None = None) -> list[Row]:
    """Every user's events after ``seq`` (and up to ``upto``), oldest first."""
    cur.execute("SELECT seq, user_id, type, payload FROM events WHERE seq > ? AND seq <= ? "
                "ORDER BY seq LIMIT ?", (seq, upto if upto is not None else 2 ** 62, limit))
    return cur.fetchall()


def sending(name: str) -> str:
    """The name under which the end of the batch being handed over is kept."""
    return name + ":sending"


@transaction
def set_sending(cur, name: str, last: int) -> None:
    """The batch now handed over ends at ``last``: until it is taken, it is the one handed
    over again, the same events under the same bounds (a restart included)."""
    cur.execute("INSERT INTO event_cursors VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET "
                "seq = excluded.seq", (sending(name), last))


def backlog(cur, name: str) -> int:
    cur.execute("SELECT COUNT(*) FROM events WHERE seq > ?", (cursor(cur, name),))
    return cur.fetchone()[0]


@transaction
def advance(cur, name: str, seq: int) -> None:
    cur.execute("INSERT INTO event_cursors VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET "
                "seq = excluded.seq WHERE excluded.seq > event_cursors.seq", (name, seq))
