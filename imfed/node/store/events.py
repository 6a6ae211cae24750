"""What each local user's event stream shows (docs/client-api.md: ``{seq, type, data}``): rows
of the ``events`` table, written by :func:`emit` in the same transaction as the change they
describe, read back by :func:`events_since`; and :class:`EventHub`, which wakes the streams
waiting for a user (the unit of work pokes it after each commit, imfed/node/store/unit.py)."""

from __future__ import annotations

import json

from twisted.internet.defer import Deferred

from ...storage import transaction, write_lock

__all__ = ["EventHub", "emit", "events_since", "last_seq", "compact_json", "Event", "prune"]


def compact_json(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def emit(work, user_id: str, kind: str, payload: dict, now_ms: int) -> None:
    """Show ``user_id`` an event of type ``kind``; its stream wakes after the commit.  Under
    the write lock, so that events commit in seq order (a stream reading past seq N never
    misses one numbered below N that commits later)."""
    write_lock(work)
    text = compact_json(payload)
    work.execute("INSERT INTO events (user_id, type, payload, created_at) VALUES (?, ?, ?, ?) "
                 "RETURNING seq", (user_id, kind, text, now_ms))
    work.users.add(user_id)
    work.events.append((user_id, (work.fetchone()[0], kind, text)))


Event = tuple
"""(seq, type, payload as JSON text): a row as the streams send it."""


def events_since(cur, user_id: str, since: int, limit: int = 500) -> list[Event]:
    cur.execute("SELECT seq, type, payload FROM events WHERE user_id = ? AND seq > ? "
                "ORDER BY seq LIMIT ?", (user_id, since, limit))
    return cur.fetchall()


def last_seq(cur, user_id: str) -> int:
    """The seq of the user's newest event (0 for none): where a fresh client starts."""
    cur.execute("SELECT COALESCE(MAX(seq), 0) FROM events WHERE user_id = ?", (user_id,))
    return cur.fetchone()[0]


class EventHub:
    def __init__(self) -> None:
        self._waiting: dict[str, list[Deferred]] = {}
        self.listeners: list = []  # called with the user IDs of each poke (the bridge pusher)

    def wait(self, user_id: str) -> Deferred:
        d: Deferred = Deferred(lambda d: self._forget(user_id, d))
        self._waiting.setdefault(user_id, []).append(d)
        return d

    def _forget(self, user_id: str, d: Deferred) -> None:
        waiting = self._waiting.get(user_id, [])
        if d in waiting:
            waiting.remove(d)
        if not waiting:
            self._waiting.pop(user_id, None)

    def expire(self, user_id: str, d: Deferred) -> None:
        """A wait that ran out of time: no longer woken by pokes, and fired now."""
        self._forget(user_id, d)
        if not d.called:
            d.callback(None)

    def waiting(self) -> list[str]:
        """The users whose streams wait now."""
        return list(self._waiting)

    def poke(self, user_ids, events: dict[str, list[Event]] | None = None) -> None:
        """Wake the streams of ``user_ids``.  ``events``, when given, are every event each of
        them got since the last poke, in seq order (imfed/node/store/unit.py says when it can
        know that), handed to the waiting streams as they are; without them a woken stream
        reads the store."""
        for key in [u for u in user_ids if u in self._waiting]:
            fresh = events.get(key) if events is not None else None
            for d in self._waiting.pop(key, []):
                if not d.called:
                    d.callback(fresh)
        for listener in self.listeners:
            listener(user_ids)


PRUNE_BATCH = 5000


@transaction
def prune(cur, before_ms: int, batch: int = PRUNE_BATCH) -> int:
    """Delete up to ``batch`` of the oldest events created before ``before_ms``; the number
    deleted.  Events are numbered in time order, so the first one young enough to keep is
    found by reading only the ones that go."""
    cur.execute("SELECT seq FROM events WHERE created_at >= ? ORDER BY seq LIMIT 1",
                (before_ms,))
    row = cur.fetchone()
    if row is None:
        cur.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM events")
        row = cur.fetchone()
    cur.execute("DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq < ? "
                "ORDER BY seq LIMIT ?)", (row[0], batch))
    return cur.rowcount
