"""The ``outbox`` table (docs/protocol.md §6): what this node owes other servers, one FIFO per
destination server and lane (a conversation; a pair of users for friend requests; a group).

An item is a *kind* (a call of imfed/wire/paths.py, ``chat``, ``add_users``...) and its
payload (imfed/wire/queued.py); :func:`enqueue` writes it in the transaction of the change that
owes it.  The delivery service (imfed/node/services/outbox.py) reads the lanes' heads, and
ends an item (:func:`finish`: removed, its kind's hooks run in the same transaction) or
postpones it."""

from __future__ import annotations

import json
from typing import Callable

import attrs

from ...storage import transaction, write_lock
from ...wire.paths import QUEUED
from ...wire.queued import Queued
from .events import compact_json

__all__ = ["Item", "enqueue", "depths", "SENT", "FAILED"]


SENT, FAILED = "sent", "failed"

# Answers that a retry may turn around: authentication (the peer's directory may not know us
# yet), rate limits, unavailability, server errors.  Any other 4xx is final.


def enqueue(work, destination: str, lane: str, call: Queued, now_ms: int,
            message_id: str | None = None) -> None:
    """Owe ``destination`` ``call`` (imfed/wire/queued.py).  Calls in one lane go out in the
    order they were owed; lanes go out in parallel.  The outbox wakes after the commit."""
    if call.kind not in QUEUED:
        raise ValueError("no queued call %r" % call.kind)
    write_lock(work)  # items commit in seq order: a lane is read in that order
    work.execute("INSERT INTO outbox (destination, lane, kind, payload, message_id, "
                 "created_at, next_attempt) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (destination, lane, call.kind, compact_json(call.to_wire()), message_id,
                  now_ms, now_ms))
    work.queued = True


@attrs.frozen
class Item:
    seq: int
    destination: str
    lane: str
    kind: str
    payload: dict
    message_id: str | None
    created_at: int
    attempts: int
    next_attempt: int


Hook = Callable[..., None]
"""``hook(work, item, state, error, now_ms)``: an item of its kind ended (SENT or FAILED)."""


def heads(cur, now_ms: int, latest_ms: int) -> list[tuple[str, str]]:
    """(destination, lane) of every lane whose first item is due (``outbox_heads``, kept by
    triggers: one row per lane, however long the queue).  A first item due after
    ``latest_ms`` (further off than any backoff puts it) was scheduled on a clock that has
    since been set back: it is due now."""
    cur.execute("SELECT destination, lane FROM outbox_heads WHERE next_attempt <= ? OR "
                "next_attempt > ? ORDER BY seq", (now_ms, latest_ms))
    return cur.fetchall()


def next_items(cur, destination: str, lane: str, limit: int = 32) -> list[Item]:
    """The lane's first items, in order."""
    cur.execute("SELECT seq, destination, lane, kind, payload, message_id, created_at, "
                "attempts, next_attempt FROM outbox WHERE destination = ? AND lane = ? "
                "ORDER BY seq LIMIT ?", (destination, lane, limit))
    return [Item(seq, dest, ln, kind, json.loads(payload), mid, created, attempts, due)
            for seq, dest, ln, kind, payload, mid, created, attempts, due in cur.fetchall()]


def depths(cur) -> list[tuple[str, int, int]]:
    """(destination, items queued, oldest created_at) of every destination owed something."""
    cur.execute("SELECT destination, COUNT(*), MIN(created_at) FROM outbox "
                "GROUP BY destination ORDER BY destination")
    return cur.fetchall()


def queue_view(cur, now_ms: int) -> list[tuple]:
    """(destination, items queued, oldest created_at, the head's attempts, next attempt,
    last error) of every destination owed something."""
    cur.execute("SELECT o.destination, COUNT(*), MIN(o.created_at), MAX(o.attempts), "
                "MIN(o.next_attempt), MAX(o.last_error) FROM outbox o GROUP BY o.destination "
                "ORDER BY o.destination")
    return cur.fetchall()


@transaction
def retry_now(cur, destination: str, now_ms: int) -> int:
    """Everything owed to ``destination`` is due now (it answered again); how many items."""
    cur.execute("UPDATE outbox SET next_attempt = ? WHERE destination = ? AND next_attempt > ?",
                (now_ms, destination, now_ms))
    return cur.rowcount


@transaction
def finish(work, hooks, item: Item, state: str, error: str, now_ms: int) -> None:
    """An item ended: it leaves the queue, and its kind's hooks run in the same transaction."""
    work.execute("DELETE FROM outbox WHERE seq = ?", (item.seq,))
    for hook in hooks:
        hook(work, item, state, error, now_ms)


@transaction
def postpone(cur, seq: int, attempts: int, next_attempt: int, error: str) -> None:
    cur.execute("UPDATE outbox SET attempts = ?, next_attempt = ?, last_error = ? WHERE seq = ?",
                (attempts, next_attempt, error[:500], seq))


